package firewall

import "net/netip"

// Packet is what Evaluate looks at of an incoming packet.
type Packet struct {
	// IIFName is the interface it arrived on ("" is not loopback).
	IIFName  string
	Src, Dst netip.Addr
	Proto    Proto
	// DPort is the TCP or UDP destination port.
	DPort uint16
	// ICMPType is the ICMP or ICMPv6 type.
	ICMPType uint8
	// CtState is its conntrack state; the zero value is new.
	CtState CtState
}

// family is the packet's address family; an IPv4-mapped IPv6 address
// counts as IPv4, as the kernel sees it on an IPv4 socket.
func (p *Packet) family() Family {
	if p.Src.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Evaluate runs p through c as the kernel would: the verdict of the first
// matching rule, or the chain's policy. The index is the matching rule's,
// -1 for the policy. A rate limit is taken to have room, as it has for the
// first packet of a connection.
func Evaluate(c *Chain, p Packet) (Verdict, int) {
	if p.CtState == 0 {
		p.CtState = CtNew
	}
	p.Src, p.Dst = p.Src.Unmap().WithZone(""), p.Dst.Unmap().WithZone("")
	for i := range c.Rules {
		if c.Rules[i].Matches(p) {
			return c.Rules[i].Verdict, i
		}
	}
	return c.Policy, -1
}

// Matches reports whether every match of r holds for p.
func (r *Rule) Matches(p Packet) bool {
	switch {
	case r.Family != AnyFamily && r.Family != p.family():
		return false
	case r.IIFName != "" && r.IIFName != p.IIFName:
		return false
	case r.CtState != 0 && r.CtState&p.CtState == 0:
		return false
	case r.Saddr.IsValid() && !r.Saddr.Contains(p.Src):
		return false
	case r.Daddr.IsValid() && !r.Daddr.Contains(p.Dst):
		return false
	case r.Proto != AnyProto && r.Proto != p.Proto:
		return false
	case r.DPort != 0 && r.DPort != p.DPort:
		return false
	case r.HasICMPType && r.ICMPType != p.ICMPType:
		return false
	}
	return true
}
