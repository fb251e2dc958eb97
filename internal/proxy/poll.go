package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The HTTP path's plain TCP connections, client and server, are bare
// sockets that wait for readiness in a poller of their own rather than
// net.Conns in the Go runtime's.
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
// Most sockets are accepted or dialled straight into it (acceptLoop,
// dialServer); one accepted or dialled by Go is taken out of the Go poller
// into it (wrapConn), so that no socket's events are reported twice. The
// frontends' listeners wait in it too (Listener).

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
			if w := c.wch.Load(); w != nil && ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				p.ready = append(p.ready, *w)
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

// wrapConn returns c as a pollConn watched by connPoller, if it is a TCP
// connection, else c. A Go connection's socket moves from the Go poller to
// connPoller; a pollConn not watched yet (see socketConn) is put there. If
// the poller cannot take the socket, c stays with the Go poller: slower,
// not wrong. (Go's TCP connections come with TCP_NODELAY set: a small
// response leaves at once.)
func wrapConn(c net.Conn) net.Conn {
	if pc, ok := c.(*pollConn); ok {
		if pc.rch != nil || connPoller.watch(pc, false) == nil {
			return pc
		}
		return goConn(pc)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	fd, err := dupSocket(rc)
	if err != nil {
		return c
	}
	pc := socketConn(fd, addrPort(tc.LocalAddr()), addrPort(tc.RemoteAddr()))
	if err := connPoller.watch(pc, false); err != nil {
		closeSocket(fd)
		return c
	}
	tc.Close() // the duplicate keeps the socket
	return pc
}

// goConn makes a Go connection of c's socket, for when connPoller cannot
// take it. c is closed.
func goConn(c *pollConn) net.Conn {
	fd, err := c.release()
	if err != nil {
		return c
	}
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	gc, err := net.FileConn(f) // a descriptor of its own
	if err != nil {
		return c // closed: it fails every read and write
	}
	return gc
}

// adoptSocket makes a connection of socket fd, which it takes over, with
// the addresses given: a pollConn, or a Go connection if the poller cannot
// take it.
func adoptSocket(fd int, laddr, raddr netip.AddrPort) net.Conn {
	return wrapConn(socketConn(fd, laddr, raddr))
}

// socketConn makes a pollConn of socket fd (non-blocking), which it takes
// over, with the addresses given (a local one not given is looked up when
// first asked for). It is not watched by connPoller until
// wrapConn (or dialIP, to wait for its connection): an accepted socket
// that is only relayed never is (see detach).
func socketConn(fd int, laddr, raddr netip.AddrPort) *pollConn {
	c := &pollConn{fd: fd, drained: drainedEmpty, laddr: laddr, raddr: raddr}
	c.ref.Store(1) // the connection's own reference, until Close
	return c
}

// running starts the poller if it is not yet, and reports whether it runs.
func (p *poller) running() bool {
	p.once.Do(p.start)
	return p.ep != nil
}

// watch puts c's socket in the poller, which c's reads and writes wait
// in; connecting says a connection attempt is under way, which a writer
// waits for (see connected).
func (p *poller) watch(c *pollConn, connecting bool) error {
	if !p.running() {
		return errNoPoller
	}
	c.rch = make(chan struct{}, 1)
	if connecting {
		// Before the socket is watched: its first event may be the
		// attempt's end.
		ch := make(chan struct{}, 1)
		c.wch.Store(&ch)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	c.gen = p.gen
	if err := p.ep.watch(c.fd, c.gen, false); err != nil {
		c.rch = nil
		return err
	}
	p.conns[int32(c.fd)] = c
	return nil
}

// remove forgets c. Closing its socket takes it out of the epoll set,
// unless another descriptor holds the socket open: then Close does (see
// handOff), and until then the generation in its events keeps them from
// reaching a connection that reuses the number.
func (p *poller) remove(c *pollConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
}

// watchListener puts listening socket fd, which the caller owns, in the
// poller: the returned pollConn only waits (its rch gets a token when a
// connection is queued) and is never read, written or closed. unwatch
// takes it out again, before fd is closed.
func (p *poller) watchListener(fd int) (*pollConn, error) {
	c := &pollConn{fd: fd}
	if err := p.watch(c, false); err != nil {
		return nil, err
	}
	return c, nil
}

// unwatch takes a socket that c does not own (see watchListener) out of
// the poller, while it is still open: unlike a pollConn's own socket,
// another descriptor (a listener handed to a new process) may keep it
// open, and its events coming.
func (p *poller) unwatch(c *pollConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
		epollCtl(p.ep.fd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
}

// notify hands ch a token unless it holds one already.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pollConn is a TCP socket read and written with recv(2) and send(2)
// (see recv), waiting in connPoller while it is empty or full. One
// goroutine may read while another writes; deadlines and Close interrupt
// both, as with net.Conn.
type pollConn struct {
	fd  int
	gen int32 // in the poller's events for it

	// ref counts the system calls using fd, plus one for the open
	// connection; closedRef is set once it is closed. The descriptor is
	// closed when both are gone, so that it cannot be reused under a
	// system call still running.
	ref       atomic.Int64
	handedOff atomic.Bool // see handOff

	// Readiness tokens, from the poller, a deadline or Close. A token can
	// be stale (the socket was drained since); a waiter then tries once
	// more and waits again. The writer's channel is made when a write
	// first has to wait (or a connection attempt, see watch): most
	// connections never fill their socket.
	rch chan struct{}
	wch atomic.Pointer[chan struct{}]

	// drained says what the last read found: the socket empty (EAGAIN),
	// or fewer bytes than it asked for. Either way the next read first
	// waits for a token rather than make a system call that would find
	// nothing: whatever arrives since sends one. But a short read can
	// leave something queued that sends no further event: the end of the
	// stream or an error that came with the last data, or data beyond
	// urgent data (see socketEvents). Once the poller has seen any of
	// these (leftover), a short read is not waited on, and EAGAIN re-arms
	// the socket. A new connection starts drained, as adding a socket that
	// is readable already to the poller reports it at once. drained is the
	// reader's alone; rwaiting tells the poller the reader waits (see
	// loop).
	drained  drainState
	leftover atomic.Bool
	rwaiting atomic.Bool

	mu     sync.Mutex // guards the deadlines' times and timers, and laddr
	rd, wd deadline
	// The addresses, as given when c was made; a local address not given
	// is looked up when first asked for (localAddrPort).
	laddr, raddr netip.AddrPort
}

const closedRef = 1 << 62

// incref takes a reference for a system call on fd; false once closed.
func (c *pollConn) incref() bool {
	for {
		r := c.ref.Load()
		if r&closedRef != 0 {
			return false
		}
		if c.ref.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// decref drops a reference, closing fd after the last one once closed.
func (c *pollConn) decref() {
	if c.ref.Add(-1) == closedRef {
		closeSocket(c.fd)
	}
}

// deadline is one direction's deadline: a timer that sets expired when it
// passes.
type deadline struct {
	at      time.Time // zero: none
	t       *time.Timer
	armed   time.Time   // when t fires; zero: it does not
	moved   atomic.Bool // at has changed since a wait last armed t
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
	if c.isClosed() {
		return net.ErrClosed
	}
	if c.rd.expired.Load() {
		return os.ErrDeadlineExceeded
	}
	c.rwaiting.Store(true)
	c.arm(&c.rd)
	<-c.rch
	c.rwaiting.Store(false)
	c.drained = notDrained
	return nil
}

// recv reads once into p. It returns EAGAIN when the socket is empty and
// io.EOF at the end of the stream.
func (c *pollConn) recv(p []byte) (int, error) {
	if !c.incref() {
		return 0, net.ErrClosed
	}
	if c.rd.expired.Load() {
		c.decref()
		return 0, os.ErrDeadlineExceeded
	}
	var n int
	var rerr error
	for {
		n, rerr = recv(c.fd, p)
		if rerr != syscall.EINTR {
			break
		}
	}
	if rerr == syscall.EAGAIN && c.leftover.Load() {
		connPoller.ep.watch(c.fd, c.gen, true) // see socketEvents
	}
	c.decref()
	switch {
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
	wn := 0
	for {
		if !c.incref() {
			return wn, net.ErrClosed
		}
		if c.wd.expired.Load() {
			c.decref()
			return wn, os.ErrDeadlineExceeded
		}
		var err error
		for wn < len(p) {
			var n int
			n, err = send(c.fd, p[wn:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				break
			}
			wn += n
		}
		c.decref()
		if err != syscall.EAGAIN {
			return wn, err
		}
		w := c.wch.Load()
		if w == nil {
			ch := make(chan struct{}, 1)
			c.wch.Store(&ch)
			continue // once more: it may have become writable before the poller could say
		}
		c.arm(&c.wd)
		<-*w // wait until writable
	}
}

// Close closes the connection; waiting reads and writes return
// net.ErrClosed.
func (c *pollConn) Close() error {
	for {
		r := c.ref.Load()
		if r&closedRef != 0 {
			return net.ErrClosed
		}
		if c.ref.CompareAndSwap(r, r|closedRef) {
			break
		}
	}
	connPoller.remove(c)
	if c.handedOff.Load() {
		epollCtl(connPoller.ep.fd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	c.mu.Lock()
	for _, d := range []*deadline{&c.rd, &c.wd} {
		if d.t != nil {
			d.t.Stop()
		}
	}
	c.mu.Unlock()
	c.wake(&c.rd)
	c.wake(&c.wd)
	c.decref() // the connection's own reference
	return nil
}

func (c *pollConn) isClosed() bool { return c.ref.Load()&closedRef != 0 }

// CloseWrite shuts down the sending side.
func (c *pollConn) CloseWrite() error {
	if !c.incref() {
		return net.ErrClosed
	}
	defer c.decref()
	return shutdownWrite(c.fd)
}

// handOff returns a descriptor of its own for the socket, which then
// stays open when c is closed: Close stops watching it (closing c's
// descriptor alone would not), and it is waited for elsewhere (see parker).
func (c *pollConn) handOff() (int, error) {
	if !c.incref() {
		return -1, net.ErrClosed
	}
	defer c.decref()
	c.handedOff.Store(true) // before the duplicate exists: a Close meanwhile unwatches it
	fd, err := dupFD(c.fd)
	if err != nil {
		c.handedOff.Store(false)
	}
	return fd, err
}

// release gives up c's socket, which the caller then owns, and closes c.
// Only a pollConn never watched (see socketConn) can be released, and
// only while no call is using it.
func (c *pollConn) release() (int, error) {
	if c.rch != nil || !c.ref.CompareAndSwap(1, closedRef) {
		return -1, net.ErrClosed
	}
	return c.fd, nil
}

func (c *pollConn) LocalAddr() net.Addr  { return tcpAddr(c.localAddrPort()) }
func (c *pollConn) RemoteAddr() net.Addr { return tcpAddr(c.raddr) }

// localAddrPort is LocalAddr as a value.
func (c *pollConn) localAddrPort() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.laddr.IsValid() && c.incref() {
		if a, err := localAddr(c.fd); err == nil {
			c.laddr = a
		}
		c.decref()
	}
	return c.laddr
}

// localAddrPort and remoteAddrPort return c's addresses as values: a
// pollConn's without allocating.
func localAddrPort(c net.Conn) netip.AddrPort {
	if pc, ok := c.(*pollConn); ok {
		return pc.localAddrPort()
	}
	return addrPort(c.LocalAddr())
}

func remoteAddrPort(c net.Conn) netip.AddrPort {
	if pc, ok := c.(*pollConn); ok {
		return pc.raddr
	}
	return addrPort(c.RemoteAddr())
}

func (c *pollConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *pollConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(&c.rd, t) }
func (c *pollConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(&c.wd, t) }

// wake wakes the reader (d is c.rd) or the writer (c.wd), if waiting.
func (c *pollConn) wake(d *deadline) {
	if d == &c.rd {
		notify(c.rch)
	} else if w := c.wch.Load(); w != nil {
		notify(*w)
	}
}

// setDeadline sets d to t (zero: none). A deadline already passed
// interrupts a waiting read or write at once. A later one is left to the
// wait, which arms a timer for it (see arm): most reads and nearly all
// writes never wait, and then no timer is made or moved.
func (c *pollConn) setDeadline(d *deadline, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		return net.ErrClosed // and Close has stopped the timers
	}
	d.at = t
	d.moved.Store(true)
	switch {
	case t.IsZero() || time.Until(t) > 0:
		d.expired.Store(false)
		if !d.armed.IsZero() && (t.IsZero() || t.Before(d.armed)) {
			c.armLocked(d) // no deadline now, or a nearer one, while a timer runs
		}
	default:
		d.expired.Store(true)
		c.wake(d)
	}
	return nil
}

// arm, before a wait, makes d's timer fire by d.at.
func (c *pollConn) arm(d *deadline) {
	if !d.moved.Load() {
		return // armed as it should be since it last moved
	}
	c.mu.Lock()
	d.moved.Store(false)
	c.armLocked(d)
	c.mu.Unlock()
}

// armLocked (c.mu held) sets d's timer to fire at d.at, unless it fires at
// or before it already (expire then sets it again), and stops it when
// there is no deadline.
func (c *pollConn) armLocked(d *deadline) {
	switch {
	case d.at.IsZero():
		if !d.armed.IsZero() {
			d.t.Stop()
			d.armed = time.Time{}
		}
	case !d.armed.IsZero() && !d.at.Before(d.armed):
	default:
		wait := time.Until(d.at)
		if d.t == nil {
			d.t = time.AfterFunc(wait, func() { c.expire(d) })
		} else {
			d.t.Reset(wait)
		}
		d.armed = d.at
	}
}

// expire marks d passed when its timer fires, and wakes the waiter; a
// deadline moved since is left to its new timer.
func (c *pollConn) expire(d *deadline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d.armed = time.Time{}
	switch {
	case d.at.IsZero() || c.isClosed():
	case time.Until(d.at) > 0:
		c.armLocked(d) // moved later since the timer was set
	default:
		d.expired.Store(true)
		c.wake(d)
	}
}
