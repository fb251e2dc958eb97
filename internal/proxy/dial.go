package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialServer opens a TCP connection to s for the HTTP path, failing after
// timeout (zero: the system's own limit): dialConn's, watched by
// connPoller.
func dialServer(s *Server, timeout time.Duration) (net.Conn, error) {
	c, err := dialConn(s, timeout)
	if err != nil {
		return nil, err
	}
	return wrapConn(c), nil
}

// dialSocket opens a TCP connection to s for a relay loop, as dialServer
// does, and returns its socket: one made at once, as on loopback, never
// becomes a connection.
func dialSocket(s *Server, timeout time.Duration) (int, error) {
	var c net.Conn
	if ap, ok := serverAddr(s); ok {
		fd, pc, err := connectIP(ap, timeout)
		if err != nil || pc == nil {
			return fd, err
		}
		c = pc
	} else {
		var err error
		if c, err = dialConn(s, timeout); err != nil {
			return -1, err
		}
	}
	defer c.Close()
	return detach(c)
}

// dialConn opens a TCP connection to s.
//
// A server addressed by IP is dialled on a socket of the proxy's own
// (dialIP), a pollConn. Go's dialer would register it with the Go poller,
// look up both its addresses and grow the dialling goroutine's stack,
// only for the socket to be taken out again (wrapConn, detach). A server
// addressed by name goes through Go's dialer, which resolves it. Either
// way the connection gets no keep-alive probes: idle pooled connections
// are closed by the pool's own timeout long before a probe.
func dialConn(s *Server, timeout time.Duration) (net.Conn, error) {
	if ap, ok := serverAddr(s); ok {
		c, err := dialIP(ap, timeout)
		if err != nil {
			return nil, err // not a nil *pollConn in an interface
		}
		return c, nil
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	return d.Dial("tcp", s.Addr)
}

// serverAddr returns s's address if it is an IP address (with no zone) and
// connPoller runs.
func serverAddr(s *Server) (netip.AddrPort, bool) {
	return s.ip, s.ip.IsValid() && connPoller.running()
}

func dialError(ap netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
}

// errSelfConnect is a socket connected to itself: dialling a port of the
// range the kernel picks local ports from, on a local address where nothing
// listens, can pick that very port and meet itself (simultaneous open).
var errSelfConnect = errors.New("connected to itself")

// dialIP connects a socket to ap (see connectIP) and returns it as a
// pollConn, not watched yet if the connection was made at once.
func dialIP(ap netip.AddrPort, timeout time.Duration) (*pollConn, error) {
	fd, c, err := connectIP(ap, timeout)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = socketConn(fd, netip.AddrPort{}, ap)
	}
	return c, nil
}

// connectIP connects a socket to ap. A connection made at once, as on
// loopback, is returned as its bare socket fd (c nil); one still under way
// is waited for in connPoller, for up to timeout (zero: no limit), and
// returned as a pollConn (fd -1).
func connectIP(ap netip.AddrPort, timeout time.Duration) (fd int, c *pollConn, err error) {
	for tries := 0; ; tries++ {
		fd, done, err := connectSocket(ap)
		if err != nil {
			return -1, nil, dialError(ap, err)
		}
		if done {
			if !selfConnected(fd, ap) {
				return fd, nil, nil
			}
			closeSocket(fd)
		} else {
			c := socketConn(fd, netip.AddrPort{}, ap)
			if err := awaitConnect(c, timeout); err != nil {
				c.Close()
				return -1, nil, dialError(ap, err)
			}
			if !selfConnected(fd, ap) {
				return -1, c, nil
			}
			c.Close()
		}
		if tries == 2 {
			return -1, nil, dialError(ap, errSelfConnect)
		}
	}
}

// awaitConnect waits in connPoller for c's connection attempt to end, for
// up to timeout (zero: no limit).
func awaitConnect(c *pollConn, timeout time.Duration) error {
	if err := connPoller.watch(c, true); err != nil {
		return err
	}
	if timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(timeout))
	}
	if err := c.connected(); err != nil {
		return err
	}
	c.SetWriteDeadline(time.Time{})
	return nil
}

// selfConnected reports whether socket fd, connected to ap, is connected
// to itself. Only a port in the local port range can be, which servers
// seldom listen on: others cost nothing to check.
func selfConnected(fd int, ap netip.AddrPort) bool {
	r := localPorts()
	if p := ap.Port(); p < r[0] || p > r[1] {
		return false
	}
	l, err := localAddr(fd)
	return err == nil && l.Addr().Unmap() == ap.Addr().Unmap() && l.Port() == ap.Port()
}

// localPorts is the range the kernel picks local ports from (all ports
// if it cannot be read).
var localPorts = sync.OnceValue(func() [2]uint16 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	f := strings.Fields(string(b))
	if err != nil || len(f) != 2 {
		return [2]uint16{0, 65535}
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil {
		return [2]uint16{0, 65535}
	}
	return [2]uint16{uint16(lo), uint16(hi)}
})

// connectSocket starts a connection to ap from a new non-blocking socket;
// done says it is made already, as it usually is on loopback, where the
// whole handshake runs within connect(2).
func connectSocket(ap netip.AddrPort) (fd int, done bool, err error) {
	fd, err = newSocket(ap.Addr().Unmap()) // as Go's dialer, IPv4 in IPv6 too
	if err != nil {
		return -1, false, err
	}
	// The first call starts the attempt (EINPROGRESS); a second one says
	// how it stands: made (nil), under way (EALREADY) or failed.
	for range 2 {
		for {
			err = connect(fd, ap)
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
	closeSocket(fd)
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
