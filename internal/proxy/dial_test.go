package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialServer: a server addressed by IP or by name is reached, the
// connection names both its ends and sends no keep-alive probes, and a
// refused connection says so.
func TestDialServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, addr := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		c, err := dialServer(NewServer("s", addr, 0), time.Second)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if pc, ok := c.(*pollConn); !ok {
			t.Errorf("%s: connection is a %T, want a *pollConn", addr, c)
		} else {
			if v, _ := unix.GetsockoptInt(pc.fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
				t.Errorf("%s: keep-alive probes set", addr)
			}
			if v, _ := unix.GetsockoptInt(pc.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
				t.Errorf("%s: TCP_NODELAY not set", addr)
			}
		}
		if c.LocalAddr().String() != s.RemoteAddr().String() || c.RemoteAddr().String() != s.LocalAddr().String() {
			t.Errorf("%s: ends %v→%v, the server sees %v→%v", addr, c.LocalAddr(), c.RemoteAddr(), s.RemoteAddr(), s.LocalAddr())
		}
		c.Write([]byte("x"))
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := s.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Errorf("%s: server read %d, %v", addr, n, err)
		}
		c.Close()
		s.Close()
	}

	closed := "127.0.0.1:" + port
	ln.Close()
	_, err = dialServer(NewServer("s", closed, 0), time.Second)
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want a *net.OpError for ECONNREFUSED", err)
	}
	if want := "dial tcp " + closed + ": connect: connection refused"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := dialSocket(NewServer("s", closed, 0), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialSocket to a closed port: %v, want ECONNREFUSED", err)
	}
}

// TestDialServerAddressFamilies: IPv6 servers, and IPv4 ones written as
// IPv4-mapped IPv6, are reached on the direct path.
func TestDialServerAddressFamilies(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{
		{"[::1]:0", "[::1]:"},
		{"127.0.0.1:0", "[::ffff:127.0.0.1]:"},
	} {
		ln, err := net.Listen("tcp", tc.listen)
		if err != nil && tc.listen == "[::1]:0" {
			t.Logf("no IPv6 loopback here: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.listen, err)
		}
		defer ln.Close()
		addr := tc.dial + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		srv := NewServer("s", addr, 0)
		if !srv.ip.IsValid() {
			t.Fatalf("%s: not taken for an IP address", addr)
		}
		c, err := dialServer(srv, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if c.LocalAddr().String() != s.RemoteAddr().String() {
			t.Errorf("%s: local address %v, the server sees %v", addr, c.LocalAddr(), s.RemoteAddr())
		}
		c.Close()
		s.Close()
	}
}

// TestDialWaitsForConnection: a server whose accept queue is full drops the
// handshake, so a dial waits: it times out, or it is connected when room
// is made before its SYN is sent again.
func TestDialWaitsForConnection(t *testing.T) {
	addr, accept := fullListener(t)
	srv := NewServer("s", addr, 0)
	start := time.Now()
	_, err := dialServer(srv, 200*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial to a full accept queue: %v, want a time-out", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 900*time.Millisecond {
		t.Errorf("the time-out came after %v, want 200ms", d)
	}
	if _, err := dialSocket(srv, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dialSocket to a full accept queue: %v, want a time-out", err)
	}

	for _, relay := range []bool{false, true} {
		type result struct {
			fd  int
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			if relay {
				fd, err := dialSocket(srv, 5*time.Second)
				done <- result{fd: fd, err: err}
			} else {
				c, err := dialServer(srv, 5*time.Second)
				done <- result{c: c, err: err}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		accept() // room for the SYN sent again
		r := await(t, done, "dial still waiting after room was made")
		if r.err != nil {
			t.Fatalf("relay %v: %v", relay, r.err)
		}
		fd := r.fd
		if !relay {
			defer r.c.Close()
			fd = r.c.(*pollConn).fd
		}
		if _, err := unix.Getpeername(fd); err != nil {
			t.Errorf("relay %v: the socket given is not connected: %v", relay, err)
		}
		if relay {
			unix.Close(fd)
		}
	}
}

// fullListener returns the address of a loopback listener whose accept
// queue is full, and a function that accepts (and closes) one connection
// from it, making room for one more.
func fullListener(t *testing.T) (string, func()) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	// The queue holds one connection more than the backlog of zero.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr, func() {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Error(err)
			return
		}
		unix.Close(nfd)
	}
}

// TestAcceptQueued: connections queued on a listener are accepted off its
// socket with both addresses, small writes sent at once and no keep-alive
// probes, until the queue is empty (EAGAIN); a closed listener says so.
func TestAcceptQueued(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q := queuedAccepts(ln)
	if q == nil {
		t.Fatal("queuedAccepts refused a TCP listener")
	}
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	time.Sleep(20 * time.Millisecond) // all three queued
	for i, cl := range clients {
		c, err := q.accept()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		pc := c.(*pollConn)
		if c.RemoteAddr().String() != cl.LocalAddr().String() || c.LocalAddr().String() != cl.RemoteAddr().String() {
			t.Errorf("connection %d: ends %v←%v, the client's %v→%v", i, c.LocalAddr(), c.RemoteAddr(), cl.LocalAddr(), cl.RemoteAddr())
		}
		if v, _ := unix.GetsockoptInt(pc.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
			t.Errorf("connection %d: TCP_NODELAY not set", i)
		}
		if v, _ := unix.GetsockoptInt(pc.fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
			t.Errorf("connection %d: keep-alive probes set", i)
		}
		c.Close()
	}
	if c, err := q.accept(); err != syscall.EAGAIN {
		t.Errorf("with none queued: %v, %v; want EAGAIN", c, err)
	}
	ln.Close()
	if _, err := q.accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("from a closed listener: %v, want net.ErrClosed", err)
	}
}

// TestReleaseSocket: a socket not watched can be given up once, after
// which closing its pollConn leaves it open; a watched or closed one
// cannot.
func TestReleaseSocket(t *testing.T) {
	a, b := pollPair(t) // watched
	if _, err := a.release(); err == nil {
		t.Error("a watched socket was released")
	}
	dup := func() int {
		fd, err := dupFD(b.fd)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	fd := dup()
	c := socketConn(fd, netip.AddrPort{}, netip.AddrPort{})
	got, err := c.release()
	if err != nil || got != fd {
		t.Fatalf("release = %d, %v; want %d", got, err, fd)
	}
	defer unix.Close(fd)
	c.Close()
	if _, err := unix.Getsockname(fd); err != nil {
		t.Errorf("the released socket was closed with its pollConn: %v", err)
	}
	if _, err := c.release(); err == nil {
		t.Error("released twice")
	}
	d := socketConn(dup(), netip.AddrPort{}, netip.AddrPort{})
	d.Close()
	if _, err := d.release(); err == nil {
		t.Error("a closed socket was released")
	}
}

// TestSelfConnected: a socket connected to itself, which dialling a port
// of the local range where nothing listens can give, is told from one
// connected to a server.
func TestSelfConnected(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	self := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	if err := unix.Connect(fd, sa); err != nil { // simultaneous open with itself
		t.Fatal(err)
	}
	if !selfConnected(fd, self) {
		t.Errorf("a socket connected to itself (%v) was not told", self)
	}

	a, _ := pollPair(t) // a dialled a listener on a port of the local range
	if selfConnected(a.fd, a.RemoteAddr().(*net.TCPAddr).AddrPort()) {
		t.Error("a socket connected to a server was taken for one connected to itself")
	}
}

// TestListenerWaitsInPoller: a Listener's connections are accepted off its
// socket even when the loop had to wait for them, never by Go's Accept;
// Close ends the loop and closes the port, and a listener that gets the
// same descriptor afterwards is served as well.
func TestListenerWaitsInPoller(t *testing.T) {
	for round := range 2 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := NewListener(tl)
		if _, ok := ln.(*Listener); !ok {
			t.Fatalf("NewListener returned a %T", ln)
		}
		if again := NewListener(ln); again != ln {
			t.Error("a Listener wrapped again is not the same Listener")
		}
		got := make(chan net.Conn, 1)
		ended := make(chan error, 1)
		go func() { ended <- acceptLoop(ln, nil, func(c net.Conn) { got <- c }) }()
		for i := range 3 {
			time.Sleep(20 * time.Millisecond) // the loop waits
			cl, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c := await(t, got, "the connection was not accepted")
			if _, ok := c.(*pollConn); !ok {
				t.Errorf("round %d, connection %d: accepted a %T, want a pollConn taken off the socket", round, i, c)
			}
			c.Close()
			cl.Close()
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if err := await(t, ended, "the loop did not end when its listener closed"); err != nil {
			t.Errorf("the loop ended with %v", err)
		}
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Error("the port still takes connections after Close")
		}
	}
}

// TestAcceptLoopWithoutKeepAlive: a connection that Go's Accept waited
// for gets no keep-alive probes either.
func TestAcceptLoopWithoutKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan net.Conn, 1)
	go acceptLoop(ln, nil, func(c net.Conn) { got <- c })
	defer ln.Close()
	time.Sleep(50 * time.Millisecond) // the loop waits in Go's Accept
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := await(t, got, "the connection was not accepted")
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("accepted a %T, want the *net.TCPConn of Go's Accept", c)
	}
	rc, _ := tc.SyscallConn()
	rc.Control(func(fd uintptr) {
		if v, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
			t.Error("keep-alive probes set")
		}
	})
}
