package config

import (
	"strings"
	"testing"
	"time"
)

const lbTail = `frontends:
  - name: www
    mode: http
    bind: ["192.0.2.50:80"]
    default_backend: web
backends:
  - name: web
    servers:
      - {name: web1, address: 192.0.2.21:80}
`

// The section as issue 4 promises it works.
func TestVRRPIssueExample(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(`vrrp:
  interface: eth0
  virtual_router_id: 51
  priority: 150                  # 1..254; 255 = address owner
  advert_interval: 100ms         # centisecond resolution, default 1s
  virtual_ips: ["192.0.2.50/24"]
`+lbTail))
	if err != nil {
		t.Fatal(err)
	}
	v := c.VRRP
	if v.Mode != "ip" || v.Interface != "eth0" || v.VirtualRouterID != 51 || v.Priority != 150 ||
		v.AdvertInterval.D() != 100*time.Millisecond || !*v.Preempt || v.PreemptDelay != 0 {
		t.Fatalf("ParseLB() vrrp = %+v", v)
	}
}

func TestVRRPDefaults(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte("vrrp:\n  interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n"+lbTail))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.VRRP; v.Priority != 100 || v.AdvertInterval.D() != time.Second || !*v.Preempt {
		t.Fatalf("defaults: priority %d interval %v preempt %v, want 100 1s true", v.Priority, v.AdvertInterval.D(), *v.Preempt)
	}
}

func TestVRRPFull(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(`vrrp:
  interface: eth0
  virtual_router_id: 51
  priority: 150
  advert_interval: 100ms
  virtual_ips: ["192.0.2.50/24"]
  preempt: false
  preempt_delay: 30s
  unicast_src: 192.0.2.11
  unicast_peers: [192.0.2.12]
  track: [{backend: web, weight: 60}]
  notify: {master: "logger master", backup: "logger backup", stop: "logger stop"}
  virtual_routers:
    - {virtual_router_id: 52, priority: 100, virtual_ips: ["192.0.2.51/24"]}
`+lbTail))
	if err != nil {
		t.Fatal(err)
	}
	v := c.VRRP
	if *v.Preempt || v.PreemptDelay.D() != 30*time.Second || v.Track[0] != (VRRPTrack{"web", 60}) ||
		v.Notify.Stop != "logger stop" || v.VirtualRouters[0].VirtualRouterID != 52 {
		t.Fatalf("ParseLB() vrrp = %+v", v)
	}
}

func TestVRRPLocal(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(`vrrp:
  mode: local
  virtual_router_id: 51
  priority: 150
  advert_interval: 100ms
  local: {listen: "127.0.0.1:7401", peers: ["127.0.0.1:7402"]}
`+lbTail))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.VRRP.Local.Address; a != "127.0.0.1:8080" {
		t.Fatalf("local.address = %q, want the default 127.0.0.1:8080", a)
	}
}

func TestVRRPErrors(t *testing.T) {
	tests := []struct {
		name, section, want string
	}{
		{"vrid 0", "interface: eth0\n  virtual_router_id: 0\n  virtual_ips: [192.0.2.50]", "lb.yaml:3: vrrp.virtual_router_id: 0: must be 1..255"},
		{"vrid 256", "interface: eth0\n  virtual_router_id: 256\n  virtual_ips: [192.0.2.50]", "vrrp.virtual_router_id: 256: must be 1..255"},
		{"priority", "interface: eth0\n  virtual_router_id: 1\n  priority: 300\n  virtual_ips: [192.0.2.50]", "lb.yaml:4: vrrp.priority: 300: must be 1..255"},
		{"interval not centiseconds", "interface: eth0\n  virtual_router_id: 1\n  advert_interval: 105ms\n  virtual_ips: [192.0.2.50]", "vrrp.advert_interval: 105ms: must be a multiple of 10ms"},
		{"interval too long", "interface: eth0\n  virtual_router_id: 1\n  advert_interval: 1m\n  virtual_ips: [192.0.2.50]", "vrrp.advert_interval: 1m0s"},
		{"no interface", "virtual_router_id: 1\n  virtual_ips: [192.0.2.50]", "vrrp.interface: an interface is required"},
		{"no vip", "interface: eth0\n  virtual_router_id: 1", "vrrp.virtual_ips: at least one address is required"},
		{"bad vip", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.500]", `lb.yaml:4: vrrp.virtual_ips[0]: "192.0.2.500": want an address`},
		{"mixed families", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50, 2001:db8::50]", "vrrp.virtual_ips[1]: 2001:db8::50 is IPv6, the virtual IPs are IPv4"},
		{"duplicate vip", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50, 192.0.2.50/24]", `vrrp.virtual_ips[1]: "192.0.2.50/24": already listed at vrrp.virtual_ips[0]`},
		{"bad peer", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  unicast_peers: [lb2]", `vrrp.unicast_peers[0]: "lb2": not an IP address`},
		{"peer family", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  unicast_peers: [\"2001:db8::2\"]", "vrrp.unicast_peers[0]: 2001:db8::2 is IPv6"},
		{"track weight", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  track: [{backend: web, weight: 300}]", "vrrp.track[0].weight: 300: must be 0..254"},
		{"track backend", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  track: [{weight: 3}]", "vrrp.track[0].backend: a backend is required"},
		{"negative preempt delay", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  preempt_delay: -1s", "vrrp.preempt_delay: -1s: must be 0s..1h"},
		{"mode", "mode: carp\n  interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]", `vrrp.mode: "carp": must be ip or local`},
		{"local in ip mode", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  local: {listen: 127.0.0.1:1}", "vrrp.local: only used with mode local"},
		{"same vrid twice", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  virtual_routers: [{virtual_router_id: 1, virtual_ips: [192.0.2.51]}]", "vrrp.virtual_routers[0].virtual_router_id: 1: already used"},
		{"local without section", "mode: local\n  virtual_router_id: 1", "vrrp.local: mode local needs a local section"},
		{"local with interface", "mode: local\n  interface: eth0\n  virtual_router_id: 1\n  local: {listen: 127.0.0.1:7401, peers: [127.0.0.1:7402]}", "vrrp.interface: not used in local mode"},
		{"local bad listen", "mode: local\n  virtual_router_id: 1\n  local: {listen: localhost:7401, peers: [127.0.0.1:7402]}", `vrrp.local.listen: "localhost:7401": want IP:port`},
		{"local no peers", "mode: local\n  virtual_router_id: 1\n  local: {listen: 127.0.0.1:7401}", "vrrp.local.peers: at least one peer is required"},
		{"local self peer", "mode: local\n  virtual_router_id: 1\n  local: {listen: 127.0.0.1:7401, peers: [127.0.0.1:7401]}", "is this instance's own listen address"},
		{"unknown key", "interface: eth0\n  virtual_router_id: 1\n  virtual_ips: [192.0.2.50]\n  advert_int: 1", "lb.yaml:5: advert_int: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLB("lb.yaml", []byte("vrrp:\n  "+tt.section+"\n"+lbTail))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseLB() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
