package proxy

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialServer opens a TCP connection to s for the HTTP path, failing after
// timeout (zero: the system's own limit).
//
// A server addressed by IP gets a socket of connPoller's own, connected
// without Go's dialer, which would register it with the Go poller, look up
// both its addresses and set keep-alive probes, only for the socket to be
// taken out again (wrapConn). A server addressed by name goes through Go's
// dialer, which resolves it.
func dialServer(s *Server, timeout time.Duration) (net.Conn, error) {
	ap, ok := serverAddr(s)
	if !ok {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			return nil, err
		}
		return wrapConn(c), nil
	}
	fd, done, err := connectSocket(ap)
	if err != nil {
		return nil, dialError(ap, err)
	}
	c, err := awaitConnect(fd, ap, done, timeout)
	if err != nil {
		return nil, err // not a nil *pollConn in an interface
	}
	return c, nil
}

// dialSocket opens a TCP connection to s for a relay loop, as dialServer
// does, and returns its socket.
func dialSocket(s *Server, timeout time.Duration) (int, error) {
	ap, ok := serverAddr(s)
	if !ok {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			return -1, err
		}
		defer c.Close()
		return detach(c)
	}
	fd, done, err := connectSocket(ap)
	if err != nil {
		return -1, dialError(ap, err)
	}
	if done {
		return fd, nil
	}
	c, err := awaitConnect(fd, ap, false, timeout)
	if err != nil {
		return -1, err
	}
	defer c.Close()
	return c.handOff()
}

// serverAddr returns s's address if it is an IP address (with no zone) and
// connPoller runs.
func serverAddr(s *Server) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s.Addr)
	return ap, err == nil && ap.Addr().Zone() == "" && connPoller.running()
}

func dialError(ap netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
}

// awaitConnect makes a pollConn of socket fd, connected to ap already
// (done) or waiting until it is, for up to timeout (zero: no limit).
func awaitConnect(fd int, ap netip.AddrPort, done bool, timeout time.Duration) (*pollConn, error) {
	c := socketConn(fd, nil, net.TCPAddrFromAddrPort(ap))
	if err := connPoller.watch(c, !done); err != nil {
		unix.Close(fd)
		return nil, dialError(ap, err)
	}
	if !done {
		if timeout > 0 {
			c.SetWriteDeadline(time.Now().Add(timeout))
		}
		if err := c.connected(); err != nil {
			c.Close()
			return nil, dialError(ap, err)
		}
		c.SetWriteDeadline(time.Time{})
	}
	return c, nil
}

// connectSocket starts a connection to ap from a new non-blocking socket;
// done says it is made already, as it usually is on loopback, where the
// whole handshake runs within connect(2).
func connectSocket(ap netip.AddrPort) (fd int, done bool, err error) {
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()})
	if a := ap.Addr(); a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, os.NewSyscallError("socket", err)
	}
	// Small messages leave at once, as on Go's own connections.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, false, os.NewSyscallError("setsockopt", err)
	}
	// The first call starts the attempt (EINPROGRESS); a second one says
	// how it stands: made (nil), under way (EALREADY) or failed.
	for range 2 {
		for {
			err = unix.Connect(fd, sa)
			if err != syscall.EINTR {
				break
			}
		}
		if err != syscall.EINPROGRESS {
			break
		}
	}
	switch err {
	case nil:
		return fd, true, nil
	case syscall.EINPROGRESS, syscall.EALREADY:
		return fd, false, nil
	}
	unix.Close(fd)
	return -1, false, os.NewSyscallError("connect", err)
}

// connected waits until c's connection attempt ends, and returns its
// error.
func (c *pollConn) connected() error {
	w := *c.wch.Load()
	for {
		if c.isClosed() {
			return net.ErrClosed
		}
		if c.wd.expired.Load() {
			return os.ErrDeadlineExceeded
		}
		c.arm(&c.wd)
		<-w // the poller's word that the socket is writable or failed
		switch errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); {
		case err != nil:
			return os.NewSyscallError("getsockopt", err)
		case errno != 0:
			return os.NewSyscallError("connect", syscall.Errno(errno))
		case !c.wd.expired.Load() && !c.isClosed():
			return nil
		}
	}
}

// sockaddrTCP converts a socket address to a TCP address. (The syscall
// package's calls return these; golang.org/x/sys/unix's ask the kernel for
// an IPv4 socket's protocol first, a system call more.)
func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	}
	return nil
}
