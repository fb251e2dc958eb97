package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dialer opens connections from inside a host: a socket belongs to the
// namespace of the thread that created it, so every dial runs on one
// thread that joined the host's namespace and never leaves it.
type Dialer struct {
	reqs chan dialReq
	done chan struct{} // closed when the dialing thread has ended
}

type dialReq struct {
	ctx           context.Context
	network, addr string
	reply         chan dialResult
}

type dialResult struct {
	c   net.Conn
	err error
}

// Dialer returns a dialer from the named host, until ctx ends.
func (n *Net) Dialer(ctx context.Context, host string) (*Dialer, error) {
	return NewDialer(ctx, n.NS(host))
}

// NewDialer returns a dialer from the named network namespace (under
// Dir), until ctx ends.
func NewDialer(ctx context.Context, ns string) (*Dialer, error) {
	f, err := os.Open(filepath.Join(Dir, ns))
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	d := &Dialer{reqs: make(chan dialReq), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(d.done)
		defer f.Close()
		// Never unlocked: the thread ends with the goroutine instead of
		// going back to the scheduler inside another namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("netns: joining %s: %w", ns, err)
			return
		}
		ready <- nil
		var nd net.Dialer
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-d.reqs:
				c, err := nd.DialContext(r.ctx, r.network, r.addr)
				r.reply <- dialResult{c, err}
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// In runs fn on an OS thread moved into the named network namespace (under
// Dir). The thread stays locked and ends with fn, so no other goroutine
// ever runs in the namespace by accident. Sockets fn opens stay in it, and
// may be used from anywhere afterwards.
func In(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open(filepath.Join(Dir, ns))
		if err != nil {
			done <- fmt.Errorf("netns: %w", err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netns: joining %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// DialContext dials from the host; it fits http.Transport.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r := dialReq{ctx: ctx, network: network, addr: addr, reply: make(chan dialResult, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.done:
		return nil, net.ErrClosed
	}
	res := <-r.reply
	return res.c, res.err
}
