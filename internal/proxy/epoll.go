package proxy

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// epollSet is an epoll set that is itself watched by the Go network
// poller: a goroutine waits on it without holding a thread.
type epollSet struct {
	fd int
	f  *os.File
	rc syscall.RawConn

	// wait's state: events' storage, the handler of the current wait, and
	// its step in the Go poller, bound once so that a wait allocates
	// nothing.
	events []unix.EpollEvent
	handle func([]unix.EpollEvent)
	step   func(fd uintptr) bool
}

// newEpollSet creates a set whose waits take up to batch events at a time.
func newEpollSet(name string, batch int) (*epollSet, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the Go poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	e := &epollSet{fd: fd, f: f, rc: rc, events: make([]unix.EpollEvent, batch)}
	e.step = e.poll
	return e, nil
}

// socketEvents are what the HTTP poller and the TCP relay watch a socket
// for: data, room, the peer's shutdown and urgent data, edge-triggered (an
// event means the socket became readable or writable since it last
// reported EAGAIN). The relay leaves out room until a write blocks (see
// relaySide.room).
//
// Urgent data, TCP's out-of-band byte, bends that rule twice. A read stops
// at its mark short of what is queued; and a read that starts at the mark
// fails with EAGAIN, whatever is queued, when its thread has a signal
// pending, as Go's runtime sends its threads to preempt them. No edge
// follows for what was already queued. So once a socket has reported
// EPOLLPRI, a short read is not taken to mean it is drained, and EAGAIN
// re-arms it (with mod): the set then reports whatever is queued.
const socketEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET

// watch adds socket fd to the set, or with mod re-arms it; tag comes back
// in its events' Pad.
func (e *epollSet) watch(fd int, tag int32, mod bool) error {
	return e.watchFor(fd, socketEvents, tag, mod)
}

// watchFor is watch for the given events (socketEvents or fewer).
func (e *epollSet) watchFor(fd int, events uint32, tag int32, mod bool) error {
	op := unix.EPOLL_CTL_ADD
	if mod {
		op = unix.EPOLL_CTL_MOD
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	return epollCtl(e.fd, op, fd, &ev)
}

// wait waits until some of the set's sockets are ready and calls handle
// with their events, in the kernel's order; the slice is reused by the
// next wait. It fails once the set is closed. One goroutine waits at a
// time.
func (e *epollSet) wait(handle func([]unix.EpollEvent)) error {
	e.handle = handle
	err := e.rc.Read(e.step)
	e.handle = nil
	return err
}

func (e *epollSet) poll(fd uintptr) bool {
	n, err := epollReady(int(fd), e.events)
	for err == syscall.EINTR {
		n, err = epollReady(int(fd), e.events)
	}
	if n <= 0 || err != nil {
		return false // nothing ready: wait in the Go poller
	}
	e.handle(e.events[:n])
	return true
}

func (e *epollSet) close() { e.f.Close() }

// dupSocket returns a descriptor of its own for rc's socket, which keeps the
// socket open when the Go connection is closed (and so taken out of the Go
// poller).
func dupSocket(rc syscall.RawConn) (int, error) {
	fd := -1
	var err error
	if cerr := rc.Control(func(s uintptr) { fd, err = dupFD(int(s)) }); cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// dupFD returns a new descriptor (close-on-exec) for the file of fd.
func dupFD(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
