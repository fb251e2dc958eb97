package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fulcrum/internal/balance"
	"fulcrum/internal/testenv"
)

// testProxy is an HTTP frontend on 127.0.0.1:0 in front of the given
// backend servers (round robin, weight 1 each).
type testProxy struct {
	addr string
	f    *HTTPFrontend
	b    *Backend
}

func startProxy(t testing.TB, addrs []string, tune func(*HTTPConfig, *BackendConfig)) *testProxy {
	t.Helper()
	bs := make([]balance.Server, len(addrs))
	ss := make([]*Server, len(addrs))
	for i, a := range addrs {
		bs[i] = balance.Server{Weight: 1}
		ss[i] = NewServer(fmt.Sprintf("s%d", i+1), a, i)
	}
	bal, err := balance.New("roundrobin", bs)
	if err != nil {
		t.Fatal(err)
	}
	bc := BackendConfig{Retries: 3, Redispatch: true, ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second}
	fc := &HTTPConfig{TimeoutClient: 5 * time.Second, TimeoutRequestHeader: 2 * time.Second}
	b := NewBackend("b", bal, ss, bc)
	if tune != nil {
		tune(fc, &bc)
	}
	b.Configure(bc)
	fc.Default = b
	f := NewHTTPFrontend("f", fc)
	return &testProxy{addr: serve(t, f, ss...), f: f, b: b}
}

// frontend is an HTTP or TCP frontend.
type frontend interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// serve runs f on a loopback port until the test ends, then shuts it down
// and closes the servers' idle connections; it returns the address.
func serve(t testing.TB, f frontend, servers ...*Server) string {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(tl) // as the load balancer binds
	go f.Serve(ln)
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.Shutdown(ctx)
		for _, s := range servers {
			s.CloseIdle()
		}
	})
	return ln.Addr().String()
}

func backend(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Server", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}
}

func client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

func TestRoundRobinAndKeepAlive(t *testing.T) {
	p := startProxy(t, []string{backend(t, named("a")), backend(t, named("b"))}, nil)
	c := client()
	var got []string
	for i := 0; i < 6; i++ {
		resp, err := c.Get("http://" + p.addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, resp.Header.Get("X-Server"))
	}
	if want := "a b a b a b"; strings.Join(got, " ") != want {
		t.Errorf("servers = %v, want %s", got, want)
	}
	if n := p.f.ActiveConns(); n != 1 {
		t.Errorf("client connections = %d, want 1 (keep-alive)", n)
	}
}

func TestForwardingHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Hop", "drop me")
		w.Header().Set("Connection", "X-Hop")
	})
	p := startProxy(t, []string{addr}, nil)
	conn := dial(t, p.addr)
	fmt.Fprintf(conn, "GET /h HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"+
		"Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Keep: yes\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	checks := []struct{ key, want string }{
		{"X-Forwarded-For", "127.0.0.1"},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded-Host", "example.test"},
		{"Forwarded", `for=127.0.0.1;proto=http;host="example.test"`},
		{"X-Secret", ""}, {"Proxy-Connection", ""}, {"Te", ""},
		{"X-Keep", "yes"}, {"Host", "example.test"},
	}
	for _, c := range checks {
		if got := strings.Join(h.Values(c.key), ","); got != c.want {
			t.Errorf("server saw %s = %q, want %q", c.key, got, c.want)
		}
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client saw hop-by-hop response fields: %v", resp.Header)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// Malformed requests get a 4xx and a closed connection; nothing reaches a server.
func TestMalformedRequests(t *testing.T) {
	hits := 0
	var mu sync.Mutex
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	})
	p := startProxy(t, []string{addr}, func(f *HTTPConfig, b *BackendConfig) { f.MaxHeaderBytes = 2048 })
	tests := []struct {
		name, req string
		status    int
	}{
		{"bad request line", "GET\r\n\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bad version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"garbage version", "GET / FTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"oversized head", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\n\r\n", 431},
		{"bad content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400},
		{"negative content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
		{"conflicting content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, p.addr)
			io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if !resp.Close {
				t.Errorf("response does not say Connection: close")
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after a %d (read: %v)", tt.status, err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("server got %d requests, want 0", hits)
	}
}

func TestSlowHeaderGets408(t *testing.T) {
	p := startProxy(t, []string{backend(t, named("a"))}, func(f *HTTPConfig, b *BackendConfig) {
		f.TimeoutRequestHeader = 200 * time.Millisecond
	})
	c := dial(t, p.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 408 {
		t.Errorf("status = %d, want 408", resp.StatusCode)
	}
}

func TestChunkedBothWays(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Trailer-Seen", r.Trailer.Get("X-T"))
		w.Header().Set("Trailer", "X-Sum")
		for i := 0; i < 3; i++ { // several chunks
			w.Write(bytes.ToUpper(body))
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "42")
	})
	p := startProxy(t, []string{addr}, nil)

	c := dial(t, p.addr)
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"+
		"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: tv\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "ABCDEABCDEABCDE" {
		t.Errorf("body = %q, want ABCDE three times", body)
	}
	if got := resp.Header.Get("X-TE"); got != "chunked" {
		t.Errorf("server saw Transfer-Encoding %q, want chunked", got)
	}
	if got := resp.Header.Get("X-Trailer-Seen"); got != "tv" {
		t.Errorf("server saw request trailer %q, want tv", got)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("response trailer X-Sum = %q, want 42", got)
	}
	if len(resp.TransferEncoding) == 0 {
		t.Errorf("response to an HTTP/1.1 client is not chunked")
	}

	// An HTTP/1.0 client gets the bare data, delimited by close.
	c2 := dial(t, p.addr)
	io.WriteString(c2, "POST /c HTTP/1.0\r\nContent-Length: 2\r\n\r\nxy")
	raw, _ := io.ReadAll(c2)
	if !bytes.HasSuffix(raw, []byte("\r\n\r\nXYXYXY")) || bytes.Contains(raw, []byte("Transfer-Encoding")) {
		t.Errorf("HTTP/1.0 response = %q, want bare body XYXYXY without chunked framing", raw)
	}
}

func TestErrorsFromServers(t *testing.T) {
	refused := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := ln.Addr().String()
		ln.Close()
		return a
	}
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	reset := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Read(make([]byte, 4096))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}()
	tests := []struct {
		name   string
		addrs  []string
		tune   func(*HTTPConfig, *BackendConfig)
		status int
	}{
		{"refused", []string{refused()}, nil, 502},
		{"reset", []string{reset}, nil, 502},
		{"timeout", []string{slow}, func(f *HTTPConfig, b *BackendConfig) { b.ServerTimeout = 300 * time.Millisecond }, 504},
		{"no server", []string{refused()}, nil, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.addrs, tt.tune)
			if tt.name == "no server" {
				p.b.Balancer().SetUsable(0, false)
			}
			resp, err := client().Get("http://" + p.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
}

// A failed connection is retried on the other server: the client never sees it.
func TestRetryRedispatch(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, []string{dead, backend(t, named("alive"))}, nil)
	c := client()
	for i := 0; i < 10; i++ {
		resp, err := c.Get("http://" + p.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Server") != "alive" {
			t.Fatalf("request %d: status %d from %q, want 200 from alive", i, resp.StatusCode, resp.Header.Get("X-Server"))
		}
	}
	if r := p.b.Stats.Redispatch.Load(); r == 0 {
		t.Errorf("redispatches = 0, want > 0")
	}
}

// A large upload and download stream through; the proxy holds neither.
func TestStreamingBodies(t *testing.T) {
	const size = 64 << 20
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Len", fmt.Sprint(n))
		w.Header().Set("X-Sum", fmt.Sprintf("%x", h.Sum(nil)))
		if r.URL.Path == "/down" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.CopyN(w, zeros{}, size)
		}
	})
	p := startProxy(t, []string{addr}, nil)
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(pattern{}, size), h)
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/up", body)
	req.ContentLength = size
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("X-Sum"), fmt.Sprintf("%x", h.Sum(nil)); got != want {
		t.Errorf("upload checksum at server = %s, want %s", got, want)
	}
	resp, err = client().Get("http://" + p.addr + "/down")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Errorf("download = %d bytes (%v), want %d", n, err, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 7)
	}
	return len(p), nil
}

func TestWebSocketUpgrade(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "websocket" {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo
	}()
	// The tunnel outlives the request's timeouts: its messages come after
	// both the client and the server timeout have passed.
	const timeout = 200 * time.Millisecond
	p := startProxy(t, []string{ln.Addr().String()}, func(f *HTTPConfig, b *BackendConfig) {
		f.TimeoutClient, b.ServerTimeout = timeout, timeout
	})
	c := dial(t, p.addr)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("response = %d %v, want 101 with Upgrade: websocket", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello", "world"} {
		time.Sleep(2 * timeout)
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo = %q (%v), want %q", buf, err, msg)
		}
	}
}

// A connection accepted while the frontend drains is closed at once.
func TestDrainingFrontendClosesNewConnections(t *testing.T) {
	p := startProxy(t, []string{backend(t, named("a"))}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.addr)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a connection accepted while draining = %d, %v; want EOF", n, err)
	}
}

func TestPipelining(t *testing.T) {
	p := startProxy(t, []string{backend(t, named("a"))}, nil)
	c := dial(t, p.addr)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	for i := 1; i <= 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("a GET /%d", i); string(body) != want {
			t.Errorf("response %d = %q, want %q", i, body, want)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})
	p := startProxy(t, []string{addr}, nil)
	idle := dial(t, p.addr) // an idle keep-alive connection
	done := make(chan string, 1)
	go func() {
		resp, err := client().Get("http://" + p.addr + "/")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	time.Sleep(200 * time.Millisecond)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- p.f.Shutdown(ctx)
	}()
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection read = %v, want EOF (closed by shutdown)", err)
	}
	close(release)
	if got := <-done; got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
}

// A 1 GiB upload streams through: the heap of the whole process (client,
// proxy and server) stays far below the body's size.
func TestUpload1GiBStreams(t *testing.T) {
	testenv.Short(t)
	const size = 1 << 30
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	p := startProxy(t, []string{addr}, nil)
	runtime.GC() // what earlier tests left is not this upload's
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/up", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != fmt.Sprint(size) {
		t.Errorf("server received %s bytes, want %d", body, size)
	}
	if pk := peak.Load(); pk > 64<<20 {
		t.Errorf("peak heap in use = %d MiB during a 1 GiB upload, want under 64 MiB", pk>>20)
	}
	t.Logf("peak heap in use during a 1 GiB upload: %.1f MiB", float64(peak.Load())/(1<<20))
}

// A server that closes a keep-alive connection while it is idle in the
// pool (without saying Connection: close) costs the next request nothing
// but a new connection: it is answered at once, not after a timeout. The
// server either closes it fully (the request it is then sent draws a
// reset) or only half-closes it and goes on reading (the request draws an
// end of stream, and no reset ever comes); and it does so at once after
// its answer or after a while idle.
func TestPooledConnectionClosedByServer(t *testing.T) {
	for _, half := range []bool{false, true} {
		for _, idle := range []time.Duration{20 * time.Millisecond, 300 * time.Millisecond} {
			name := fmt.Sprintf("%s after %v", map[bool]string{false: "close", true: "half-close"}[half], idle)
			t.Run(name, func(t *testing.T) {
				var conns atomic.Int32
				srv := tcpServer(t, func(c net.Conn) {
					n := conns.Add(1)
					br := bufio.NewReader(c)
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%02d", n)
					if half {
						c.(*net.TCPConn).CloseWrite()
						io.Copy(io.Discard, c) // still reads, never answers
					}
				})
				p := startProxy(t, []string{srv}, func(_ *HTTPConfig, bc *BackendConfig) { bc.ServerTimeout = 10 * time.Second })
				cl := client()
				get := func() string {
					resp, err := cl.Get("http://" + p.addr + "/")
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return string(b)
				}
				if got := get(); got != "01" {
					t.Fatalf("first answer %q, want 01", got)
				}
				time.Sleep(idle) // the server's close reaches the pool
				start := time.Now()
				if got := get(); got != "02" {
					t.Errorf("second answer %q, want 02 (from a new connection)", got)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("second request took %v: the stale pooled connection was waited on", d)
				}
			})
		}
	}
}
