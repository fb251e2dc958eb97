// Package firewall builds, checks and installs fulcrum's host firewall: one
// nftables table, "inet fulcrum", whose input chain drops everything the
// topology does not need (issue 9).
//
// The rule model in this file is the single source of both outputs: String
// renders it in nft syntax (`fulcrum firewall plan`), Installer.Apply turns
// the same rules into netlink expressions (`fulcrum firewall apply`), and
// Evaluate runs it against a packet, so plan, apply and the SSH guard never
// disagree.
package firewall

import (
	"fmt"
	"net/netip"
)

// TableName is the name of fulcrum's table in the inet family. Apply and
// Remove touch only this table.
const TableName = "fulcrum"

// Family restricts a rule to one address family.
type Family uint8

// Families, as the kernel's NFPROTO numbers.
const (
	AnyFamily Family = 0
	IPv4      Family = 2  // NFPROTO_IPV4
	IPv6      Family = 10 // NFPROTO_IPV6
)

// Proto is an IP protocol (IPv4) or final next header (IPv6) number, the
// kernel's meta l4proto.
type Proto uint8

// Protocols the rules use.
const (
	AnyProto Proto = 0
	ICMP     Proto = 1
	TCP      Proto = 6
	UDP      Proto = 17
	ICMPv6   Proto = 58
	VRRP     Proto = 112 // RFC 5798 section 5.1.1.4
)

// CtState is a set of conntrack states, the kernel's NF_CT_STATE_*_BIT.
type CtState uint32

// Conntrack states.
const (
	CtInvalid     CtState = 1
	CtEstablished CtState = 2
	CtRelated     CtState = 4
	CtNew         CtState = 8
)

// Verdict is what a matching rule, or a chain's policy, does with a packet.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota
	Drop
)

func (v Verdict) String() string {
	if v == Drop {
		return "drop"
	}
	return "accept"
}

// Limit is a packet rate limit: the rule matches at most Rate packets per
// second after a burst of Burst.
type Limit struct {
	Rate  uint64
	Burst uint32
}

// Rule is one nftables rule: every set field must match (zero fields match
// anything), then Verdict applies. The matches are those fulcrum needs; each
// renders to one nft statement and one short run of netlink expressions.
type Rule struct {
	// Family is the address family the rule applies to; it must be set
	// when Saddr, Daddr or an ICMP type is.
	Family Family
	// IIFName matches the input interface's name ("" any).
	IIFName string
	// CtState matches when the packet's conntrack state is one of these
	// (0 any).
	CtState CtState
	// Saddr and Daddr match the source and destination address (the zero
	// Prefix: any).
	Saddr, Daddr netip.Prefix
	// Proto matches the transport protocol (0 any).
	Proto Proto
	// DPort matches the TCP or UDP destination port (0 any).
	DPort uint16
	// ICMPType matches the ICMP or ICMPv6 type when HasICMPType is set.
	ICMPType    uint8
	HasICMPType bool
	// Limit, when set, lets only that rate of matching packets through.
	Limit *Limit
	// Verdict is what a matching packet gets.
	Verdict Verdict
	// Comment says why the rule is there; nft shows it.
	Comment string
}

// Chain is a base chain of the table.
type Chain struct {
	Name string // also its hook: input, forward or output
	// Policy is the verdict of a packet no rule matched.
	Policy Verdict
	Rules  []Rule
}

// Ruleset is fulcrum's whole table for one host.
type Ruleset struct {
	// Host is the host the ruleset was planned for (for messages only).
	Host   string
	Chains []Chain
}

// Chain returns the chain named name, or nil.
func (rs *Ruleset) Chain(name string) *Chain {
	for i := range rs.Chains {
		if rs.Chains[i].Name == name {
			return &rs.Chains[i]
		}
	}
	return nil
}

// check reports a rule the renderers cannot express faithfully.
func (r *Rule) check() error {
	for _, p := range []netip.Prefix{r.Saddr, r.Daddr} {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4() && r.Family != IPv4 || p.Addr().Is6() && r.Family != IPv6 {
			return fmt.Errorf("firewall: rule %q: address %s needs the rule's family to match", r.Comment, p)
		}
	}
	if r.DPort != 0 && r.Proto != TCP && r.Proto != UDP {
		return fmt.Errorf("firewall: rule %q: a destination port needs tcp or udp", r.Comment)
	}
	if r.HasICMPType && !(r.Proto == ICMP && r.Family == IPv4 || r.Proto == ICMPv6 && r.Family == IPv6) {
		return fmt.Errorf("firewall: rule %q: an ICMP type needs icmp over IPv4 or icmpv6 over IPv6", r.Comment)
	}
	if len(r.Comment) > 120 {
		return fmt.Errorf("firewall: rule %q: comment longer than 120 bytes", r.Comment)
	}
	return nil
}

// Check validates every rule of rs.
func (rs *Ruleset) Check() error {
	for _, c := range rs.Chains {
		for i := range c.Rules {
			if err := c.Rules[i].check(); err != nil {
				return fmt.Errorf("chain %s: %w", c.Name, err)
			}
		}
	}
	return nil
}
