package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenFreebind is net.Listen with IP_FREEBIND set, so that a load
// balancer can bind its frontends on a virtual IP it does not hold yet: a
// backup listens on the VIP from the start, and a takeover needs no rebind.
// Connections arrive once VRRP adds the address to the interface. It is the
// per-socket form of net.ipv4.ip_nonlocal_bind=1 (Linux).
//
// The listener also gets IP_TRANSPARENT (which needs CAP_NET_ADMIN, as VRRP
// does), and the connections it accepts inherit it: when the address moves
// to the peer, they may still send from it. Without it the kernel refuses
// every packet from an address no longer on an interface, and a response
// under way when the address left would never reach its client, which
// would wait for it until its own timeout.
func ListenFreebind(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, addr string, c syscall.RawConn) error {
		if err := freebind(network, addr, c); err != nil {
			return err
		}
		return transparent(c)
	}}
	return lc.Listen(context.Background(), network, addr)
}

// transparent sets IP_TRANSPARENT, and IPV6_TRANSPARENT where it exists.
func transparent(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); serr != nil {
			serr = fmt.Errorf("IP_TRANSPARENT: %w", serr)
			return
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1); err != nil &&
			!errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			serr = fmt.Errorf("IPV6_TRANSPARENT: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ListenPacketFreebind is ListenFreebind for packet sockets (UDP).
func ListenPacketFreebind(network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: freebind}
	return lc.ListenPacket(context.Background(), network, addr)
}

func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		if serr == nil && (network == "tcp6" || network == "udp6" || network == "tcp" || network == "udp") {
			// IPv6 sockets honour IP_FREEBIND too; IPV6_FREEBIND (Linux
			// 4.15) is set where it exists and ignored where not.
			if err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1); err != nil &&
				!errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
				serr = err
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
