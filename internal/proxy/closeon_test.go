package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/balance"
)

// listenOn serves f on another loopback address too until the test ends,
// and returns its address.
func listenOn(t *testing.T, f interface{ Serve(net.Listener) error }, ip string) string {
	t.Helper()
	tl, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(tl)
	t.Cleanup(func() { ln.Close() })
	go f.Serve(ln)
	return ln.Addr().String()
}

// CloseOn drains only the connections accepted on the address given: a
// parked one closes at once, one with a request under way gets its answer
// (saying it closes) and then closes, and one whose answer does not come
// within grace is closed then. A connection on another address is left as
// it was.
func TestCloseOn(t *testing.T) {
	release, stuck := make(chan struct{}), make(chan struct{})
	arrived := make(chan string, 4)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			arrived <- r.URL.Path
			<-release
		case "/stuck":
			arrived <- r.URL.Path
			<-stuck
		}
		named("a")(w, r)
	})
	// Both handlers must end before the backend's Close, which waits for
	// them, whether or not the test gets that far.
	var unslow, unstick sync.Once
	t.Cleanup(func() {
		unslow.Do(func() { close(release) })
		unstick.Do(func() { close(stuck) })
	})
	bal, err := balance.New("roundrobin", []balance.Server{{Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ss := []*Server{NewServer("s1", addr, 0)}
	b := NewBackend("b", bal, ss, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: 10 * time.Second})
	f := NewHTTPFrontend("f", &HTTPConfig{Default: b, TimeoutClient: time.Minute})
	f.parkAfter = 50 * time.Millisecond
	kept := serve(t, f, ss...)
	released := listenOn(t, f, "127.0.0.2")

	other := dial(t, kept)
	otherR := bufio.NewReader(other)
	get(t, other, otherR, "/")
	parked := dial(t, released)
	get(t, parked, bufio.NewReader(parked), "/")
	waitParked(t, f, 2)
	slow, stuckC := dial(t, released), dial(t, released)
	for _, c := range []struct {
		conn net.Conn
		path string
	}{{slow, "/slow"}, {stuckC, "/stuck"}} {
		fmt.Fprintf(c.conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", c.path)
		if got := <-arrived; got != c.path {
			t.Fatalf("backend got %s, want %s", got, c.path)
		}
	}

	const grace = time.Second
	start := time.Now()
	if n := f.CloseOn(netip.MustParseAddr("127.0.0.2"), grace); n != 3 {
		t.Errorf("CloseOn = %d connections, want 3 (parked, slow, stuck)", n)
	}
	if d := eof(t, parked); d > grace/2 {
		t.Errorf("parked connection closed after %v, want at once", d)
	}
	unslow.Do(func() { close(release) })
	slowR := bufio.NewReader(slow)
	resp, err := http.ReadResponse(slowR, nil)
	if err != nil {
		t.Fatalf("request under way: %v, want its answer", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "a GET /slow" || !resp.Close {
		t.Errorf("request under way: %q, Connection: %q; want its answer and close", body, resp.Header.Get("Connection"))
	}
	if n, err := slowR.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer: read %d, %v; want EOF", n, err)
	}
	stuckC.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(stuckC)
	if took := time.Since(start); err != nil || len(rest) != 0 || took < grace || took > grace+2*time.Second {
		t.Errorf("stuck request: %q, %v after %v; want nothing and EOF after the grace (%v)", rest, err, took, grace)
	}
	get(t, other, otherR, "/still")
	// As in HAProxy, a request already sent waits for its answer even
	// when its client is gone (no abort on close): then it counts out.
	unstick.Do(func() { close(stuck) })
	waitConns(t, f, 1)
}

// A TCP frontend's relayed connections on the address given close after
// grace; one on another address still relays.
func TestTCPCloseOn(t *testing.T) {
	srv := echoServer(t, func(b []byte) []byte { return b })
	f, _, kept := tcpProxy(t, time.Minute, time.Minute, srv)
	released := listenOn(t, f, "127.0.0.2")
	echo := func(c net.Conn, s string) error {
		if _, err := io.WriteString(c, s); err != nil {
			return err
		}
		buf := make([]byte, len(s))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != s {
			return fmt.Errorf("echo %q, want %q", buf, s)
		}
		return nil
	}
	other, gone := dialTCP(t, kept), dialTCP(t, released)
	for _, c := range []net.Conn{other, gone} {
		if err := echo(c, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	const grace = 300 * time.Millisecond
	start := time.Now()
	if n := f.CloseOn(netip.MustParseAddr("127.0.0.2"), grace); n != 1 {
		t.Errorf("CloseOn = %d connections, want 1", n)
	}
	if _, err := io.ReadAll(gone); err != nil {
		t.Errorf("relayed connection on the released address: %v, want EOF", err)
	}
	if took := time.Since(start); took < grace || took > grace+2*time.Second {
		t.Errorf("closed after %v, want after the grace (%v)", took, grace)
	}
	if err := echo(other, "still"); err != nil {
		t.Errorf("connection on the other address: %v", err)
	}
	waitFor(t, "one connection left", func() bool { return f.ActiveConns() == 1 })
}
