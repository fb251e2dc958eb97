package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The HTTP path's plain TCP connections, client and server, wait for
// readiness in a poller of their own rather than in the Go runtime's.
//
// The runtime makes the goroutines of one epoll_wait batch runnable in the
// reverse of the kernel's order (its list of them is a stack), so under
// load the connection that became ready first in a batch is served last,
// which widens the latency tail: keep-alive p99 was 1.5–1.9× HAProxy's at
// an equal p50. This poller wakes a batch's waiters in the kernel's order,
// as HAProxy serves its events. Its epoll set is itself watched by the Go
// poller (see epollSet), so it needs no thread of its own and wakes when
// the scheduler next polls the network.
//
// The sockets stay registered in the Go poller too, which is what closes
// them and where an Upgrade tunnel's splice waits (see ReadFrom); otherwise
// nobody waits there, so its events cost a little bookkeeping each.

// connPoller is the process's one poller of HTTP connections.
var connPoller poller

type poller struct {
	once  sync.Once
	ep    *epollSet // nil when it could not start
	mu    sync.Mutex
	conns map[int32]*pollConn // by socket descriptor
	gen   int32               // tells apart connections that had the same descriptor

	// The batch being woken (loop only), and the index in it of the first
	// reader that is waiting (-1: none).
	ready []chan struct{}
	first int
}

var errNoPoller = errors.New("connection poller unavailable")

func (p *poller) start() {
	ep, err := newEpollSet("http-connections", 256)
	if err != nil {
		return
	}
	p.ep, p.conns = ep, map[int32]*pollConn{}
	go p.loop()
}

// loop wakes the waiters of ready sockets, batch by batch, in the order the
// kernel reports them. It runs for the life of the process.
func (p *poller) loop() {
	collect := func(evs []unix.EpollEvent) {
		p.mu.Lock()
		p.first = -1
		for _, ev := range evs {
			c := p.conns[ev.Fd]
			if c == nil || c.gen != ev.Pad {
				continue // closed since
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
				c.leftover.Store(true) // before the token: its reader sees it
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
				if p.first < 0 && c.rwaiting.Load() {
					p.first = len(p.ready)
				}
				p.ready = append(p.ready, c.rch)
			}
			if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				p.ready = append(p.ready, c.wch)
			}
		}
		p.mu.Unlock()
	}
	for {
		err := p.ep.wait(collect)
		// A goroutine made runnable takes the scheduler's next slot and
		// pushes the one there to the back of its queue: waking the first
		// waiting reader last makes the batch run in order.
		for i, ch := range p.ready {
			if i != p.first {
				notify(ch)
			}
		}
		if p.first >= 0 {
			notify(p.ready[p.first])
		}
		clear(p.ready)
		p.ready = p.ready[:0]
		if err != nil {
			return
		}
	}
}

// wrapConn returns c as a pollConn when it is a TCP connection, else c. If
// the poller cannot take it, c stays with the Go poller: slower, not wrong.
// (Go's TCP connections come with TCP_NODELAY set: a small response leaves
// at once.)
func wrapConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	pc, err := connPoller.add(tc)
	if err != nil {
		return c
	}
	return pc
}

func (p *poller) add(tc *net.TCPConn) (*pollConn, error) {
	p.once.Do(p.start)
	if p.ep == nil {
		return nil, errNoPoller
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &pollConn{tc: tc, rc: rc, rch: make(chan struct{}, 1), wch: make(chan struct{}, 1), drained: drainedEmpty}
	c.rstep, c.wstep = c.recvStep, c.sendStep
	p.mu.Lock()
	defer p.mu.Unlock()
	var cerr error
	err = rc.Control(func(fd uintptr) {
		// Edge-triggered: an event means the socket became readable or
		// writable since it last reported EAGAIN.
		p.gen++
		c.gen = p.gen
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET, Fd: int32(fd), Pad: c.gen}
		cerr = unix.EpollCtl(p.ep.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		c.fd = int32(fd)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p.conns[c.fd] = c
	return c, nil
}

// remove takes c out of the poller, before its socket closes.
func (p *poller) remove(c *pollConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	c.rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.ep.fd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// notify hands ch a token unless it holds one already.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pollConn is a TCP connection read and written with recv(2) and send(2)
// (see recv), waiting in connPoller while the socket is empty or full. One
// goroutine may read while another writes; deadlines and Close interrupt
// both, as with net.Conn.
type pollConn struct {
	tc  *net.TCPConn
	rc  syscall.RawConn
	fd  int32
	gen int32 // in the poller's events for it

	// Readiness tokens, from the poller, a deadline or Close. A token can
	// be stale (the socket was drained since); a waiter then tries once
	// more and waits again.
	rch, wch chan struct{}
	closed   atomic.Bool

	// drained says what the last read found: the socket empty (EAGAIN),
	// or fewer bytes than it asked for. Either way the next read first
	// waits for a token rather than make a system call that would find
	// nothing: whatever arrives since sends one. But a short read can
	// leave something queued that sends no further event: the end of the
	// stream or an error that came with the last data, or data beyond
	// urgent data (a read stops at its mark). Once the poller has seen any
	// of these (leftover), a short read is not waited on. A new connection
	// starts drained, as adding a socket that is readable already to the
	// poller reports it at once. drained is the reader's alone; rwaiting
	// tells the poller the reader waits (see loop).
	drained  drainState
	leftover atomic.Bool
	rwaiting atomic.Bool

	rstep func(fd uintptr) // recvStep, bound once
	rp    []byte
	rn    int
	rerr  error

	wstep func(fd uintptr) // sendStep, bound once
	wp    []byte
	wn    int
	werr  error

	mu     sync.Mutex // guards the deadlines' times and timers
	rd, wd deadline
}

// deadline is one direction's deadline: a timer that sets expired when it
// passes.
type deadline struct {
	at      time.Time // zero: none
	t       *time.Timer
	expired atomic.Bool
}

var _ net.Conn = (*pollConn)(nil)

type drainState uint8

const (
	notDrained   drainState = iota
	drainedShort            // the last read got less than it asked for
	drainedEmpty            // the last read got EAGAIN
)

// readable waits, when the last read drained the socket, until something
// has arrived since, or a deadline or Close (which recv then reports).
func (c *pollConn) readable() error {
	if c.drained == notDrained || c.drained == drainedShort && c.leftover.Load() {
		return nil
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	if c.rd.expired.Load() {
		return os.ErrDeadlineExceeded
	}
	c.rwaiting.Store(true)
	<-c.rch
	c.rwaiting.Store(false)
	c.drained = notDrained
	return nil
}

// recv reads once into p. It returns EAGAIN when the socket is empty and
// io.EOF at the end of the stream.
func (c *pollConn) recv(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if c.rd.expired.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	c.rp = p
	err := c.rc.Control(c.rstep)
	n, rerr := c.rn, c.rerr
	c.rp, c.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		c.drained = drainedEmpty
		return 0, rerr
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF // and readable from now on: no edge comes
	}
	c.drained = notDrained
	if n < len(p) {
		c.drained = drainedShort
	}
	return n, nil
}

func (c *pollConn) recvStep(fd uintptr) {
	for {
		c.rn, c.rerr = recv(int(fd), c.rp)
		if c.rerr != syscall.EINTR {
			return
		}
	}
}

func (c *pollConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if err := c.readable(); err != nil {
			return 0, err
		}
		n, err := c.recv(p)
		if err != syscall.EAGAIN {
			return n, err
		}
	}
}

func (c *pollConn) Write(p []byte) (int, error) {
	c.wp, c.wn = p, 0
	defer func() { c.wp = nil }()
	for {
		if c.closed.Load() {
			return c.wn, net.ErrClosed
		}
		if c.wd.expired.Load() {
			return c.wn, os.ErrDeadlineExceeded
		}
		c.werr = nil
		err := c.rc.Control(c.wstep)
		if err == nil {
			err = c.werr
		}
		c.werr = nil
		if err != syscall.EAGAIN {
			return c.wn, err
		}
		<-c.wch
	}
}

func (c *pollConn) sendStep(fd uintptr) {
	for c.wn < len(c.wp) {
		n, err := send(int(fd), c.wp[c.wn:])
		switch err {
		case nil:
			c.wn += n
		case syscall.EINTR:
		default:
			c.werr = err // EAGAIN: wait until writable
			return
		}
	}
}

// Close closes the connection; waiting reads and writes return
// net.ErrClosed.
func (c *pollConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	connPoller.remove(c)
	c.mu.Lock()
	for _, d := range []*deadline{&c.rd, &c.wd} {
		if d.t != nil {
			d.t.Stop()
		}
	}
	c.mu.Unlock()
	notify(c.rch)
	notify(c.wch)
	return c.tc.Close()
}

// ReadFrom copies r to c: from another pollConn with splice(2), as between
// two net.TCPConns (an Upgrade tunnel's bytes never enter user space),
// waiting in the Go poller and under neither connection's deadlines.
func (c *pollConn) ReadFrom(r io.Reader) (int64, error) {
	if src, ok := r.(*pollConn); ok {
		return c.tc.ReadFrom(src.tc)
	}
	return io.Copy(writerOnly{c}, r)
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// CloseWrite shuts down the sending side.
func (c *pollConn) CloseWrite() error { return c.tc.CloseWrite() }

// SyscallConn gives the socket, for the parker.
func (c *pollConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *pollConn) LocalAddr() net.Addr  { return c.tc.LocalAddr() }
func (c *pollConn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

func (c *pollConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *pollConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(&c.rd, c.rch, t) }
func (c *pollConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(&c.wd, c.wch, t) }

// setDeadline sets d to t (zero: none). A deadline already passed
// interrupts a waiting read or write at once; a later one arms d's timer,
// whose callback (expire) does it then.
func (c *pollConn) setDeadline(d *deadline, ch chan struct{}, t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return net.ErrClosed // and Close has stopped the timers
	}
	d.at = t
	wait := time.Until(t)
	switch {
	case t.IsZero():
		d.expired.Store(false)
		if d.t != nil {
			d.t.Stop()
		}
	case wait > 0:
		d.expired.Store(false)
		if d.t == nil {
			d.t = time.AfterFunc(wait, func() { c.expire(d, ch) })
		} else {
			d.t.Reset(wait)
		}
	default:
		if d.t != nil {
			d.t.Stop()
		}
		d.expired.Store(true)
		notify(ch)
	}
	return nil
}

// expire marks d passed when its timer fires, and wakes the waiter; a
// deadline moved since is left to its new timer.
func (c *pollConn) expire(d *deadline, ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch wait := time.Until(d.at); {
	case d.at.IsZero() || c.closed.Load():
	case wait > 0:
		d.t.Reset(wait) // a deadline without a monotonic reading, and the clock stepped back
	default:
		d.expired.Store(true)
		notify(ch)
	}
}
