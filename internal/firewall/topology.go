package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"fulcrum/internal/config"
)

// Role is what a node of the stack does; a host's roles decide which ports
// its firewall opens.
type Role string

// Roles.
const (
	RoleLB        Role = "lb"         // load balancer of the VRRP pair
	RoleWeb       Role = "web"        // web/app server
	RoleDB        Role = "db"         // MariaDB node
	RoleDBManager Role = "db-manager" // the database cluster's manager
)

// Node is one part of the stack at a network address. Nodes that share an
// address run on one host, whose firewall serves all their roles.
type Node struct {
	Name string
	Role Role
	Addr netip.Addr
	// Port is the node's service port: the web server's listener, the
	// MariaDB port (0: none; a load balancer serves Topology.FrontPorts).
	Port uint16
	// AdminPort is its runtime API, status and /metrics port, open only to
	// the monitoring addresses (0: none).
	AdminPort uint16
}

// Topology is what the firewall needs to know of the stack: its nodes and
// who may reach the management ports.
type Topology struct {
	Nodes []Node
	// FrontPorts are the load balancers' public TCP ports, open to anyone
	// (default 80 and 443).
	FrontPorts []uint16
	// SSHPort is the SSH server's port (default 22).
	SSHPort uint16
	// SSHFrom are the networks SSH accepts (nil: anywhere).
	SSHFrom []netip.Prefix
	// DBThroughLB: the load balancers serve database ports (the stack's
	// db.writes and db.reads), so they reach MariaDB too.
	DBThroughLB bool
	// Monitoring are the networks that may reach admin and /metrics ports
	// (default 192.0.2.5/32; nil after FromStack: nobody).
	Monitoring []netip.Prefix
}

// DefaultMonitoring is the monitoring host of the default topology: the
// stack's monitor address.
var DefaultMonitoring = netip.MustParsePrefix("192.0.2.5/32")

// DBPort is MariaDB's port on a host of its own.
const DBPort = 3306

// FromStack places the nodes of s (nil: config.DefaultStack()) on the
// stack's hosts (s.Hosts; by default lb1, lb2 at 192.0.2.11, .12, web
// servers from .21, database nodes db1, db2, … from .31 each on port 3306,
// and the database manager beside the last database node). Service and
// admin ports come from s; s.Monitor is the monitoring host. SetAddr moves
// a node to another address.
func FromStack(s *config.Stack) (*Topology, error) {
	if s == nil {
		s = config.DefaultStack()
	}
	t := &Topology{
		FrontPorts:  []uint16{80, 443},
		SSHPort:     22,
		DBThroughLB: s.DB.Writes != "",
	}
	if m, err := netip.ParseAddr(s.Monitor); err == nil {
		t.Monitoring = []netip.Prefix{netip.PrefixFrom(m, m.BitLen())}
	}
	add := func(name string, role Role, listen, admin string) error {
		h := s.HostOf(name)
		if h == nil {
			return fmt.Errorf("firewall: %s %q runs on no host of the stack", role, name)
		}
		addr, err := netip.ParseAddr(h.Address)
		if err != nil {
			return fmt.Errorf("firewall: host %s: address %q: %w", h.Name, h.Address, err)
		}
		n := Node{Name: name, Role: role, Addr: addr.Unmap()}
		if listen != "" {
			if n.Port, err = portOf(listen); err != nil {
				return fmt.Errorf("firewall: %s %q: listen %q: %w", role, name, listen, err)
			}
		}
		if admin != "" {
			if n.AdminPort, err = portOf(admin); err != nil {
				return fmt.Errorf("firewall: %s %q: admin %q: %w", role, name, admin, err)
			}
		}
		t.Nodes = append(t.Nodes, n)
		return nil
	}
	for _, l := range s.LBs {
		if err := add(l.Name, RoleLB, "", l.Admin); err != nil {
			return nil, err
		}
	}
	for _, w := range s.Webs {
		if err := add(w.Name, RoleWeb, w.Listen, w.Admin); err != nil {
			return nil, err
		}
	}
	for _, n := range s.DBNodeNames() {
		if err := add(n, RoleDB, fmt.Sprintf(":%d", DBPort), ""); err != nil {
			return nil, err
		}
	}
	if err := add(config.DBManagerRole, RoleDBManager, "", s.DB.Manager); err != nil {
		return nil, err
	}
	return t, nil
}

func portOf(hostport string) (uint16, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: must be 1..65535", p)
	}
	return uint16(n), nil
}

// Node returns the node named name, or nil.
func (t *Topology) Node(name string) *Node {
	for i := range t.Nodes {
		if t.Nodes[i].Name == name {
			return &t.Nodes[i]
		}
	}
	return nil
}

// SetAddr moves the named node to addr.
func (t *Topology) SetAddr(name string, addr netip.Addr) error {
	n := t.Node(name)
	if n == nil {
		return fmt.Errorf("firewall: no node %q (nodes: %s)", name, strings.Join(t.names(), ", "))
	}
	n.Addr = addr.Unmap()
	return nil
}

func (t *Topology) names() []string {
	var s []string
	for _, n := range t.Nodes {
		s = append(s, n.Name)
	}
	return s
}

// Host returns the nodes that run on the host of the node named name: all
// nodes at its address.
func (t *Topology) Host(name string) ([]Node, error) {
	n := t.Node(name)
	if n == nil {
		return nil, fmt.Errorf("firewall: no host %q (hosts: %s)", name, strings.Join(t.names(), ", "))
	}
	var on []Node
	for _, m := range t.Nodes {
		if m.Addr == n.Addr {
			on = append(on, m)
		}
	}
	return on, nil
}

// withRole returns the addresses of the nodes with any of roles, each once,
// in node order.
func (t *Topology) withRole(roles ...Role) []netip.Addr {
	var as []netip.Addr
	for _, n := range t.Nodes {
		if slices.Contains(roles, n.Role) && !slices.Contains(as, n.Addr) {
			as = append(as, n.Addr)
		}
	}
	return as
}

// ParseAssignments parses a list of node=address pairs separated by commas,
// such as "lb1=10.0.0.1,web1=10.0.0.1,db1=2001:db8::1", the value of
// `fulcrum firewall --hosts`.
func ParseAssignments(s string) (map[string]netip.Addr, error) {
	m := map[string]netip.Addr{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("firewall: %q: want NAME=ADDRESS", kv)
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("firewall: %s: %q is not an IP address without a zone", name, addr)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("firewall: %s: given twice", name)
		}
		m[name] = a.Unmap()
	}
	return m, nil
}

// ParsePrefixes parses a comma-separated list of addresses and CIDR
// prefixes ("203.0.113.0/24,2001:db8::7"); an address stands for itself.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if p, err := netip.ParsePrefix(f); err == nil {
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("firewall: %q: write IPv4 networks as IPv4", f)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("firewall: %q: not an address or CIDR prefix", f)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}
