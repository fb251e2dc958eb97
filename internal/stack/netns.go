package stack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/firewall"
	"fulcrum/internal/netns"
)

// nsPrefix names the namespaces of `fulcrum up --netns`: fulcrum-lb1, …,
// fulcrum-client, fulcrum-monitor and fulcrum-sw for the network between
// them.
const nsPrefix = "fulcrum-"

// The hosts fulcrum up adds: the client is the outside world; the monitor
// is where fulcrum up itself reaches the hosts from (the dashboard's
// polls), the address the firewalls admit to the admin ports.
const (
	clientHost  = "client"
	monitorHost = "monitor"
)

// onHosts returns a copy of c with every part's addresses on its host
// (c.Hosts): the load balancers serve the VIP on ports 80 and 443, each
// part keeps its configured port on its host's address, and the database
// nodes listen on 3306. The load balancers serve no database ports: the
// host firewalls admit only the web servers, the manager and the other
// database nodes to MariaDB.
func onHosts(c *config.Stack) (*config.Stack, error) {
	p := *c
	p.LBs = append([]config.StackLB(nil), c.LBs...)
	p.Webs = append([]config.StackWeb(nil), c.Webs...)
	move := func(part, addr string) (string, error) {
		h := c.HostOf(part)
		if h == nil {
			return "", fmt.Errorf("no host runs %s", part)
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("%s: %q: %w", part, addr, err)
		}
		return net.JoinHostPort(h.Address, port), nil
	}
	var err error
	p.Front, p.FrontTLS = net.JoinHostPort(c.VIP, "80"), net.JoinHostPort(c.VIP, "443")
	for i := range p.LBs {
		l := &p.LBs[i]
		if l.Admin, err = move(l.Name, l.Admin); err != nil {
			return nil, err
		}
		if l.VRRPListen, err = move(l.Name, l.VRRPListen); err != nil {
			return nil, err
		}
	}
	for i := range p.Webs {
		w := &p.Webs[i]
		if w.Listen, err = move(w.Name, w.Listen); err != nil {
			return nil, err
		}
		if w.Admin, err = move(w.Name, w.Admin); err != nil {
			return nil, err
		}
	}
	if p.DB.Manager, err = move(config.DBManagerRole, p.DB.Manager); err != nil {
		return nil, err
	}
	p.DB.Writes, p.DB.Reads = "", ""
	return &p, nil
}

// dbHosts returns the address and namespace of each database node.
func dbHosts(c *config.Stack) (addrs, namespaces []string) {
	for _, n := range c.DBNodeNames() {
		h := c.HostOf(n)
		addrs = append(addrs, h.Address)
		namespaces = append(namespaces, nsPrefix+h.Name)
	}
	return addrs, namespaces
}

// startNet builds the hosts, the client and monitor hosts, applies every
// host's firewall, and sends the polls through the monitor host.
func (s *Stack) startNet() error {
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root: it creates network namespaces and firewalls")
	}
	c := s.cfg
	network, err := netip.ParsePrefix(c.Network)
	if err != nil {
		return err
	}
	for _, h := range c.Hosts {
		if h.Address == c.Monitor {
			return fmt.Errorf("monitor %s is host %s's address: with --netns the monitor is a host of its own", c.Monitor, h.Name)
		}
	}
	var hosts []netns.Host
	for _, h := range c.Hosts {
		hosts = append(hosts, netns.Host{Name: h.Name, Addr: netip.MustParseAddr(h.Address)})
	}
	hosts = append(hosts, netns.Host{Name: clientHost, Addr: netip.MustParseAddr(c.Client)},
		netns.Host{Name: monitorHost, Addr: netip.MustParseAddr(c.Monitor)})
	if s.net, err = netns.Create(nsPrefix, network, hosts); err != nil {
		return err
	}
	d, err := s.net.Dialer(s.netCtx, monitorHost)
	if err != nil {
		return err
	}
	s.http.Transport.(*http.Transport).DialContext = d.DialContext
	s.event("stack", "", "hosts created: %d network namespaces on %s", len(hosts), network)
	topo, err := firewall.FromStack(c)
	if err != nil {
		return err
	}
	for _, h := range c.Hosts {
		rs, err := firewall.Plan(topo, h.Roles[0])
		if err != nil {
			return err
		}
		f, err := s.net.Open(h.Name)
		if err != nil {
			return err
		}
		err = firewall.Installer{NetNS: int(f.Fd())}.Apply(rs)
		f.Close()
		if err != nil {
			return fmt.Errorf("firewall of %s: %w", h.Name, err)
		}
	}
	s.event("stack", "", "firewalls applied on %d hosts (table inet %s)", len(c.Hosts), firewall.TableName)
	return nil
}

// hostNS returns the namespace a part runs in ("": this machine's).
func (s *Stack) hostNS(part string) string {
	if s.net == nil {
		return ""
	}
	if part == "manager" {
		part = config.DBManagerRole
	}
	return s.net.NS(s.cfg.HostOf(part).Name)
}

// vipPrefix is the VIP as the load balancers add it to eth0: a /32, so
// that their own connections keep the host's address as their source.
func vipPrefix(c *config.Stack) string { return c.VIP + "/32" }

// checkPlacement refuses a cluster made earlier for other addresses (the
// one-machine stack's for --netns, or the hosts' without it): its nodes
// would start where no host is.
func checkPlacement(cfg dbha.LocalConfig) error {
	l, err := dbha.OpenLocal(cfg.Dir, nil)
	if err != nil {
		return nil // none yet
	}
	nodes := l.Nodes()
	if cfg.Hosts == nil {
		for _, n := range nodes {
			if n.NetNS != "" {
				return fmt.Errorf("the database in %s was made for separate hosts (%s in %s): run it with --netns, or use --fresh or another --dir",
					cfg.Dir, n.Name, n.NetNS)
			}
		}
		return nil
	}
	for i, n := range nodes {
		if i >= len(cfg.Hosts) || n.Addr != net.JoinHostPort(cfg.Hosts[i], strconv.Itoa(cfg.BasePort)) || n.NetNS != cfg.NetNS[i] {
			return fmt.Errorf("the database in %s was made for other hosts (%s on %s): use --fresh to start anew, or another --dir",
				cfg.Dir, n.Name, n.Addr)
		}
	}
	if len(nodes) != len(cfg.Hosts) {
		return fmt.Errorf("the database in %s has %d nodes, the hosts %d: use --fresh to start anew, or another --dir", cfg.Dir, len(nodes), len(cfg.Hosts))
	}
	return nil
}
