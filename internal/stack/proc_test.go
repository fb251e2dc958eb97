package stack

import (
	"net"
	"os"
	"testing"
)

func TestListenerOwner(t *testing.T) {
	for _, network := range []struct{ name, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(network.name, func(t *testing.T) {
			ln, err := net.Listen(network.name, network.addr)
			if err != nil {
				t.Skipf("%s: %v", network.name, err)
			}
			addr := ln.Addr().String()
			me := os.Getpid()
			if got := listenerOwner(addr, []int{1 << 22, me}); got != me {
				t.Errorf("listenerOwner(%s) = %d, want %d (this process)", addr, got, me)
			}
			if got := listenerOwner(addr, []int{1 << 22}); got != 0 {
				t.Errorf("listenerOwner(%s, other pids) = %d, want 0", addr, got)
			}
			ln.Close()
			if got := listenerOwner(addr, []int{me}); got != 0 {
				t.Errorf("listenerOwner(%s) after close = %d, want 0", addr, got)
			}
		})
	}
	if got := listenerOwner("not an address", []int{os.Getpid()}); got != 0 {
		t.Errorf("listenerOwner(bad address) = %d, want 0", got)
	}
}
