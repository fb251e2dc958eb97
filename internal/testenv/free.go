package testenv

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// handedOut are the ports FreeAddr and FreeRange have returned in this
// process. A port is free only while nothing takes it, and the kernel may
// pick the port it just picked again: a test that asks for several ports
// before it starts anything must not get one twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// claim marks ports base..base+n-1 handed out, unless one of them already
// is.
func claim(base, n int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	for p := base; p < base+n; p++ {
		if handedOut.ports[p] {
			return false
		}
	}
	for p := base; p < base+n; p++ {
		handedOut.ports[p] = true
	}
	return true
}

// FreeAddr returns a loopback address (host:port) of network, tcp or udp,
// that nothing listens on at the moment, and that no earlier call in this
// process returned.
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	for range 100 {
		var addr string
		var port int
		if network == "udp" {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr, port = c.LocalAddr().String(), c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr, port = ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		if claim(port, 1) {
			return addr
		}
	}
	t.Fatalf("no free %s port not handed out before", network)
	return ""
}

// FreeRange returns the first of n consecutive loopback TCP ports that
// nothing listens on at the moment, from a port the kernel picked, none of
// them handed out before in this process.
func FreeRange(t testing.TB, n int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := base+n < 65000
		for i := 1; ok && i < n; i++ {
			l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if ok = err == nil; ok {
				l2.Close()
			}
		}
		if ok && claim(base, n) {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
