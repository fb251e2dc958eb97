package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// StackHost is one machine of the stack: its address on the hosts'
// network and the parts it runs.
type StackHost struct {
	// Name names the host (and its network namespace under
	// `fulcrum up --netns`): 1..12 letters, digits, '_' or '-'.
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// Roles are the parts the host runs, by name: the load balancers and
	// web servers by theirs (lb1, web1, …), the database nodes db1, db2, …
	// (db1 is the first primary) and db-manager.
	Roles []string `yaml:"roles"`
}

// The default placement (TEST-NET-1, RFC 5737): the shared VIP at .10,
// load balancers from .11, web servers from .21, database nodes from .31,
// the client host at .100 and this machine, the monitoring host, at .5.
const (
	defaultNetwork = "192.0.2.0/24"
	firstLBHost    = 11
	firstWebHost   = 21
	firstDBHost    = 31
)

// DBManagerRole is the role name of the database cluster's manager.
const DBManagerRole = "db-manager"

// DBNodeNames returns the database nodes' names: db1 (the first primary),
// db2, … one per node.
func (c *Stack) DBNodeNames() []string {
	out := make([]string, c.Replicas+1)
	for i := range out {
		out[i] = fmt.Sprintf("db%d", i+1)
	}
	return out
}

// HostOf returns the host that runs the part named role, or nil.
func (c *Stack) HostOf(role string) *StackHost {
	for i := range c.Hosts {
		if slices.Contains(c.Hosts[i].Roles, role) {
			return &c.Hosts[i]
		}
	}
	return nil
}

// setHostDefaults places every part on a host of its own, with the
// database manager beside the last database node (a replica at start, so
// that losing the first primary's host leaves the manager up).
func (c *Stack) setHostDefaults() {
	def(&c.Network, defaultNetwork)
	net, err := netip.ParsePrefix(c.Network)
	if err != nil || !net.Addr().Is4() {
		return // validateHosts reports it
	}
	nth := func(i int) string {
		a := net.Masked().Addr().As4()
		a[3] += byte(i)
		return netip.AddrFrom4(a).String()
	}
	def(&c.VIP, nth(10))
	def(&c.Client, nth(100))
	def(&c.Monitor, nth(5))
	if len(c.Hosts) > 0 && !c.hostsDefaulted {
		return
	}
	// Placed anew when a flag changed the parts after the file's defaults.
	c.Hosts, c.hostsDefaulted = nil, true
	for i, l := range c.LBs {
		c.Hosts = append(c.Hosts, StackHost{Name: l.Name, Address: nth(firstLBHost + i), Roles: []string{l.Name}})
	}
	for i, w := range c.Webs {
		c.Hosts = append(c.Hosts, StackHost{Name: w.Name, Address: nth(firstWebHost + i), Roles: []string{w.Name}})
	}
	dbs := c.DBNodeNames()
	for i, n := range dbs {
		h := StackHost{Name: n, Address: nth(firstDBHost + i), Roles: []string{n}}
		if i == len(dbs)-1 {
			h.Roles = append(h.Roles, DBManagerRole)
		}
		c.Hosts = append(c.Hosts, h)
	}
}

func (c *Stack) validateHosts() []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	net, err := netip.ParsePrefix(c.Network)
	if err != nil || !net.Addr().Is4() || net.Bits() < 8 || net.Bits() > 29 {
		return []*fieldError{errorf("network", "%q: want an IPv4 network, /8../29, such as %s", c.Network, defaultNetwork)}
	}
	net = net.Masked()
	used := map[netip.Addr]string{}
	address := func(key, s string) {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || !a.Is4():
			add(errorf(key, "%q: want an IPv4 address", s))
		case !net.Contains(a) || a == net.Addr() || a == lastAddr(net):
			add(errorf(key, "%s: not a host address of network %s", a, net))
		case used[a] != "":
			add(errorf(key, "%s is already the address of %s", a, used[a]))
		default:
			used[a] = key
		}
	}
	address("vip", c.VIP)
	address("client", c.Client)
	// The monitoring host may be one of the stack's (Prometheus beside
	// the manager, say): checked for its network only.
	if m, err := netip.ParseAddr(c.Monitor); err != nil || !m.Is4() || !net.Contains(m) {
		add(errorf("monitor", "%q: want an IPv4 address in network %s", c.Monitor, net))
	}
	// Every part on exactly one host.
	parts := []string{DBManagerRole}
	for _, l := range c.LBs {
		parts = append(parts, l.Name)
	}
	for _, w := range c.Webs {
		parts = append(parts, w.Name)
	}
	parts = append(parts, c.DBNodeNames()...)
	placed := map[string]string{}
	names := map[string]bool{}
	for i, h := range c.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		switch {
		case !validHostName(h.Name):
			add(errorf(p+".name", "%q: use 1..12 letters, digits, '_' or '-'", h.Name))
		case h.Name == "client" || h.Name == "sw":
			add(errorf(p+".name", "%q is reserved for the client host and the network", h.Name))
		case names[h.Name]:
			add(errorf(p+".name", "%q: two hosts of that name", h.Name))
		}
		names[h.Name] = true
		address(p+".address", h.Address)
		if len(h.Roles) == 0 {
			add(errorf(p+".roles", "none: list the parts the host runs (%s)", strings.Join(parts, ", ")))
		}
		for j, r := range h.Roles {
			key := fmt.Sprintf("%s.roles[%d]", p, j)
			switch {
			case !slices.Contains(parts, r):
				add(errorf(key, "%q: no such part (parts: %s)", r, strings.Join(parts, ", ")))
			case placed[r] != "":
				add(errorf(key, "%q already runs on %s", r, placed[r]))
			default:
				placed[r] = h.Name
			}
		}
	}
	for _, part := range parts {
		if placed[part] == "" && len(c.Hosts) > 0 {
			add(errorf("hosts", "no host runs %s: every part needs one", part))
		}
	}
	if len(c.LBs) == 2 && placed[c.LBs[0].Name] != "" && placed[c.LBs[0].Name] == placed[c.LBs[1].Name] {
		add(errorf("hosts", "%s and %s run on one host: a load balancer pair needs two", c.LBs[0].Name, c.LBs[1].Name))
	}
	return errs
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<hostBits - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validHostName keeps a host's name short enough for a network namespace
// and interface names derived from it.
func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 12 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
