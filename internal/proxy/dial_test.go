package proxy

import (
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialServer: a server addressed by IP or by name is reached, the
// connection names both its ends, and a refused connection says so.
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
		if _, ok := c.(*pollConn); !ok {
			t.Errorf("%s: connection is a %T, want a *pollConn", addr, c)
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
