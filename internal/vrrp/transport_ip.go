package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// IPConfig configures an IPTransport.
type IPConfig struct {
	// Interface carries the adverts; the socket is bound to it.
	Interface string
	// IPv6 selects IPv6 (ff02::12) instead of IPv4 (224.0.0.18).
	IPv6 bool
	// Source is the primary address, the source of the adverts (default:
	// the interface's first IPv4 address not in Exclude; for IPv6 its
	// link-local address, as RFC 5798 section 5.1.2.1 requires).
	Source netip.Addr
	// Exclude lists addresses never chosen as Source: the virtual IPs.
	Exclude []netip.Addr
	// Peers, when set, receive the adverts by unicast instead of the
	// multicast group, and only adverts from them are accepted.
	Peers []netip.Addr
}

// IPTransport sends and receives adverts as raw IP protocol 112 on one
// interface, with TTL (hop limit) 255.
type IPTransport struct {
	cfg  IPConfig
	ifi  *net.Interface
	src  netip.Addr
	dst  []netip.Addr
	pc   net.PacketConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
	zone string
}

var _ Transport = (*IPTransport)(nil)

// ListenIP opens a raw IP socket for VRRP on cfg.Interface (needs root or
// CAP_NET_RAW) and joins the multicast group unless cfg.Peers are set.
func ListenIP(cfg IPConfig) (*IPTransport, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %q: %w", cfg.Interface, err)
	}
	t := &IPTransport{cfg: cfg, ifi: ifi, src: cfg.Source, zone: ifi.Name}
	if !t.src.IsValid() {
		if t.src, err = primaryAddr(ifi, cfg.IPv6, cfg.Exclude); err != nil {
			return nil, err
		}
	}
	network, wildcard := "ip4:112", "0.0.0.0"
	if cfg.IPv6 {
		network, wildcard = "ip6:112", "::"
	}
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
	pc, err := lc.ListenPacket(context.Background(), network, wildcard)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen %s on %s: %w", network, ifi.Name, err)
	}
	t.pc = pc
	if err := t.setup(); err != nil {
		pc.Close()
		return nil, fmt.Errorf("vrrp: %s on %s: %w", network, ifi.Name, err)
	}
	t.dst = cfg.Peers
	if len(t.dst) == 0 {
		t.dst = []netip.Addr{GroupIPv4}
		if cfg.IPv6 {
			t.dst = []netip.Addr{GroupIPv6}
		}
	}
	return t, nil
}

func (t *IPTransport) setup() error {
	multicast := len(t.cfg.Peers) == 0
	if !t.cfg.IPv6 {
		p := ipv4.NewPacketConn(t.pc)
		t.p4 = p
		if multicast {
			if err := p.JoinGroup(t.ifi, &net.IPAddr{IP: GroupIPv4.AsSlice()}); err != nil {
				return fmt.Errorf("join %v: %w", GroupIPv4, err)
			}
		}
		return errors.Join(
			p.SetMulticastInterface(t.ifi),
			p.SetMulticastTTL(255),
			p.SetTTL(255),
			p.SetMulticastLoopback(false),
			p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true),
		)
	}
	p := ipv6.NewPacketConn(t.pc)
	t.p6 = p
	if multicast {
		if err := p.JoinGroup(t.ifi, &net.IPAddr{IP: GroupIPv6.AsSlice()}); err != nil {
			return fmt.Errorf("join %v: %w", GroupIPv6, err)
		}
	}
	return errors.Join(
		p.SetMulticastInterface(t.ifi),
		p.SetMulticastHopLimit(255),
		p.SetHopLimit(255),
		p.SetMulticastLoopback(false),
		p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true),
	)
}

// primaryAddr is the interface's first address of the family that is not
// a virtual IP; for IPv6 its link-local address.
func primaryAddr(ifi *net.Interface, v6 bool, exclude []netip.Addr) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if slices.Contains(exclude, ip) {
			continue
		}
		if !v6 && ip.Is4() || v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			if v6 {
				ip = ip.WithZone(ifi.Name)
			}
			return ip, nil
		}
	}
	fam := "IPv4"
	if v6 {
		fam = "link-local IPv6"
	}
	return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no %s address to send adverts from", ifi.Name, fam)
}

// Send implements Transport.
func (t *IPTransport) Send(a *Advert) error {
	var errs []error
	for _, dst := range t.dst {
		b, err := a.Marshal(t.src.WithZone(""), dst)
		if err != nil {
			return err
		}
		if t.p4 != nil {
			cm := &ipv4.ControlMessage{Src: t.src.AsSlice(), IfIndex: t.ifi.Index}
			_, err = t.p4.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
		} else {
			cm := &ipv6.ControlMessage{Src: t.src.AsSlice(), IfIndex: t.ifi.Index, HopLimit: 255}
			_, err = t.p6.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: t.zone})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("to %v: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

// Receive implements Transport.
func (t *IPTransport) Receive() (Packet, error) {
	buf := make([]byte, 1500)
	for {
		var (
			n   int
			src net.Addr
			err error
			p   = Packet{TTL: -1}
		)
		if t.p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = t.p4.ReadFrom(buf)
			if cm != nil {
				p.TTL = cm.TTL
				p.Dst, _ = netip.AddrFromSlice(cm.Dst)
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = t.p6.ReadFrom(buf)
			if cm != nil {
				p.TTL = cm.HopLimit
				p.Dst, _ = netip.AddrFromSlice(cm.Dst)
			}
		}
		if err != nil {
			return Packet{}, err
		}
		ia, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		s, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			continue
		}
		s = s.Unmap()
		p.Dst = p.Dst.Unmap()
		if len(t.cfg.Peers) > 0 && !slices.Contains(t.cfg.Peers, s) {
			continue // unicast mode: only from the listed peers
		}
		if t.cfg.IPv6 {
			// The primary address is link-local: compare with our own
			// (zoned) one.
			s = s.WithZone(t.zone)
		}
		p.Src = netip.AddrPortFrom(s, 0)
		p.Data = slices.Clone(buf[:n])
		return p, nil
	}
}

// LocalAddr implements Transport.
func (t *IPTransport) LocalAddr() netip.AddrPort { return netip.AddrPortFrom(t.src, 0) }

// Close implements Transport.
func (t *IPTransport) Close() error { return t.pc.Close() }

// bindToDevice restricts a socket to one interface (SO_BINDTODEVICE), so
// adverts of the same VRID on other links are not mixed in.
func bindToDevice(name string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_BINDTODEVICE %s: %w", name, serr)
		}
		return nil
	}
}
