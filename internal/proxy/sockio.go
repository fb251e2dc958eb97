package proxy

import (
	"io"
	"net"
	"syscall"
)

// sockIO reads and writes a plain TCP connection with recv(2) and send(2)
// (see recv), waiting in the Go poller, under the connection's deadlines,
// while the socket is empty or full. Reads and writes may run at once.
type sockIO struct {
	rc syscall.RawConn

	rstep func(fd uintptr) bool // recvOnce, bound once
	rp    []byte
	rn    int
	rerr  error

	wstep func(fd uintptr) bool // sendSome, bound once
	wp    []byte
	wn    int
	werr  error
}

// newSockIO returns c's sockIO, or nil when c is not a TCP connection.
func newSockIO(c net.Conn) *sockIO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sockIO{rc: rc}
	s.rstep, s.wstep = s.recvOnce, s.sendSome
	return s
}

func (s *sockIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.rstep)
	n, rerr := s.rn, s.rerr
	s.rp, s.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *sockIO) recvOnce(fd uintptr) bool {
	for {
		n, err := recv(int(fd), s.rp)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		}
		s.rn, s.rerr = n, err
		return true
	}
}

func (s *sockIO) Write(p []byte) (int, error) {
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.wstep)
	n, werr := s.wn, s.werr
	s.wp, s.werr = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

func (s *sockIO) sendSome(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, err := send(int(fd), s.wp[s.wn:])
		switch err {
		case nil:
			s.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			s.werr = err
			return true
		}
	}
	return true
}
