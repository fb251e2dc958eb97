package config

import (
	"fmt"
	"net/netip"
	"time"
)

// VRRP is the `vrrp` section of an LB file: how this load balancer elects,
// with its peers, which one holds the virtual addresses (VRRPv3, RFC 5798;
// issue 4).
type VRRP struct {
	// Mode is ip (default): VRRP over IP protocol 112 on Interface, needing
	// root; or local: the same election over unicast UDP between
	// instances on one machine, where holding the VIP means serving
	// Local.Address.
	Mode string `yaml:"mode"`
	// Interface carries the adverts and receives the virtual addresses (ip
	// mode).
	Interface string `yaml:"interface"`
	// VirtualRouterID is 1..255, the same on every peer.
	VirtualRouterID int `yaml:"virtual_router_id"`
	// Priority is 1..254 (default 100), the highest master wins; 255 marks
	// the owner of the virtual addresses, which becomes master at once.
	Priority int `yaml:"priority"`
	// AdvertInterval is how often the master advertises (default 1s), a
	// multiple of 10ms up to 40.95s. A backup takes over after about 3.6
	// intervals of silence.
	AdvertInterval Duration `yaml:"advert_interval"`
	// VirtualIPs are the addresses the master holds, "192.0.2.50/24" or
	// "192.0.2.50" (a /32), all IPv4 or all IPv6 (ip mode).
	VirtualIPs []string `yaml:"virtual_ips"`
	// Preempt lets this instance take over from a lower-priority master
	// (default true).
	Preempt *bool `yaml:"preempt"`
	// PreemptDelay is how long a lower-priority master must have been
	// heard before this instance preempts it (default 0s), time for a
	// restarted load balancer to find its backends healthy.
	PreemptDelay Duration `yaml:"preempt_delay"`
	// UnicastPeers, when set, receive the adverts instead of the multicast
	// group 224.0.0.18 / ff02::12 (ip mode).
	UnicastPeers []string `yaml:"unicast_peers"`
	// UnicastSrc is the source address of the adverts (default: the
	// interface's first address that is not a virtual IP; for IPv6 its
	// link-local address).
	UnicastSrc string `yaml:"unicast_src"`
	// Track lowers the priority while every server of a backend is down,
	// so that a peer with healthy backends takes over.
	Track []VRRPTrack `yaml:"track"`
	// Notify runs commands on state changes.
	Notify VRRPNotify `yaml:"notify"`
	// Local configures local mode.
	Local *VRRPLocal `yaml:"local"`
	// VirtualRouters are more virtual routers on the same interface, for
	// active-active: two VIPs, each instance master of one and backup of
	// the other (ip mode). They share every other setting.
	VirtualRouters []VRRPRouter `yaml:"virtual_routers"`
}

// VRRPTrack is one tracked backend.
type VRRPTrack struct {
	Backend string `yaml:"backend"`
	// Weight is subtracted from the priority while every server of Backend
	// is down; 0 (the default) drops it to 1, the lowest.
	Weight int `yaml:"weight"`
}

// VRRPNotify holds shell commands run (with /bin/sh -c) when this instance
// becomes master, becomes backup, or stops. Each gets FULCRUM_VRRP_STATE and
// FULCRUM_VRRP_VRID in its environment. Empty: nothing is run.
type VRRPNotify struct {
	Master string `yaml:"master"`
	Backup string `yaml:"backup"`
	Stop   string `yaml:"stop"`
}

// VRRPLocal is local mode: one machine, no root, no interface.
type VRRPLocal struct {
	// Address is the shared front address the master serves (default
	// 127.0.0.1:8080).
	Address string `yaml:"address"`
	// Addresses are more shared addresses served only while master (the
	// database ports of the LB pair, say): what one VIP carries in ip
	// mode.
	Addresses []string `yaml:"addresses"`
	// Listen is this instance's UDP address for adverts, such as
	// 127.0.0.1:7401.
	Listen string `yaml:"listen"`
	// Peers are the other instances' Listen addresses.
	Peers []string `yaml:"peers"`
}

// VRRPRouter is an additional virtual router for active-active.
type VRRPRouter struct {
	VirtualRouterID int      `yaml:"virtual_router_id"`
	Priority        int      `yaml:"priority"`
	VirtualIPs      []string `yaml:"virtual_ips"`
}

func (v *VRRP) setDefaults() {
	def(&v.Mode, "ip")
	if v.Priority == 0 {
		v.Priority = 100
	}
	for i := range v.VirtualRouters {
		if v.VirtualRouters[i].Priority == 0 {
			v.VirtualRouters[i].Priority = 100
		}
	}
	defDur(&v.AdvertInterval, time.Second)
	if v.Preempt == nil {
		v.Preempt = ptr(true)
	}
	if v.Mode == "local" && v.Local != nil {
		def(&v.Local.Address, "127.0.0.1:8080")
	}
}

func (v *VRRP) validate(p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if !oneOf(v.Mode, "ip", "local") {
		add(errorf(p+".mode", "%q: must be ip or local", v.Mode))
	}
	checkRouter := func(rp string, id, prio int) {
		if id < 1 || id > 255 {
			add(errorf(rp+".virtual_router_id", "%d: must be 1..255", id))
		}
		if prio < 1 || prio > 255 {
			add(errorf(rp+".priority", "%d: must be 1..255 (255: address owner)", prio))
		}
	}
	checkRouter(p, v.VirtualRouterID, v.Priority)
	if d := v.AdvertInterval.D(); d < 10*time.Millisecond || d > 40950*time.Millisecond || d%(10*time.Millisecond) != 0 {
		add(errorf(p+".advert_interval", "%v: must be a multiple of 10ms, 10ms..40.95s", d))
	}
	if d := v.PreemptDelay.D(); d < 0 || d > time.Hour {
		add(errorf(p+".preempt_delay", "%v: must be 0s..1h", d))
	}
	seen := map[string]bool{}
	for i, t := range v.Track {
		tp := fmt.Sprintf("%s.track[%d]", p, i)
		if t.Backend == "" {
			add(errorf(tp+".backend", "a backend is required"))
		} else if seen[t.Backend] {
			add(errorf(tp+".backend", "%q is tracked twice", t.Backend))
		}
		seen[t.Backend] = true
		if t.Weight < 0 || t.Weight > 254 {
			add(errorf(tp+".weight", "%d: must be 0..254 (0: drop to priority 1)", t.Weight))
		}
	}
	if v.Mode == "local" {
		return append(errs, v.validateLocal(p)...)
	}
	if v.Local != nil {
		add(errorf(p+".local", "only used with mode local"))
	}
	if v.Interface == "" {
		add(errorf(p+".interface", "an interface is required"))
	} else if len(v.Interface) > 15 {
		add(errorf(p+".interface", "%q: interface names have at most 15 characters", v.Interface))
	}
	family := ""
	famOf := func(a netip.Addr) string {
		if a.Is4() {
			return "IPv4"
		}
		return "IPv6"
	}
	sameFamily := func(key string, a netip.Addr) {
		if family == "" {
			family = famOf(a)
		} else if famOf(a) != family {
			add(errorf(key, "%v is %s, the virtual IPs are %s: one family per virtual router", a, famOf(a), family))
		}
	}
	vips := map[netip.Addr]string{}
	checkVIPs := func(rp string, list []string) {
		if len(list) == 0 {
			add(errorf(rp+".virtual_ips", "at least one address is required"))
		}
		if len(list) > 255 {
			add(errorf(rp+".virtual_ips", "%d addresses: at most 255", len(list)))
		}
		for i, s := range list {
			key := fmt.Sprintf("%s.virtual_ips[%d]", rp, i)
			pfx, err := ParseVIP(s)
			if err != nil {
				add(errorf(key, "%q: %v", s, err))
				continue
			}
			if other, dup := vips[pfx.Addr()]; dup {
				add(errorf(key, "%q: already listed at %s", s, other))
				continue
			}
			vips[pfx.Addr()] = key
			sameFamily(key, pfx.Addr())
		}
	}
	checkVIPs(p, v.VirtualIPs)
	ids := map[int]bool{v.VirtualRouterID: true}
	for i, r := range v.VirtualRouters {
		rp := fmt.Sprintf("%s.virtual_routers[%d]", p, i)
		checkRouter(rp, r.VirtualRouterID, r.Priority)
		if ids[r.VirtualRouterID] {
			add(errorf(rp+".virtual_router_id", "%d: already used in this file", r.VirtualRouterID))
		}
		ids[r.VirtualRouterID] = true
		checkVIPs(rp, r.VirtualIPs)
	}
	if v.UnicastSrc != "" {
		if a, err := netip.ParseAddr(v.UnicastSrc); err != nil {
			add(errorf(p+".unicast_src", "%q: not an IP address", v.UnicastSrc))
		} else {
			sameFamily(p+".unicast_src", a)
		}
	}
	peers := map[netip.Addr]bool{}
	for i, s := range v.UnicastPeers {
		key := fmt.Sprintf("%s.unicast_peers[%d]", p, i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			add(errorf(key, "%q: not an IP address", s))
			continue
		}
		if peers[a] {
			add(errorf(key, "%q: listed twice", s))
		}
		peers[a] = true
		sameFamily(key, a)
	}
	return errs
}

func (v *VRRP) validateLocal(p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	for _, f := range []struct {
		key string
		set bool
	}{
		{"interface", v.Interface != ""},
		{"virtual_ips", len(v.VirtualIPs) > 0},
		{"unicast_peers", len(v.UnicastPeers) > 0},
		{"unicast_src", v.UnicastSrc != ""},
		{"virtual_routers", len(v.VirtualRouters) > 0},
	} {
		if f.set {
			add(errorf(p+"."+f.key, "not used in local mode"))
		}
	}
	l := v.Local
	if l == nil {
		return append(errs, errorf(p+".local", "mode local needs a local section with listen and peers"))
	}
	lp := p + ".local"
	if _, err := netip.ParseAddrPort(l.Address); err != nil {
		add(errorf(lp+".address", "%q: want IP:port", l.Address))
	}
	for i, a := range l.Addresses {
		if _, err := netip.ParseAddrPort(a); err != nil {
			add(errorf(fmt.Sprintf("%s.addresses[%d]", lp, i), "%q: want IP:port", a))
		}
	}
	listen, err := netip.ParseAddrPort(l.Listen)
	if err != nil {
		add(errorf(lp+".listen", "%q: want IP:port", l.Listen))
	}
	if len(l.Peers) == 0 {
		add(errorf(lp+".peers", "at least one peer is required"))
	}
	for i, s := range l.Peers {
		key := fmt.Sprintf("%s.peers[%d]", lp, i)
		a, err := netip.ParseAddrPort(s)
		if err != nil || a.Port() == 0 {
			add(errorf(key, "%q: want IP:port", s))
		} else if a == listen {
			add(errorf(key, "%q: is this instance's own listen address", s))
		}
	}
	return errs
}

// Held returns every address local mode serves only while master.
func (l *VRRPLocal) Held() []string { return append([]string{l.Address}, l.Addresses...) }

// ParseVIP parses a virtual address written "192.0.2.50/24" or "192.0.2.50"
// (a host prefix, /32 or /128).
func ParseVIP(s string) (netip.Prefix, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("want an IPv4 or IPv6 address without zone")
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("want an address or address/prefix-length, such as 192.0.2.50/24")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
