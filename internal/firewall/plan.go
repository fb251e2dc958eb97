package firewall

import (
	"fmt"
	"net/netip"
	"slices"
)

// vrrpGroup4 and vrrpGroup6 are the VRRP multicast groups (RFC 5798
// section 5.1.1.2 and 5.1.2.2).
var (
	vrrpGroup4 = netip.MustParsePrefix("224.0.0.18/32")
	vrrpGroup6 = netip.MustParsePrefix("ff02::12/128")
)

// EchoLimit is the rate of ICMP echo requests the input chain accepts.
var EchoLimit = Limit{Rate: 10, Burst: 20}

// Plan returns the ruleset of the host that runs the node named host: input
// policy drop with loopback, established and related traffic, essential
// ICMP and SSH open, then what each role on the host needs; forward policy
// drop; output policy accept.
func Plan(t *Topology, host string) (*Ruleset, error) {
	nodes, err := t.Host(host)
	if err != nil {
		return nil, err
	}
	self := nodes[0].Addr
	p := &planner{}
	p.add(Rule{IIFName: "lo", Comment: "loopback"})
	p.add(Rule{CtState: CtEstablished | CtRelated})
	p.add(Rule{CtState: CtInvalid, Verdict: Drop})
	p.icmp()

	sshPort := t.SSHPort
	if sshPort == 0 {
		sshPort = 22
	}
	if len(t.SSHFrom) == 0 {
		p.add(Rule{Proto: TCP, DPort: sshPort, Comment: "ssh"})
	}
	for _, from := range t.SSHFrom {
		p.from(from, Rule{Proto: TCP, DPort: sshPort, Comment: "ssh"})
	}

	single := func(as []netip.Addr) []netip.Prefix {
		var ps []netip.Prefix
		for _, a := range as {
			// A host reaches itself over loopback, which is open.
			if a != self {
				ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		return ps
	}
	lbs := single(t.withRole(RoleLB))
	for _, n := range nodes {
		switch n.Role {
		case RoleLB:
			for _, port := range t.FrontPorts {
				p.add(Rule{Proto: TCP, DPort: port, Comment: fmt.Sprintf("%s: front", n.Name)})
			}
			// Adverts go to the multicast group, or to this host's
			// address when the pair uses vrrp.unicast_peers.
			for _, peer := range lbs {
				group := vrrpGroup4
				if peer.Addr().Is6() {
					group = vrrpGroup6
				}
				p.from(peer, Rule{Daddr: group, Proto: VRRP, Comment: fmt.Sprintf("%s: vrrp from peer", n.Name)})
				p.from(peer, Rule{Daddr: netip.PrefixFrom(self, self.BitLen()), Proto: VRRP, Comment: fmt.Sprintf("%s: unicast vrrp from peer", n.Name)})
			}
		case RoleWeb:
			for _, lb := range lbs {
				p.from(lb, Rule{Proto: TCP, DPort: n.Port, Comment: fmt.Sprintf("%s: web from the load balancers", n.Name)})
			}
		case RoleDB:
			// Web servers route to the nodes themselves; the manager
			// and the other nodes replicate and fail over; the load
			// balancers, when they serve database ports, proxy and
			// health-check them.
			clients := []Role{RoleWeb, RoleDBManager, RoleDB}
			if t.DBThroughLB {
				clients = append(clients, RoleLB)
			}
			for _, c := range single(t.withRole(clients...)) {
				p.from(c, Rule{Proto: TCP, DPort: n.Port, Comment: fmt.Sprintf("%s: mariadb from the stack", n.Name)})
			}
		}
		if n.AdminPort != 0 {
			for _, m := range t.Monitoring {
				p.from(m, Rule{Proto: TCP, DPort: n.AdminPort, Comment: fmt.Sprintf("%s: admin and metrics from monitoring", n.Name)})
			}
		}
	}
	rs := &Ruleset{Host: host, Chains: []Chain{
		{Name: "input", Policy: Drop, Rules: p.rules},
		{Name: "forward", Policy: Drop},
		{Name: "output", Policy: Accept},
	}}
	if err := rs.Check(); err != nil {
		return nil, err
	}
	return rs, nil
}

// planner collects rules, each once.
type planner struct {
	rules []Rule
}

func (p *planner) add(r Rule) {
	for _, have := range p.rules {
		if sameMatch(have, r) {
			return
		}
	}
	p.rules = append(p.rules, r)
}

// sameMatch reports whether a and b match the same packets with the same
// verdict.
func sameMatch(a, b Rule) bool {
	a.Comment, b.Comment = "", ""
	if (a.Limit == nil) != (b.Limit == nil) || a.Limit != nil && *a.Limit != *b.Limit {
		return false
	}
	a.Limit, b.Limit = nil, nil
	return a == b
}

// from adds r restricted to sources in src, in src's family.
func (p *planner) from(src netip.Prefix, r Rule) {
	r.Saddr = src
	r.Family = IPv4
	if src.Addr().Is6() {
		r.Family = IPv6
	}
	if r.Daddr.IsValid() && r.Daddr.Addr().Is4() != src.Addr().Is4() {
		return
	}
	p.add(r)
}

// icmp adds the ICMP every host needs: path MTU discovery and error
// reporting (RFC 4890 section 4.4.1 for ICMPv6), neighbour discovery
// (RFC 4861; the kernel itself drops ND packets whose hop limit is not 255),
// and rate-limited echo requests.
func (p *planner) icmp() {
	limit := EchoLimit
	p.add(Rule{Family: IPv4, Proto: ICMP, ICMPType: 8, HasICMPType: true, Limit: &limit, Comment: "ping, rate limited"})
	for _, typ := range []uint8{3, 11, 12} {
		p.add(Rule{Family: IPv4, Proto: ICMP, ICMPType: typ, HasICMPType: true})
	}
	p.add(Rule{Family: IPv6, Proto: ICMPv6, ICMPType: 128, HasICMPType: true, Limit: &limit, Comment: "ping, rate limited"})
	for _, typ := range []uint8{1, 2, 3, 4, 134, 135, 136} {
		p.add(Rule{Family: IPv6, Proto: ICMPv6, ICMPType: typ, HasICMPType: true})
	}
}

// Ports returns the TCP ports the input chain opens to src for new
// connections to dst, in ascending order; it is for tests and reports.
func (rs *Ruleset) Ports(src, dst netip.Addr) []uint16 {
	var ports []uint16
	in := rs.Chain("input")
	if in == nil {
		return nil
	}
	for _, r := range in.Rules {
		if r.Proto != TCP || r.DPort == 0 || slices.Contains(ports, r.DPort) {
			continue
		}
		pk := Packet{Src: src, Dst: dst, Proto: TCP, DPort: r.DPort, CtState: CtNew}
		if v, _ := Evaluate(in, pk); v == Accept {
			ports = append(ports, r.DPort)
		}
	}
	slices.Sort(ports)
	return ports
}
