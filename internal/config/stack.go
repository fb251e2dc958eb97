package config

import (
	"fmt"
	"time"
)

// Stack is the file format of `fulcrum up -c FILE`: where the parts of the
// whole stack listen on one machine. Every key is optional; the defaults
// are the addresses of ARCHITECTURE.md, so `fulcrum up` needs no file.
type Stack struct {
	// Front is the shared front address (the VIP in local mode) that the
	// active load balancer serves (default 127.0.0.1:8080).
	Front string `yaml:"front"`
	// FrontTLS is the same site over HTTPS (HTTP/2 and HTTP/1.1), with a
	// certificate from a local CA that fulcrum up creates once in its
	// directory (default 127.0.0.1:8443).
	FrontTLS string `yaml:"front_tls"`
	// Dashboard is the address of the dashboard and of the /api/ that
	// `fulcrum status` and `fulcrum chaos` use (default 127.0.0.1:9000).
	Dashboard string `yaml:"dashboard"`
	// Replicas is the number of MariaDB replicas beside the primary
	// (default 1; `fulcrum up --replicas` overrides it). 1..8.
	Replicas int `yaml:"replicas"`
	// LBs are the two load balancers of the VRRP pair (default lb1 with
	// priority 150, admin 127.0.0.1:9901, adverts on 127.0.0.1:7401; lb2
	// with priority 100, 127.0.0.1:9902, 127.0.0.1:7402).
	LBs []StackLB `yaml:"lbs"`
	// VirtualRouterID is the VRRP id the pair shares (default 51).
	VirtualRouterID int `yaml:"virtual_router_id"`
	// AdvertInterval is how often the master advertises (default 100ms):
	// a backup takes over after about 3.6 intervals of silence.
	AdvertInterval Duration `yaml:"advert_interval"`
	// Webs are the web/app servers (default web1 on 127.0.0.1:9101 with
	// its status on 127.0.0.1:9111, web2 on 9102 and 9112).
	Webs []StackWeb `yaml:"webs"`
	// HealthInterval is how often the load balancers check each web
	// server's /healthz and each database node (default 500ms).
	HealthInterval Duration `yaml:"health_interval"`
	DB             StackDB  `yaml:"db"`
	// Network, Hosts, VIP, Client and Monitor place the parts on separate
	// hosts: `fulcrum up --netns` builds them as network namespaces, and
	// `fulcrum firewall` writes each host's rules from them (hosts.go).
	Network string      `yaml:"network"`
	Hosts   []StackHost `yaml:"hosts"`
	VIP     string      `yaml:"vip"`
	Client  string      `yaml:"client"`
	Monitor string      `yaml:"monitor"`

	hostsDefaulted bool // Hosts were placed by setHostDefaults, not written
}

// StackLB is one load balancer of the pair.
type StackLB struct {
	Name string `yaml:"name"`
	// Admin is its runtime API, stats page and /metrics.
	Admin string `yaml:"admin"`
	// Priority is its VRRP priority, 1..254; the higher one is active.
	Priority int `yaml:"priority"`
	// VRRPListen is its UDP address for VRRP adverts on loopback.
	VRRPListen string `yaml:"vrrp_listen"`
}

// StackWeb is one web/app server.
type StackWeb struct {
	Name   string `yaml:"name"`
	Listen string `yaml:"listen"`
	// Admin serves its /status JSON and /metrics.
	Admin string `yaml:"admin"`
}

// StackDB is the database tier.
type StackDB struct {
	// BasePort is the first MariaDB node's port; the others follow
	// (default 13306). It only applies when the state directory holds no
	// cluster yet: an existing cluster keeps its ports.
	BasePort int `yaml:"base_port"`
	// Writes and Reads are the load balancers' database ports: the primary
	// (default 127.0.0.1:13300) and the replicas (default 127.0.0.1:13301).
	Writes string `yaml:"writes"`
	Reads  string `yaml:"reads"`
	// Manager is the DB manager's status, /metrics and switchover API
	// (default 127.0.0.1:9910).
	Manager string `yaml:"manager"`
	// Interval is how often the manager checks every node (default 250ms:
	// a dead primary is noticed within it).
	Interval Duration `yaml:"interval"`
	// FailoverCooldown holds a second automatic failover within this time
	// of the previous one (default 30s, short for a demonstration; the
	// manager's own default is 1h; negative: none).
	FailoverCooldown Duration `yaml:"failover_cooldown"`
	// Name is the application's database, created by `fulcrum up` with the
	// cluster's admin user (default guestbook).
	Name string `yaml:"name"`
}

// LoadStack reads, defaults and validates a stack file.
func LoadStack(path string) (*Stack, error) {
	var c Stack
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseStack is LoadStack on data already read; name is used in errors.
func ParseStack(name string, data []byte) (*Stack, error) {
	var c Stack
	if err := decode(name, data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// DefaultStack returns the stack `fulcrum up` runs without a file.
func DefaultStack() *Stack {
	var c Stack
	c.setDefaults()
	return &c
}

// Check fills in the defaults of a Stack changed in code (flags override
// the file) and validates it; name stands for the file in errors.
func (c *Stack) Check(name string) error {
	c.setDefaults()
	var es Errors
	for _, fe := range c.validate() {
		es = append(es, &Error{File: name, Key: fe.path, Msg: fe.msg})
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

func (c *Stack) setDefaults() {
	def(&c.Front, "127.0.0.1:8080")
	def(&c.FrontTLS, "127.0.0.1:8443")
	def(&c.Dashboard, "127.0.0.1:9000")
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if len(c.LBs) == 0 {
		c.LBs = []StackLB{{Name: "lb1"}, {Name: "lb2"}}
	}
	for i := range c.LBs {
		l := &c.LBs[i]
		def(&l.Name, fmt.Sprintf("lb%d", i+1))
		def(&l.Admin, fmt.Sprintf("127.0.0.1:%d", 9901+i))
		def(&l.VRRPListen, fmt.Sprintf("127.0.0.1:%d", 7401+i))
		if l.Priority == 0 {
			l.Priority = max(150-50*i, 1)
		}
	}
	if c.VirtualRouterID == 0 {
		c.VirtualRouterID = 51
	}
	defDur(&c.AdvertInterval, 100*time.Millisecond)
	if len(c.Webs) == 0 {
		c.Webs = []StackWeb{{Name: "web1"}, {Name: "web2"}}
	}
	for i := range c.Webs {
		w := &c.Webs[i]
		def(&w.Name, fmt.Sprintf("web%d", i+1))
		def(&w.Listen, fmt.Sprintf("127.0.0.1:%d", 9101+i))
		def(&w.Admin, fmt.Sprintf("127.0.0.1:%d", 9111+i))
	}
	defDur(&c.HealthInterval, 500*time.Millisecond)
	d := &c.DB
	if d.BasePort == 0 {
		d.BasePort = 13306
	}
	def(&d.Writes, "127.0.0.1:13300")
	def(&d.Reads, "127.0.0.1:13301")
	def(&d.Manager, "127.0.0.1:9910")
	defDur(&d.Interval, 250*time.Millisecond)
	defDur(&d.FailoverCooldown, 30*time.Second)
	def(&d.Name, "guestbook")
	c.setHostDefaults()
}

func (c *Stack) validate() []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	// Every listening address once: two parts on one port would fail at
	// start with a less helpful message.
	used := map[string]string{}
	addr := func(key, a string) {
		if _, err := ParseHostPort(a); err != nil {
			add(errorf(key, "%q: %v", a, err))
			return
		}
		if other, dup := used[a]; dup {
			add(errorf(key, "%q is already used by %s", a, other))
			return
		}
		used[a] = key
	}
	addr("front", c.Front)
	addr("front_tls", c.FrontTLS)
	addr("dashboard", c.Dashboard)
	if c.Replicas < 1 || c.Replicas > 8 {
		add(errorf("replicas", "%d: must be 1..8", c.Replicas))
	}
	if len(c.LBs) != 2 {
		add(errorf("lbs", "%d load balancers: the stack runs a pair, exactly 2", len(c.LBs)))
	}
	names := map[string]string{}
	name := func(key, n string) {
		switch {
		case !validServerName(n):
			add(errorf(key, "%q: use 1..64 letters, digits, '.', '_' or '-'", n))
		case n == "db-primary":
			add(errorf(key, "%q is reserved: chaos uses it for the current primary", n))
		case names[n] != "":
			add(errorf(key, "%q is already the name of %s", n, names[n]))
		default:
			names[n] = key
		}
	}
	for i, l := range c.LBs {
		p := fmt.Sprintf("lbs[%d]", i)
		name(p+".name", l.Name)
		addr(p+".admin", l.Admin)
		addr(p+".vrrp_listen", l.VRRPListen)
		if l.Priority < 1 || l.Priority > 254 {
			add(errorf(p+".priority", "%d: must be 1..254", l.Priority))
		}
	}
	if len(c.LBs) == 2 && c.LBs[0].Priority == c.LBs[1].Priority {
		add(errorf("lbs[1].priority", "%d: must differ from lbs[0]'s, so that one is the preferred master", c.LBs[1].Priority))
	}
	if c.VirtualRouterID < 1 || c.VirtualRouterID > 255 {
		add(errorf("virtual_router_id", "%d: must be 1..255", c.VirtualRouterID))
	}
	if d := c.AdvertInterval.D(); d < 10*time.Millisecond || d > 40950*time.Millisecond || d%(10*time.Millisecond) != 0 {
		add(errorf("advert_interval", "%v: must be a multiple of 10ms, 10ms..40.95s", d))
	}
	if len(c.Webs) < 1 || len(c.Webs) > 16 {
		add(errorf("webs", "%d web servers: must be 1..16", len(c.Webs)))
	}
	for i, w := range c.Webs {
		p := fmt.Sprintf("webs[%d]", i)
		name(p+".name", w.Name)
		addr(p+".listen", w.Listen)
		addr(p+".admin", w.Admin)
	}
	if c.HealthInterval.D() < 10*time.Millisecond {
		add(errorf("health_interval", "%v: must be at least 10ms", c.HealthInterval.D()))
	}
	d := c.DB
	if d.BasePort < 1 || d.BasePort+c.Replicas > 65535 {
		add(errorf("db.base_port", "%d: must leave room for %d ports below 65536", d.BasePort, c.Replicas+1))
	} else {
		for i := 0; i <= c.Replicas; i++ {
			addr(fmt.Sprintf("db.base_port (node %d)", i+1), fmt.Sprintf("127.0.0.1:%d", d.BasePort+i))
		}
	}
	addr("db.writes", d.Writes)
	addr("db.reads", d.Reads)
	addr("db.manager", d.Manager)
	if d.Interval.D() < 50*time.Millisecond {
		add(errorf("db.interval", "%v: must be at least 50ms", d.Interval.D()))
	}
	if !validDBName(d.Name) {
		add(errorf("db.name", "%q: use 1..64 letters, digits or '_'", d.Name))
	}
	return append(errs, c.validateHosts()...)
}
