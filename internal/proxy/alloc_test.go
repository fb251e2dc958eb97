//go:build !race

package proxy

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// A keep-alive request through the proxy, in steady state, allocates
// nothing: no garbage means no collector pauses in the latency tail. The
// client and the backend here allocate nothing either, so every allocation
// counted would be the proxy's.
func TestKeepAliveRequestAllocatesNothing(t *testing.T) {
	p := startProxy(t, []string{rawBackend(t), rawBackend(t)}, nil)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /index.html HTTP/1.1\r\nHost: bench.test\r\nAccept: */*\r\n\r\n")
	want := []byte("\r\n\r\nhello from backend 1\n")
	buf := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	c.SetDeadline(deadline)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], want) {
			m, err := c.Read(buf[n:])
			if err != nil {
				t.Fatalf("after %q: %v", buf[:n], err)
			}
			n += m
		}
	}
	for range 100 { // warm up: pools, the server connections, buffers
		roundTrip()
	}
	if a := testing.AllocsPerRun(2000, roundTrip); a > 0.02 {
		t.Errorf("%.3f allocations per request, want none", a)
	}
}

// A connection that closes after its request gives its read buffer,
// response writer and request scratch back, as one going idle does: with a
// new connection per request, the proxy must not allocate them (4 KiB
// each, and the scratch's growth) anew every time. The bound is per
// connection for everything in the process, the client's dial included,
// which stays well under one buffer's size.
func TestConnectionPerRequestReusesBuffers(t *testing.T) {
	p := startProxy(t, []string{rawBackend(t)}, nil)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 4096)
	one := func() {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := c.Read(buf[n:])
			n += m
			if err != nil {
				break // the proxy closes after the answer
			}
		}
		if !bytes.HasSuffix(buf[:n], []byte("hello from backend 1\n")) {
			t.Fatalf("answer %q", buf[:n])
		}
	}
	for range 50 { // warm up: pools, the server connection
		one()
	}
	waitFor(t, "the warm-up connections to end", func() bool { return p.f.ActiveConns() == 0 })
	const n = 300
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		one()
	}
	waitFor(t, "the connections to end", func() bool { return p.f.ActiveConns() == 0 })
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 4096 {
		t.Errorf("%d bytes allocated per connection, want under 4096 (buffers reused)", per)
	} else {
		t.Logf("%d bytes allocated per connection, client included", per)
	}
}

// A relayed TCP connection costs the proxy a few small allocations: its
// addresses are values, a socket connected at once is relayed bare, and
// the relay's bookkeeping reuses its memory. The proxy's share is what a
// connection through it allocates beyond one straight to the same server
// (the client's dial and the server's accept are in both).
func TestTCPConnectionAllocatesLittle(t *testing.T) {
	srv := echoServer(t, func(b []byte) []byte { return b })
	f, _, addr := tcpProxy(t, time.Minute, time.Minute, srv)
	buf := make([]byte, 5)
	one := func(to string) {
		c, err := net.Dial("tcp", to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	// perConn returns the objects and bytes allocated per connection to
	// addr, once the proxy has counted them all out.
	perConn := func(to string) (objects, bytes uint64) {
		for range 50 { // warm up: pools, relay loops
			one(to)
		}
		waitFor(t, "the warm-up connections to end", func() bool { return f.ActiveConns() == 0 })
		const n = 300
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			one(to)
		}
		waitFor(t, "the connections to end", func() bool { return f.ActiveConns() == 0 })
		runtime.ReadMemStats(&after)
		return (after.Mallocs - before.Mallocs) / n, (after.TotalAlloc - before.TotalAlloc) / n
	}
	do, db := perConn(srv)
	po, pb := perConn(addr)
	objects, size := int64(po)-int64(do), int64(pb)-int64(db)
	t.Logf("the proxy's share per connection: %d objects, %d bytes (direct %d, %d B; proxied %d, %d B)", objects, size, do, db, po, pb)
	// 4 here. 14 when a connection that came while the frontend waited
	// was accepted through Go's Accept, as these all do without a Listener
	// (see acceptLoop); 30 before addresses became values and the dial and
	// relay stopped allocating per connection.
	if objects > 8 {
		t.Errorf("the proxy allocates %d objects per relayed connection, want at most 8", objects)
	}
}
