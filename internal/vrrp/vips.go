package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// garpCount is how many gratuitous ARPs (or unsolicited neighbour
// advertisements) announce each address, like keepalived's default
// vrrp_garp_master_repeat 5.
const garpCount = 5

// InterfaceVIPs holds virtual addresses by adding them to a network
// interface (netlink) and announcing them with gratuitous ARP (IPv4) or
// unsolicited neighbour advertisements (IPv6, RFC 4861 section 7.2.6).
type InterfaceVIPs struct {
	Interface string
	Prefixes  []netip.Prefix
	Log       *slog.Logger // nil: discard
	// Released, if set, is called with the addresses after Release has
	// taken them off the interface, to close the connections accepted on
	// them (see ListenFreebind).
	Released func([]netip.Addr)
}

var _ VIPs = (*InterfaceVIPs)(nil)

func (v *InterfaceVIPs) log() *slog.Logger {
	if v.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return v.Log
}

// Acquire implements VIPs.
func (v *InterfaceVIPs) Acquire() error {
	link, err := netlink.LinkByName(v.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: interface %q: %w", v.Interface, err)
	}
	var errs []error
	for _, p := range v.Prefixes {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// No duplicate address detection: the address moves here
			// from a peer that has just given it up (or died).
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("vrrp: add %v to %s: %w", p, v.Interface, err))
		}
	}
	if err := v.Announce(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Release implements VIPs.
func (v *InterfaceVIPs) Release() error {
	link, err := netlink.LinkByName(v.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: interface %q: %w", v.Interface, err)
	}
	var errs []error
	for _, p := range v.Prefixes {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("vrrp: remove %v from %s: %w", p, v.Interface, err))
		}
	}
	if v.Released != nil {
		addrs := make([]netip.Addr, len(v.Prefixes))
		for i, p := range v.Prefixes {
			addrs[i] = p.Addr()
		}
		v.Released(addrs)
	}
	return errors.Join(errs...)
}

// Announce implements VIPs: garpCount gratuitous ARPs or unsolicited
// neighbour advertisements per address, so that hosts and switches on the
// link send to this interface from now on.
func (v *InterfaceVIPs) Announce() error {
	ifi, err := net.InterfaceByName(v.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: interface %q: %w", v.Interface, err)
	}
	var v4, v6 []netip.Addr
	for _, p := range v.Prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	var errs []error
	if len(v4) > 0 {
		errs = append(errs, gratuitousARP(ifi, v4))
	}
	if len(v6) > 0 {
		errs = append(errs, unsolicitedNA(ifi, v6))
	}
	return errors.Join(errs...)
}

// gratuitousARP broadcasts ARP requests whose sender and target are the
// address itself (RFC 5227 section 3, "ARP Announcement"), which Linux
// hosts accept to update an existing neighbour entry. It writes whole
// Ethernet frames on a packet socket.
func gratuitousARP(ifi *net.Interface, addrs []netip.Addr) error {
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("vrrp: gratuitous ARP on %s: not an Ethernet interface", ifi.Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("vrrp: gratuitous ARP on %s: %w", ifi.Name, err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	for range garpCount {
		for _, a := range addrs {
			if err := unix.Sendto(fd, arpAnnouncement(ifi.HardwareAddr, a), 0, to); err != nil {
				return fmt.Errorf("vrrp: gratuitous ARP for %v on %s: %w", a, ifi.Name, err)
			}
		}
	}
	return nil
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// arpAnnouncement is an Ethernet frame carrying an ARP request (RFC 826)
// from mac for ip, about ip:
//
//	dst MAC ff:ff:ff:ff:ff:ff (6) | src MAC (6) | ethertype 0x0806 (2)
//	htype 1 (2) | ptype 0x0800 (2) | hlen 6 | plen 4 | op 1 request (2)
//	sender MAC (6) | sender IP (4) | target MAC ff… (6) | target IP (4)
func arpAnnouncement(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 0, 42)
	b = append(b, broadcastMAC...)
	b = append(b, mac...)
	b = append(b, 0x08, 0x06)
	b = append(b, 0, 1, 0x08, 0x00, 6, 4, 0, 1)
	b = append(b, mac...)
	b = append(b, ip.AsSlice()...)
	b = append(b, broadcastMAC...)
	b = append(b, ip.AsSlice()...)
	return b
}

// unsolicitedNA sends neighbour advertisements for addrs to all nodes
// (ff02::1) with the Override flag (RFC 4861 section 7.2.6).
func unsolicitedNA(ifi *net.Interface, addrs []netip.Addr) error {
	pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("vrrp: neighbour advertisement on %s: %w", ifi.Name, err)
	}
	defer pc.Close()
	p := ipv6.NewPacketConn(pc)
	if err := p.SetMulticastHopLimit(255); err != nil {
		return err
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: ifi.Name}
	for range garpCount {
		for _, a := range addrs {
			// The kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets.
			if _, err := p.WriteTo(neighborAdvert(a, ifi.HardwareAddr), &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}, dst); err != nil {
				return fmt.Errorf("vrrp: neighbour advertisement for %v on %s: %w", a, ifi.Name, err)
			}
		}
	}
	return nil
}

// neighborAdvert is an ICMPv6 Neighbor Advertisement (RFC 4861 section 4.4)
// with the Override flag and a Target Link-Layer Address option:
//
//	type 136 | code 0 | checksum (2) | R S O + 29 reserved bits (4)
//	target address (16)
//	option type 2 | length 1 (8 octets) | link-layer address (6)
func neighborAdvert(target netip.Addr, mac net.HardwareAddr) []byte {
	b := make([]byte, 24, 32)
	b[0] = 136
	b[4] = 0x20 // Override
	copy(b[8:24], target.AsSlice())
	if len(mac) == 6 {
		b = append(b, 2, 1)
		b = append(b, mac...)
	}
	return b
}

// FuncVIPs is a VIPs that calls back into its owner: local mode, where
// holding the VIP means serving a shared front address. Up binds it, Down
// closes it; Down must accept being called when not up (Run calls it at
// startup). Nil functions do nothing.
type FuncVIPs struct {
	Up, Down func() error
}

var _ VIPs = FuncVIPs{}

// Acquire implements VIPs.
func (f FuncVIPs) Acquire() error {
	if f.Up == nil {
		return nil
	}
	return f.Up()
}

// Announce implements VIPs: there is nobody to tell on loopback.
func (FuncVIPs) Announce() error { return nil }

// Release implements VIPs.
func (f FuncVIPs) Release() error {
	if f.Down == nil {
		return nil
	}
	return f.Down()
}
