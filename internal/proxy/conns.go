package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
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
	local() netip.Addr
}

// connSet tracks a frontend's client connections for graceful shutdown.
type connSet struct {
	mu       sync.Mutex // guards the fields below
	conns    map[tracked]struct{}
	draining bool
	empty    chan struct{} // closed when the set empties, for drain
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
	if s.empty != nil && len(s.conns) == 0 {
		close(s.empty)
		s.empty = nil
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

// shutdown refuses new connections and drains all.
func (s *connSet) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	return s.drain(ctx, nil)
}

// closeOn drains the connections whose local address is addr, in the
// background, for up to grace, and returns how many there are.
func (s *connSet) closeOn(addr netip.Addr, grace time.Duration) int {
	match := map[tracked]bool{}
	for c := range s.snapshot() {
		if c.local() == addr {
			match[c] = true
		}
	}
	if len(match) > 0 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			s.drain(ctx, match)
		}()
	}
	return len(match)
}

// drain makes the connections of set (nil: all) close after their current
// request: idle ones at once, active ones when it is done. Those still open
// when ctx is done are closed then.
func (s *connSet) drain(ctx context.Context, set map[tracked]bool) error {
	s.mu.Lock()
	for c := range s.conns {
		if set == nil || set[c] {
			c.setClosing()
		}
	}
	s.mu.Unlock()
	// Idle connections are woken at every pass: one that was between
	// requests may have become active just before setClosing.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		left := 0
		for c := range s.conns {
			if set != nil && !set[c] {
				continue
			}
			left++
			if !c.isActive() {
				c.wake()
			}
		}
		if left == 0 {
			s.mu.Unlock()
			return nil
		}
		if s.empty == nil {
			s.empty = make(chan struct{})
		}
		empty := s.empty
		s.mu.Unlock()
		select {
		case <-empty:
		case <-tick.C:
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				if set == nil || set[c] {
					c.close()
				}
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
// Accept would register each with the Go poller, look up its address and
// make system calls the scheduler is told of, only for the frontend to
// take the socket out again. When none is queued, a Listener waits in
// connPoller for the next; another TCP listener waits in Go's Accept,
// which takes that next connection itself. No connection gets keep-alive
// probes: the frontends' timeouts end idle connections long before a
// probe would (HAProxy sets none by default either).
func acceptLoop(ln net.Listener, gate func(), handle func(net.Conn)) error {
	q := queuedAccepts(ln)
	wl, _ := ln.(*Listener)
	var delay time.Duration
	for {
		if gate != nil {
			gate()
		}
		var c net.Conn
		var err error
		if q != nil {
			c, err = q.accept()
		}
		if q == nil || err == syscall.EAGAIN {
			if wl != nil {
				select {
				case <-wl.ready.rch:
					continue
				case <-wl.done:
					return nil
				}
			}
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

// Listener is a TCP listener whose frontend waits for its next connection
// in connPoller rather than in Go's Accept (see acceptLoop). One frontend
// serves it. Closing it through Close, the only way it may be closed, ends
// the frontend's Serve.
type Listener struct {
	tl    *net.TCPListener
	q     *queuedAcceptor
	ready *pollConn // a token when a connection is queued (watchListener)
	once  sync.Once
	done  chan struct{} // closed by Close
}

// NewListener returns ln as a Listener, or ln itself if it is one already,
// is not a TCP listener or connPoller cannot watch it.
func NewListener(ln net.Listener) net.Listener {
	if _, ok := ln.(*Listener); ok {
		return ln
	}
	q := queuedAccepts(ln)
	if q == nil {
		return ln
	}
	var w *pollConn
	var err error
	if cerr := q.rc.Control(func(fd uintptr) {
		w, err = connPoller.watchListener(int(fd))
	}); cerr != nil || err != nil {
		return ln
	}
	return &Listener{tl: ln.(*net.TCPListener), q: q, ready: w, done: make(chan struct{})}
}

// Close takes the socket out of connPoller, ends Serve and closes the
// listener.
func (l *Listener) Close() error {
	l.once.Do(func() {
		connPoller.unwatch(l.ready)
		close(l.done)
	})
	return l.tl.Close()
}

// Accept, Addr, File and SyscallConn are the TCP listener's.
func (l *Listener) Accept() (net.Conn, error)             { return l.tl.Accept() }
func (l *Listener) Addr() net.Addr                        { return l.tl.Addr() }
func (l *Listener) File() (*os.File, error)               { return l.tl.File() }
func (l *Listener) SyscallConn() (syscall.RawConn, error) { return l.tl.SyscallConn() }

// queuedAccepts returns an acceptor of ln's socket, or nil if ln is not a
// TCP listener or connPoller does not run. The listening socket gets
// TCP_NODELAY, which the sockets it accepts inherit: small responses leave
// at once, as on Go's connections, at no system call per connection.
func queuedAccepts(ln net.Listener) *queuedAcceptor {
	if wl, ok := ln.(*Listener); ok {
		return wl.q
	}
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
	q := &queuedAcceptor{rc: rc}
	q.fn = q.acceptFD
	return q
}

// queuedAcceptor accepts connections straight off a listener's socket.
// Its function for RawConn.Control, and what that returns, are made once,
// not once per connection.
type queuedAcceptor struct {
	rc    syscall.RawConn
	fn    func(uintptr) // acceptFD
	fd    int
	raddr netip.AddrPort
	err   error
}

func (q *queuedAcceptor) acceptFD(lfd uintptr) {
	for {
		q.fd, q.raddr, q.err = accept(int(lfd))
		if q.err != syscall.EINTR && q.err != syscall.ECONNABORTED {
			return
		}
	}
}

// accept accepts a connection without waiting: EAGAIN when none is queued.
func (q *queuedAcceptor) accept() (net.Conn, error) {
	if err := q.rc.Control(q.fn); err != nil {
		return nil, err
	}
	if q.err == syscall.EAGAIN {
		return nil, q.err
	}
	if q.err != nil {
		return nil, os.NewSyscallError("accept4", q.err)
	}
	return socketConn(q.fd, netip.AddrPort{}, q.raddr), nil
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
