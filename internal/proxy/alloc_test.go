//go:build !race

package proxy

import (
	"bytes"
	"net"
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
