package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// String renders rs in nft syntax, formatted the way `nft list table inet
// fulcrum` prints it, so that the listing of an applied ruleset equals its
// plan. Loading it with `nft -f` creates the table; it does not replace an
// existing one (Installer.Apply does).
func (rs *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, c := range rs.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		fmt.Fprintf(&b, "\t\ttype filter hook %s priority filter; policy %s;\n", c.Name, c.Policy)
		for j := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", c.Rules[j].String())
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// String renders r as one nft rule, its statements in the order nft lists
// them.
func (r *Rule) String() string {
	var s []string
	if r.IIFName != "" {
		s = append(s, "iifname "+strconv.Quote(r.IIFName))
	}
	if r.CtState != 0 {
		s = append(s, "ct state "+r.CtState.String())
	}
	ip := "ip"
	if r.Family == IPv6 {
		ip = "ip6"
	}
	// The family is implied by an address or ICMP match; only say it
	// when nothing else does.
	implied := r.Saddr.IsValid() || r.Daddr.IsValid() || r.HasICMPType
	if r.Family != AnyFamily && !implied {
		s = append(s, "meta nfproto "+map[Family]string{IPv4: "ipv4", IPv6: "ipv6"}[r.Family])
	}
	if r.Saddr.IsValid() {
		s = append(s, ip+" saddr "+prefixString(r.Saddr.Masked()))
	}
	if r.Daddr.IsValid() {
		s = append(s, ip+" daddr "+prefixString(r.Daddr.Masked()))
	}
	switch {
	case r.DPort != 0:
		s = append(s, fmt.Sprintf("%s dport %d", protoName(r.Proto), r.DPort))
	case r.HasICMPType:
		s = append(s, fmt.Sprintf("%s type %s", protoName(r.Proto), icmpTypeName(r.Proto, r.ICMPType)))
	case r.Proto != AnyProto:
		s = append(s, "meta l4proto "+protoName(r.Proto))
	}
	if r.Limit != nil {
		s = append(s, fmt.Sprintf("limit rate %d/second burst %d packets", r.Limit.Rate, r.Limit.Burst))
	}
	s = append(s, r.Verdict.String())
	if r.Comment != "" {
		s = append(s, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(s, " ")
}

func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// String lists the states in the order nft prints them.
func (c CtState) String() string {
	var s []string
	for _, st := range []struct {
		bit  CtState
		name string
	}{{CtInvalid, "invalid"}, {CtEstablished, "established"}, {CtRelated, "related"}, {CtNew, "new"}} {
		if c&st.bit != 0 {
			s = append(s, st.name)
		}
	}
	return strings.Join(s, ",")
}

// protoName is the name nft prints for p (from /etc/protocols, which
// Debian's netbase package installs).
func protoName(p Proto) string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMPv6:
		return "icmpv6"
	case VRRP:
		return "vrrp"
	}
	return strconv.Itoa(int(p))
}

// ICMP types by name, as nft spells them (RFC 792, RFC 4443, RFC 4861).
var (
	icmpTypes = map[uint8]string{
		0: "echo-reply", 3: "destination-unreachable", 8: "echo-request",
		11: "time-exceeded", 12: "parameter-problem",
	}
	icmpv6Types = map[uint8]string{
		1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
		4: "parameter-problem", 128: "echo-request", 129: "echo-reply",
		133: "nd-router-solicit", 134: "nd-router-advert",
		135: "nd-neighbor-solicit", 136: "nd-neighbor-advert",
	}
)

func icmpTypeName(p Proto, t uint8) string {
	m := icmpTypes
	if p == ICMPv6 {
		m = icmpv6Types
	}
	if n, ok := m[t]; ok {
		return n
	}
	return strconv.Itoa(int(t))
}
