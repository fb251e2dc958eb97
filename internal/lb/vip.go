package lb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// Defer marks addresses that Start must not bind: in VRRP local mode the
// shared front address is served only while this instance is master (see
// Hold and Release). Call before Start.
func (l *LB) Defer(addrs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.deferred == nil {
		l.deferred = map[string]bool{}
	}
	for _, a := range addrs {
		l.deferred[a] = true
	}
}

// Hold binds and serves a deferred address for every frontend that lists
// it. A peer that has just lost mastership may still hold the port for a
// moment, so binding is retried for up to two seconds.
func (l *LB) Hold(addr string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bound []boundListener
	for _, f := range l.frontends {
		if _, ok := f.listeners[addr]; ok || !slices.Contains(f.cfg.Bind, addr) {
			continue
		}
		var ln net.Listener
		var err error
		for try := 0; try < 100; try++ {
			if ln, err = l.listen("tcp", addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			for _, b := range bound {
				b.ln.Close()
			}
			return fmt.Errorf("frontend %q: bind %s: %w", f.Name, addr, err)
		}
		bound = append(bound, boundListener{f, addr, ln})
	}
	l.serve(bound)
	return nil
}

// Release stops accepting on a held address. Connections already accepted
// finish normally.
func (l *LB) Release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.frontends {
		if ln, ok := f.listeners[addr]; ok {
			ln.Close()
			delete(f.listeners, addr)
			l.log.Info("released", "frontend", f.Name, "address", addr)
		}
	}
}

// CloseOn drains, in the background, the client connections accepted on
// any of addrs: idle ones close at once, the others after their current
// request, and those still open after the configured grace are closed. In
// VRRP ip mode an LB calls it when it gives up its virtual addresses:
// clients reach the new master from then on, and a connection left open
// here would only wait for packets that never come.
func (l *LB) CloseOn(addrs []netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	grace := l.cfg.Grace.D()
	for _, f := range l.frontends {
		for _, a := range addrs {
			var n int
			if f.HTTP != nil {
				n = f.HTTP.CloseOn(a, grace)
			} else {
				n = f.TCP.CloseOn(a, grace)
			}
			if n > 0 {
				l.log.Info("closing connections on a released address", "frontend", f.Name, "address", a, "connections", n, "grace", grace)
			}
		}
	}
}

// OnBackendHealth registers fn, called with a backend's name and its
// number of usable servers whenever a server's health changes (VRRP
// tracking uses it). Call before Start.
func (l *LB) OnBackendHealth(fn func(backend string, usable int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onHealth = fn
}

func (l *LB) healthChanged(b *Backend) {
	l.mu.Lock()
	fn := l.onHealth
	n := 0
	for _, s := range b.servers {
		if s.up() {
			n++
		}
	}
	l.mu.Unlock()
	if fn != nil {
		fn(b.Name, n)
	}
}
