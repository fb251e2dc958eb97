package proxy

import (
	"container/heap"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// defaultParkAfter is how long a plain HTTP/1.1 client connection waits for
// its next request in its own goroutine before it is parked (see parker). A
// keep-alive stream under load never pauses this long; a browser's or a
// pooling client's idle connection does, and then costs no goroutine.
const defaultParkAfter = 250 * time.Millisecond

func (f *HTTPFrontend) parkWait() time.Duration {
	if f.parkAfter > 0 {
		return f.parkAfter
	}
	return defaultParkAfter
}

// parker holds a frontend's idle client connections with neither a
// goroutine nor a Go network connection each: a parked connection is its
// clientConn and a bare socket descriptor in one epoll set. It gets a
// goroutine and a net.Conn again when its socket becomes readable (a
// request, or the client closing), when its idle timeout expires, or when
// a shutdown wakes it. A goroutine's stack, the netFD with its addresses
// and deadline timers are most of what an idle connection would otherwise
// hold. Only plain TCP connections park: TLS and HTTP/2 keep their state
// in their goroutines.
//
// The epoll set is itself watched by the Go network poller, so the
// parker's goroutine waits without a thread of its own; one timer stands
// for all the parked connections' idle timeouts.
type parker struct {
	mu     sync.Mutex // guards the fields below, and clientConn's raw and parking fields
	ep     *epollSet  // nil until the first park
	conns  map[int32]*clientConn
	due    parkHeap    // parked connections with an idle timeout, earliest first
	timer  *time.Timer // fires at due[0].parkDue
	epoch  time.Time   // parkDue counts from here (monotonic)
	closed bool
}

// park hands cc to the parker, to be resumed when its socket is readable or
// after timeout (zero: no timeout; negative: at once). It returns false,
// and cc stays with the caller as it was, when the connection cannot park
// (it is closing, or the parker is closed or failed). After true the
// caller must not touch cc: it may be resumed at once.
func (p *parker) park(cc *clientConn, timeout time.Duration) bool {
	p.mu.Lock()
	if p.closed || cc.wantClose() || cc.br.pc == nil {
		p.mu.Unlock()
		return false
	}
	if p.ep == nil && !p.start() {
		p.mu.Unlock()
		return false
	}
	// The socket is kept by a descriptor of its own, and the connection
	// closed: only the duplicate holds it open.
	fd, err := cc.br.pc.handOff()
	if err != nil {
		p.mu.Unlock()
		return false
	}
	// One-shot: the first event disarms the socket, and wake removes it.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	if epollCtl(p.ep.fd, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
		closeSocket(fd)
		p.mu.Unlock()
		return false
	}
	raw := cc.raw
	cc.parkedAddr = [2]netip.AddrPort{localAddrPort(raw), remoteAddrPort(raw)}
	cc.raw, cc.c, cc.br, cc.dl = nil, nil, nil, deadlines{}
	cc.parkedFD = int32(fd)
	p.conns[int32(fd)] = cc
	cc.parkIdx = -1
	if timeout != 0 {
		cc.parkDue = time.Since(p.epoch) + max(timeout, 0)
		heap.Push(&p.due, cc)
		if cc.parkIdx == 0 {
			p.timer.Reset(max(timeout, 0))
		}
	}
	p.mu.Unlock()
	raw.Close()
	return true
}

// start creates the epoll set and the goroutine that waits on it.
func (p *parker) start() bool {
	ep, err := newEpollSet("parked-connections", 64)
	if err != nil {
		p.closed = true
		return false
	}
	p.ep, p.conns, p.epoch = ep, map[int32]*clientConn{}, time.Now()
	p.timer = time.AfterFunc(time.Hour, p.expire)
	p.timer.Stop()
	go p.loop()
	return true
}

// loop resumes connections as their sockets report readiness, until the
// epoll set is closed.
func (p *parker) loop() {
	var ready []*clientConn
	collect := func(evs []unix.EpollEvent) {
		p.mu.Lock()
		for _, ev := range evs {
			if cc := p.conns[ev.Fd]; cc != nil {
				p.unpark(cc)
				ready = append(ready, cc)
			}
		}
		p.mu.Unlock()
	}
	for {
		err := p.ep.wait(collect)
		for i, cc := range ready {
			go cc.f.run(cc, false)
			ready[i] = nil
		}
		ready = ready[:0]
		if err != nil {
			return
		}
	}
}

// expire resumes the connections whose idle timeout has come: they close.
func (p *parker) expire() {
	var ready []*clientConn
	p.mu.Lock()
	now := time.Since(p.epoch)
	for len(p.due) > 0 && p.due[0].parkDue <= now {
		cc := p.due[0]
		p.unpark(cc)
		ready = append(ready, cc)
	}
	if len(p.due) > 0 {
		p.timer.Reset(p.due[0].parkDue - now)
	}
	p.mu.Unlock()
	for _, cc := range ready {
		go cc.f.run(cc, false)
	}
}

// unpark takes cc out of the parker (p.mu held); the caller then runs it.
func (p *parker) unpark(cc *clientConn) {
	fd := cc.parkedFD
	delete(p.conns, fd)
	if cc.parkIdx >= 0 {
		heap.Remove(&p.due, int(cc.parkIdx))
	}
	if !p.closed {
		epollCtl(p.ep.fd, unix.EPOLL_CTL_DEL, int(fd), nil)
	}
	cc.parkedFD = -1
	cc.resumeFD = fd
}

// wake resumes cc if it is parked, else interrupts its wait for a next
// request (see serve).
func (p *parker) wake(cc *clientConn) {
	p.mu.Lock()
	switch {
	case cc.parkedFD >= 0:
		p.unpark(cc)
		p.mu.Unlock()
		go cc.f.run(cc, false)
		return
	case cc.raw != nil:
		cc.raw.SetReadDeadline(time.Now())
	}
	// Else it is being resumed, and will see it is closing.
	p.mu.Unlock()
}

// kill closes cc's connection; a parked or resuming connection is closed
// by its goroutine.
func (p *parker) kill(cc *clientConn) {
	p.mu.Lock()
	cc.killed = true
	switch {
	case cc.parkedFD >= 0:
		p.unpark(cc)
		p.mu.Unlock()
		go cc.f.run(cc, false)
		return
	case cc.raw != nil:
		cc.raw.Close()
	}
	p.mu.Unlock()
}

// local returns cc's local address, parked or not.
func (p *parker) local(cc *clientConn) netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc.raw == nil {
		return cc.parkedAddr[0].Addr().Unmap()
	}
	return localAddrPort(cc.raw).Addr().Unmap()
}

// resume gives a connection coming out of the parker a net.Conn again; it
// returns false when the connection must close.
func (p *parker) resume(cc *clientConn) bool {
	c := adoptSocket(int(cc.resumeFD), cc.parkedAddr[0], cc.parkedAddr[1])
	p.mu.Lock()
	defer p.mu.Unlock()
	cc.resumeFD = -1
	cc.raw, cc.c, cc.br, cc.dl = c, c, newConnReader(c), deadlines{c: c}
	if cc.killed {
		c.Close()
		return false
	}
	return true
}

// parked returns the number of parked connections.
func (p *parker) parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// close resumes every parked connection and stops the parker; later parks
// fail.
func (p *parker) close() {
	p.mu.Lock()
	var ready []*clientConn
	for _, cc := range p.conns {
		p.unpark(cc)
		ready = append(ready, cc)
	}
	p.closed = true
	if p.ep != nil {
		p.timer.Stop()
		p.ep.close()
	}
	p.mu.Unlock()
	for _, cc := range ready {
		go cc.f.run(cc, false)
	}
}

// parkHeap orders parked connections by idle deadline (container/heap).
type parkHeap []*clientConn

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].parkDue < h[j].parkDue }
func (h parkHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].parkIdx, h[j].parkIdx = int32(i), int32(j)
}
func (h *parkHeap) Push(x any) {
	cc := x.(*clientConn)
	cc.parkIdx = int32(len(*h))
	*h = append(*h, cc)
}
func (h *parkHeap) Pop() any {
	old := *h
	cc := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	cc.parkIdx = -1
	return cc
}

// addrPort returns a TCP address as a value (a zero one for another kind).
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// tcpAddr is addrPort's inverse: a zero TCP address for the zero value,
// never nil, as net.Conn's addresses.
func tcpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}
