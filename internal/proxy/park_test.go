package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/balance"
)

// startParkingProxy is a frontend whose idle connections park after
// parkAfter, in front of one server that names the request it got.
func startParkingProxy(t *testing.T, parkAfter, timeoutClient time.Duration) *testProxy {
	t.Helper()
	bal, err := balance.New("roundrobin", []balance.Server{{Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ss := []*Server{NewServer("s1", backend(t, named("a")), 0)}
	b := NewBackend("b", bal, ss, BackendConfig{Retries: 3, ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second})
	f := NewHTTPFrontend("f", &HTTPConfig{Default: b, TimeoutClient: timeoutClient})
	f.parkAfter = parkAfter
	return &testProxy{addr: serve(t, f, ss...), f: f, b: b}
}

// waitParked waits until the frontend holds n parked connections.
func waitParked(t *testing.T, f *HTTPFrontend, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.ParkedConns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("ParkedConns() = %d, want %d", f.ParkedConns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConns waits until the frontend counts n open connections.
func waitConns(t *testing.T, f *HTTPFrontend, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.ActiveConns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("ActiveConns() = %d, want %d", f.ActiveConns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get sends one request on c and checks the answer.
func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	expect(t, br, path)
}

func expect(t *testing.T, br *bufio.Reader, path string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response to %s: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "a GET " + path; string(body) != want {
		t.Fatalf("response to %s = %q, want %q", path, body, want)
	}
}

// eof waits for the proxy to close c and returns how long that took.
func eof(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %d, %v, want EOF (closed by the proxy)", n, err)
	}
	return time.Since(start)
}

func TestParkedConnectionResumes(t *testing.T) {
	tests := []struct {
		name string
		send func(c net.Conn) error
	}{
		{"whole request", func(c net.Conn) error {
			_, err := io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			return err
		}},
		{"byte by byte", func(c net.Conn) error {
			for _, b := range []byte("GET /next HTTP/1.1\r\nHost: x\r\n\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return err
				}
				time.Sleep(3 * time.Millisecond)
			}
			return nil
		}},
		{"first byte, then a pause past parking", func(c net.Conn) error {
			if _, err := io.WriteString(c, "G"); err != nil {
				return err
			}
			time.Sleep(150 * time.Millisecond)
			_, err := io.WriteString(c, "ET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startParkingProxy(t, 50*time.Millisecond, 5*time.Second)
			c := dial(t, p.addr)
			br := bufio.NewReader(c)
			get(t, c, br, "/first")
			waitParked(t, p.f, 1)
			if err := tt.send(c); err != nil {
				t.Fatal(err)
			}
			expect(t, br, "/next")
			waitParked(t, p.f, 1) // and it parks again
			get(t, c, br, "/third")
			if n := p.f.ActiveConns(); n != 1 {
				t.Errorf("ActiveConns() = %d, want 1", n)
			}
		})
	}
}

func TestParkedPipelining(t *testing.T) {
	p := startParkingProxy(t, 50*time.Millisecond, 5*time.Second)
	c := dial(t, p.addr)
	br := bufio.NewReader(c)
	get(t, c, br, "/0")
	waitParked(t, p.f, 1)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for i := 1; i <= 3; i++ {
		expect(t, br, fmt.Sprintf("/%d", i))
	}
	eof(t, c)
	waitConns(t, p.f, 0)
}

// A connection under steady keep-alive traffic never parks.
func TestBusyConnectionDoesNotPark(t *testing.T) {
	p := startParkingProxy(t, defaultParkAfter, 5*time.Second)
	c := dial(t, p.addr)
	br := bufio.NewReader(c)
	for i := 0; i < 40; i++ {
		get(t, c, br, "/busy")
		if n := p.f.parker.parked(); n != 0 {
			t.Fatalf("request %d: parked connections = %d, want 0", i, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParkedIdleTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	p := startParkingProxy(t, 50*time.Millisecond, timeout)
	c := dial(t, p.addr)
	br := bufio.NewReader(c)
	sent := time.Now()
	get(t, c, br, "/")
	waitParked(t, p.f, 1)
	eof(t, c)
	if idle := time.Since(sent); idle < timeout || idle > timeout*9/8+500*time.Millisecond {
		t.Errorf("closed after %v idle, want %v (+ slack)", idle, timeout)
	}
	waitConns(t, p.f, 0)
	if n := p.f.parker.parked(); n != 0 {
		t.Errorf("parked connections = %d, want 0", n)
	}
}

func TestShutdownClosesParked(t *testing.T) {
	p := startParkingProxy(t, 50*time.Millisecond, time.Minute)
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c := dial(t, p.addr)
		get(t, c, bufio.NewReader(c), "/")
		conns = append(conns, c)
	}
	waitParked(t, p.f, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v, want nil", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown() took %v with only parked connections, want well under 1s", d)
	}
	for _, c := range conns {
		eof(t, c)
	}
	if n := p.f.ActiveConns(); n != 0 {
		t.Errorf("ActiveConns() = %d, want 0", n)
	}
}

// A shutdown whose grace ends while connections are parked still closes
// them and counts them out.
func TestShutdownDeadlineClosesParked(t *testing.T) {
	p := startParkingProxy(t, 50*time.Millisecond, time.Minute)
	c := dial(t, p.addr)
	get(t, c, bufio.NewReader(c), "/")
	waitParked(t, p.f, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.f.Shutdown(ctx)
	eof(t, c)
	waitConns(t, p.f, 0)
}

func TestParkedHalfClose(t *testing.T) {
	p := startParkingProxy(t, 50*time.Millisecond, time.Minute)
	c := dial(t, p.addr)
	get(t, c, bufio.NewReader(c), "/")
	waitParked(t, p.f, 1)
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	eof(t, c)
	waitConns(t, p.f, 0)
}

// Many connections park and resume at once, with requests arriving around
// the parking moment (run with -race).
func TestParkingConcurrent(t *testing.T) {
	const parkAfter = 20 * time.Millisecond
	p := startParkingProxy(t, parkAfter, 5*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for j := 0; j < 20; j++ {
				path := fmt.Sprintf("/%d/%d", i, j)
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("%s: %v", path, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				if want := "a GET " + path; string(body) != want {
					t.Errorf("response to %s = %q, want %q", path, body, want)
				}
				time.Sleep(time.Duration(rand.Int64N(int64(2 * parkAfter))))
			}
		}()
	}
	wg.Wait()
	waitConns(t, p.f, 0)
}

// A resumed connection still forwards its client's address.
func TestParkedKeepsClientAddress(t *testing.T) {
	seen := make(chan string, 3)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nohost" {
			seen <- r.Host // named by the proxy: the address the client reached
			return
		}
		seen <- r.Header.Get("X-Forwarded-For") + " " + r.Header.Get("Forwarded")
	})
	bal, _ := balance.New("roundrobin", []balance.Server{{Weight: 1}})
	s := NewServer("s1", addr, 0)
	b := NewBackend("b", bal, []*Server{s}, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second})
	f := NewHTTPFrontend("f", &HTTPConfig{Default: b, TimeoutClient: 5 * time.Second})
	f.parkAfter = 30 * time.Millisecond
	front := serve(t, f, s)
	c := dial(t, front)
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := <-seen, "127.0.0.1 for=127.0.0.1;proto=http;host=\"x\""; got != want {
			t.Errorf("request %d: server saw %q, want %q", i, got, want)
		}
		waitParked(t, f, 1)
	}
	// And the address it was reached at, for a request without Host.
	io.WriteString(c, "GET /nohost HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-seen; got != front {
		t.Errorf("after parking, the Host named for an HTTP/1.0 request = %q, want %q", got, front)
	}
}

// TLS connections keep their goroutine: their state lives in crypto/tls.
func TestTLSConnectionDoesNotPark(t *testing.T) {
	bal, _ := balance.New("roundrobin", []balance.Server{{Weight: 1}})
	s := NewServer("s1", backend(t, named("a")), 0)
	b := NewBackend("b", bal, []*Server{s}, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second})
	cert, pool := selfSigned(t)
	f := NewHTTPFrontend("f", &HTTPConfig{Default: b, TimeoutClient: 5 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}})
	f.parkAfter = 20 * time.Millisecond
	c, err := tls.Dial("tcp", serve(t, f, s), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	get(t, c, br, "/1")
	time.Sleep(150 * time.Millisecond)
	if n := f.parker.parked(); n != 0 {
		t.Errorf("parked connections = %d, want 0 (TLS)", n)
	}
	get(t, c, br, "/2")
}

// BenchmarkIdleConnMemory opens keep-alive connections that each carry one
// request and then idle, and reports the memory (heap and goroutine
// stacks, client side included) each one holds, waiting in its goroutine
// and parked.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, bc := range []struct {
		name      string
		parkAfter time.Duration
	}{{"goroutine", time.Hour}, {"parked", 20 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 2000
			srv := rawBackend(b)
			bal, _ := balance.New("roundrobin", []balance.Server{{Weight: 1}})
			s := NewServer("s1", srv, 0)
			be := NewBackend("b", bal, []*Server{s}, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second})
			f := NewHTTPFrontend("f", &HTTPConfig{Default: be, TimeoutClient: time.Minute})
			f.parkAfter = bc.parkAfter
			addr := serve(b, f, s)
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			buf := make([]byte, 512)
			var perConn float64
			for i := 0; i < b.N; i++ {
				before := idleMemory()
				conns := make([]net.Conn, 0, n)
				for j := 0; j < n; j++ {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
					c.Write(req)
					if _, err := c.Read(buf); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(bc.parkAfter%time.Hour + 100*time.Millisecond)
				perConn = float64(idleMemory()-before) / n
				for _, c := range conns {
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
				for f.ActiveConns() > 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			b.ReportMetric(perConn, "B/idle-conn")
		})
	}
}

// idleMemory returns the heap and stack memory in use after a collection.
func idleMemory() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
