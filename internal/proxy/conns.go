package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// tracked is a client connection as a frontend's shutdown sees it.
type tracked interface {
	close()
	isActive() bool // in the middle of a request (http) or open (tcp)
	setClosing()    // close after the current request
	wake()          // make an idle connection notice setClosing
}

// connSet tracks a frontend's client connections for graceful shutdown.
type connSet struct {
	mu       sync.Mutex // guards the fields below
	conns    map[tracked]struct{}
	draining bool
	done     chan struct{} // closed when the set empties while draining
}

func (s *connSet) add(c tracked) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	if s.conns == nil {
		s.conns = map[tracked]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c tracked) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.draining && len(s.conns) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
}

// snapshot returns the connections open now.
func (s *connSet) snapshot() map[tracked]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[tracked]struct{}, len(s.conns))
	for c := range s.conns {
		out[c] = struct{}{}
	}
	return out
}

func (s *connSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// shutdown closes idle connections at once, lets active ones finish their
// current request, and closes whatever is left when ctx is done.
func (s *connSet) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	var done chan struct{}
	if len(s.conns) > 0 {
		done = make(chan struct{})
		s.done = done
	}
	for c := range s.conns {
		c.setClosing()
		if !c.isActive() {
			c.wake()
		}
	}
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	// A connection that was between requests may have become active just
	// before setClosing: sweep idle ones a few times.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			s.mu.Lock()
			for c := range s.conns {
				if !c.isActive() {
					c.wake()
				}
			}
			s.mu.Unlock()
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.close()
			}
			s.mu.Unlock()
			return ctx.Err()
		}
	}
}

// acceptLoop accepts connections until ln is closed, backing off on
// temporary errors (such as running out of file descriptors). gate, when
// set, is called before each accept and may wait.
//
// From a TCP listener, connections already queued are accepted straight
// off its socket, as pollConns not watched yet (see socketConn): Go's
// Accept would register each with the Go poller and look up its address,
// only for the frontend to take the socket out again. When none is
// queued, Go's Accept waits for the next, which is the only way to wait
// on a Go listener. No connection gets keep-alive probes: the frontends'
// timeouts end idle connections long before a probe would (HAProxy sets
// none by default either).
func acceptLoop(ln net.Listener, gate func(), handle func(net.Conn)) error {
	rc := queuedAccepts(ln)
	var delay time.Duration
	for {
		if gate != nil {
			gate()
		}
		var c net.Conn
		var err error
		if rc != nil {
			c, err = acceptQueued(rc)
		}
		if c == nil && (rc == nil || err == syscall.EAGAIN) {
			c, err = ln.Accept()
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetKeepAlive(false)
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay *= 2; delay > time.Second {
					delay = time.Second
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		handle(c)
	}
}

// queuedAccepts returns ln's socket for acceptQueued, or nil if ln is not
// a TCP listener or connPoller does not run. The listening socket gets
// TCP_NODELAY, which the sockets it accepts inherit: small responses leave
// at once, as on Go's connections, at no system call per connection.
func queuedAccepts(ln net.Listener) syscall.RawConn {
	tl, ok := ln.(*net.TCPListener)
	if !ok || !connPoller.running() {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	if cerr := rc.Control(func(fd uintptr) {
		err = setNoDelay(int(fd))
	}); cerr != nil || err != nil {
		return nil
	}
	return rc
}

// acceptQueued accepts a connection from listener rc's socket (see
// queuedAccepts) without waiting: EAGAIN when none is queued.
func acceptQueued(rc syscall.RawConn) (net.Conn, error) {
	var fd int
	var raddr net.Addr
	var err error
	if cerr := rc.Control(func(lfd uintptr) {
		for {
			fd, raddr, err = accept(int(lfd))
			if err != syscall.EINTR && err != syscall.ECONNABORTED {
				return
			}
		}
	}); cerr != nil {
		return nil, cerr
	}
	if err == syscall.EAGAIN {
		return nil, err
	}
	if err != nil {
		return nil, os.NewSyscallError("accept4", err)
	}
	return socketConn(fd, nil, raddr), nil
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
