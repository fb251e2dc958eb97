package proxy

import (
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultParkAfter is how long a plain HTTP/1.1 client connection waits for its
// next request in its own goroutine before it is parked (see parker). A
// keep-alive stream under load never pauses this long; a browser's or a
// pooling client's idle connection does, and then costs no goroutine.
const defaultParkAfter = 500 * time.Millisecond

func (f *HTTPFrontend) parkWait() time.Duration {
	if f.parkAfter > 0 {
		return f.parkAfter
	}
	return defaultParkAfter
}

// parker holds a frontend's idle client connections without a goroutine
// each: one epoll instance watches their sockets, and a connection whose
// socket becomes readable (a request, or the client closing), whose idle
// timeout expires, or that is woken by a shutdown gets a goroutine again.
// A goroutine's stack is most of the memory an idle connection would
// otherwise hold. Only plain TCP connections park: TLS and HTTP/2 keep
// their state in their goroutines.
//
// The epoll instance is itself watched by the Go network poller, so the
// parker's goroutine waits without a thread of its own.
type parker struct {
	mu     sync.Mutex // guards the fields below
	epfd   int        // the epoll instance; valid while ep is open
	ep     *os.File   // nil until the first park
	conns  map[int32]*clientConn
	closed bool
}

// park hands cc to the parker, to be resumed when its socket is readable
// or after timeout (zero: no timeout). It returns false, and cc stays with the
// caller, when the connection cannot park (it is closing, or the parker is
// closed or failed). After true the caller must not touch cc: it may be
// resumed at once.
func (p *parker) park(cc *clientConn, timeout time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || cc.wantClose() || cc.br.rc == nil {
		return false
	}
	if p.ep == nil && !p.start() {
		return false
	}
	fd := int32(-1)
	if cc.br.rc.Control(func(s uintptr) { fd = int32(s) }) != nil || fd < 0 {
		return false
	}
	// One-shot: the first event disarms the socket, and resume removes it.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
	if unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) != nil {
		return false
	}
	cc.parkedFD = fd
	p.conns[fd] = cc
	if timeout != 0 {
		timeout = max(timeout, 0) // expired meanwhile: resume at once
		if cc.parkTimer == nil {
			cc.parkTimer = time.AfterFunc(timeout, func() { p.wake(cc) })
		} else {
			cc.parkTimer.Reset(timeout)
		}
	}
	return true
}

// start creates the epoll instance and the goroutine that waits on it.
func (p *parker) start() bool {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		p.closed = true
		return false
	}
	// Non-blocking, so that os.NewFile registers it with the Go poller.
	if unix.SetNonblock(fd, true) != nil {
		unix.Close(fd)
		p.closed = true
		return false
	}
	ep := os.NewFile(uintptr(fd), "parked-connections")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		p.closed = true
		return false
	}
	p.epfd, p.ep, p.conns = fd, ep, map[int32]*clientConn{}
	go p.loop(rc)
	return true
}

// loop resumes connections as their sockets report readiness, until the
// epoll instance is closed.
func (p *parker) loop(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 64)
	for {
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.EpollWait(int(fd), events, 0)
			if n <= 0 || err != nil {
				return false // nothing ready (or EINTR): wait for the poller
			}
			for _, ev := range events[:n] {
				p.wakeFD(ev.Fd)
			}
			return true
		})
		if err != nil {
			return
		}
	}
}

func (p *parker) wakeFD(fd int32) {
	p.mu.Lock()
	cc := p.conns[fd]
	p.mu.Unlock()
	if cc != nil {
		p.wake(cc)
	}
}

// wake resumes cc if it is parked; it reports whether it was.
func (p *parker) wake(cc *clientConn) bool {
	p.mu.Lock()
	fd := cc.parkedFD
	if fd < 0 || p.conns[fd] != cc {
		p.mu.Unlock()
		return false
	}
	delete(p.conns, fd)
	cc.parkedFD = -1
	if !p.closed {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	}
	if cc.parkTimer != nil {
		// A timer that fired already finds cc not parked, or parked
		// again later: then it resumes it early, which is harmless.
		cc.parkTimer.Stop()
	}
	p.mu.Unlock()
	go cc.f.run(cc, false)
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
	p.closed = true
	var left []*clientConn
	for _, cc := range p.conns {
		left = append(left, cc)
	}
	p.mu.Unlock()
	for _, cc := range left {
		p.wake(cc)
	}
	p.mu.Lock()
	if p.ep != nil {
		p.ep.Close()
	}
	p.mu.Unlock()
}
