package proxy

import (
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path's system calls, made raw: without telling the Go
// scheduler, as none of them can block. Its sockets are non-blocking, its
// epoll waits have no timeout, and its sockets never linger on close. A
// call the scheduler is told of costs more than its bookkeeping: one that
// runs long (on loopback a send runs the receiver's side of TCP too, a
// connect the whole handshake) has its processor handed to another thread
// meanwhile, and taken back after, two context switches for nothing.

// recv and send are recv(2) and send(2) on a socket: unlike read(2) and
// write(2) they skip the file layer of the kernel (file position locks,
// change notification), a measurable share of a small message's cost.
// send does not raise SIGPIPE on a reset connection.
func recv(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func send(fd int, p []byte) (int, error) { return sendFlags(fd, p, 0) }

// sendFlags is send with more flags, such as MSG_MORE.
func sendFlags(fd int, p []byte, flags int) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags|unix.MSG_NOSIGNAL), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// epollReady fills events with those ready in set epfd, without waiting.
func epollReady(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// newSocket returns a non-blocking, close-on-exec TCP socket of the
// address family of a, with TCP_NODELAY set: small messages leave at
// once, as on Go's own connections.
func newSocket(a netip.Addr) (int, error) {
	family := syscall.AF_INET6
	if a.Is4() {
		family = syscall.AF_INET
	}
	fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(family), syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, os.NewSyscallError("socket", e)
	}
	if err := setNoDelay(int(fd)); err != nil {
		closeSocket(int(fd))
		return -1, os.NewSyscallError("setsockopt", err)
	}
	return int(fd), nil
}

func setNoDelay(fd int) error {
	one := int32(1)
	_, _, e := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0)
	return errnoErr(e)
}

// connect is connect(2) to ap, whose address must be of fd's family.
func connect(fd int, ap netip.AddrPort) error {
	var sa syscall.RawSockaddrAny
	n := putSockaddr(&sa, ap)
	_, _, e := syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), n)
	return errnoErr(e)
}

// accept accepts a connection queued on listening socket lfd, without
// waiting, and returns its socket (non-blocking, close-on-exec) and the
// peer's address.
func accept(lfd int) (int, netip.AddrPort, error) {
	var sa syscall.RawSockaddrAny
	n := uint32(syscall.SizeofSockaddrAny)
	fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(fd), sockaddrTCP(&sa), nil
}

// localAddr returns socket fd's own address.
func localAddr(fd int) (netip.AddrPort, error) {
	var sa syscall.RawSockaddrAny
	n := uint32(syscall.SizeofSockaddrAny)
	_, _, e := syscall.RawSyscall(syscall.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return netip.AddrPort{}, e
	}
	return sockaddrTCP(&sa), nil
}

func closeSocket(fd int) { syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0) }

// shutdownWrite shuts down the sending side of socket fd.
func shutdownWrite(fd int) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(fd), syscall.SHUT_WR, 0)
	return errnoErr(e)
}

func errnoErr(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// putSockaddr writes ap into sa as the kernel takes it, an IPv4 address in
// IPv6 (::ffff:a.b.c.d) as IPv4, and returns its length.
func putSockaddr(sa *syscall.RawSockaddrAny, ap netip.AddrPort) uintptr {
	a, port := ap.Addr().Unmap(), ap.Port()
	if a.Is4() {
		s := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		s.Family = syscall.AF_INET
		putPort(&s.Port, port)
		s.Addr = a.As4()
		return syscall.SizeofSockaddrInet4
	}
	s := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
	s.Family = syscall.AF_INET6
	putPort(&s.Port, port)
	s.Addr = a.As16()
	return syscall.SizeofSockaddrInet6
}

// sockaddrTCP converts a socket address from the kernel to an address and
// port, without allocating (invalid for another family).
func sockaddrTCP(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		s := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(getPort(&s.Port)))
	case syscall.AF_INET6:
		s := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr), uint16(getPort(&s.Port)))
	}
	return netip.AddrPort{}
}

// A socket address's port is in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) int {
	b := (*[2]byte)(unsafe.Pointer(p))
	return int(b[0])<<8 | int(b[1])
}
