package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"fulcrum/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func defaultTopology(t *testing.T) *Topology {
	t.Helper()
	topo, err := FromStack(nil)
	if err != nil {
		t.Fatalf("FromStack(nil) = %v", err)
	}
	return topo
}

// threeMachines is the layout of docs/deploy.md: lb1, web1, db1 on one
// machine, lb2, web2, db2 on the second, db3 and the manager on the third.
func threeMachines(t *testing.T) *Topology {
	t.Helper()
	s := config.DefaultStack()
	s.Replicas = 2
	if err := s.Check("three machines"); err != nil {
		t.Fatal(err)
	}
	topo, err := FromStack(s)
	if err != nil {
		t.Fatalf("FromStack() = %v", err)
	}
	as, err := ParseAssignments("lb1=198.51.100.1,web1=198.51.100.1,db1=198.51.100.1," +
		"lb2=198.51.100.2,web2=198.51.100.2,db2=198.51.100.2,db3=198.51.100.3,db-manager=198.51.100.3")
	if err != nil {
		t.Fatal(err)
	}
	for n, a := range as {
		if err := topo.SetAddr(n, a); err != nil {
			t.Fatal(err)
		}
	}
	topo.SSHFrom = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	topo.SSHPort = 2222
	return topo
}

// ipv6Topology is the default topology on IPv6 addresses.
func ipv6Topology(t *testing.T) *Topology {
	t.Helper()
	topo := defaultTopology(t)
	for i := range topo.Nodes {
		n := &topo.Nodes[i]
		v4 := n.Addr.As4()
		n.Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: v4[3]})
	}
	topo.Monitoring = []netip.Prefix{netip.MustParsePrefix("2001:db8::5/128")}
	topo.SSHFrom = []netip.Prefix{netip.MustParsePrefix("2001:db8:ff::/48"), netip.MustParsePrefix("203.0.113.0/24")}
	return topo
}

// TestPlanGolden pins the ruleset of each role. Run with -update after a
// deliberate change and read the diff.
func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		topo   func(*testing.T) *Topology
		host   string
	}{
		{"lb.nft", defaultTopology, "lb1"},
		{"web.nft", defaultTopology, "web2"},
		{"db.nft", defaultTopology, "db1"},
		{"db-manager.nft", defaultTopology, "db-manager"},
		{"three-machines-1.nft", threeMachines, "web1"},
		{"three-machines-3.nft", threeMachines, "db3"},
		{"ipv6-lb.nft", ipv6Topology, "lb2"},
		{"ipv6-db.nft", ipv6Topology, "db1"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			rs, err := Plan(tc.topo(t), tc.host)
			if err != nil {
				t.Fatalf("Plan(%s) = %v", tc.host, err)
			}
			got := rs.String()
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("Plan(%s).String() =\n%s\nwant (%s)\n%s", tc.host, got, path, want)
			}
		})
	}
}

func TestPlanUnknownHost(t *testing.T) {
	if _, err := Plan(defaultTopology(t), "web9"); err == nil {
		t.Fatal("Plan(web9) = nil error, want no host")
	}
}

var (
	lb1     = netip.MustParseAddr("192.0.2.11")
	lb2     = netip.MustParseAddr("192.0.2.12")
	web1    = netip.MustParseAddr("192.0.2.21")
	web2    = netip.MustParseAddr("192.0.2.22")
	db1     = netip.MustParseAddr("192.0.2.31")
	db2     = netip.MustParseAddr("192.0.2.32")
	monitor = netip.MustParseAddr("192.0.2.5")
	client  = netip.MustParseAddr("203.0.113.9")
	client6 = netip.MustParseAddr("2001:db8::9")
)

func tcp(src, dst netip.Addr, port uint16) Packet {
	return Packet{Src: src, Dst: dst, Proto: TCP, DPort: port}
}

// TestEvaluate checks, role by role, which packets the default topology's
// rulesets accept.
func TestEvaluate(t *testing.T) {
	vrrp := func(src netip.Addr) Packet {
		return Packet{Src: src, Dst: netip.MustParseAddr("224.0.0.18"), Proto: VRRP}
	}
	icmp := func(src netip.Addr, typ uint8) Packet {
		p := Packet{Src: src, Dst: lb1, Proto: ICMP, ICMPType: typ}
		if src.Is6() {
			p.Proto = ICMPv6
		}
		return p
	}
	for _, tc := range []struct {
		host string
		name string
		p    Packet
		want Verdict
	}{
		{"lb1", "http from anywhere", tcp(client, lb1, 80), Accept},
		{"lb1", "https from anywhere v6", tcp(client6, lb1, 443), Accept},
		{"lb1", "ssh from anywhere", tcp(client, lb1, 22), Accept},
		{"lb1", "ssh from v6", tcp(client6, lb1, 22), Accept},
		{"lb1", "admin from monitoring", tcp(monitor, lb1, 9901), Accept},
		{"lb1", "admin from a client", tcp(client, lb1, 9901), Drop},
		{"lb1", "admin from the peer", tcp(lb2, lb1, 9901), Drop},
		{"lb1", "vrrp from the peer", vrrp(lb2), Accept},
		{"lb1", "vrrp from a web server", vrrp(web1), Drop},
		{"lb1", "vrrp unicast from the peer", Packet{Src: lb2, Dst: lb1, Proto: VRRP}, Accept},
		{"lb1", "vrrp unicast from a web server", Packet{Src: web1, Dst: lb1, Proto: VRRP}, Drop},
		{"lb1", "vrrp from the peer to another host", Packet{Src: lb2, Dst: web1, Proto: VRRP}, Drop},
		{"lb1", "web port", tcp(client, lb1, 9101), Drop},
		{"lb1", "udp", Packet{Src: client, Dst: lb1, Proto: UDP, DPort: 53}, Drop},
		{"lb1", "loopback", Packet{IIFName: "lo", Src: lb1, Dst: lb1, Proto: TCP, DPort: 9999}, Accept},
		{"lb1", "established", Packet{Src: client, Dst: lb1, Proto: TCP, DPort: 40000, CtState: CtEstablished}, Accept},
		{"lb1", "related", Packet{Src: client, Dst: lb1, Proto: ICMP, ICMPType: 5, CtState: CtRelated}, Accept},
		{"lb1", "invalid", Packet{Src: client, Dst: lb1, Proto: TCP, DPort: 80, CtState: CtInvalid}, Drop},
		{"lb1", "ping", icmp(client, 8), Accept},
		{"lb1", "ping v6", icmp(client6, 128), Accept},
		{"lb1", "unreachable", icmp(client, 3), Accept},
		{"lb1", "redirect", icmp(client, 5), Drop},
		{"lb1", "timestamp", icmp(client, 13), Drop},
		{"lb1", "packet too big", icmp(client6, 2), Accept},
		{"lb1", "neighbour solicitation", icmp(client6, 135), Accept},
		{"lb1", "router advert", icmp(client6, 134), Accept},
		{"lb1", "v6 redirect", icmp(client6, 137), Drop},
		{"lb1", "mapped v4 ssh", tcp(netip.MustParseAddr("::ffff:203.0.113.9"), lb1, 22), Accept},

		{"web1", "web from lb1", tcp(lb1, web1, 9101), Accept},
		{"web1", "web from lb2", tcp(lb2, web1, 9101), Accept},
		{"web1", "web from a client", tcp(client, web1, 9101), Drop},
		{"web1", "web from the other web server", tcp(web2, web1, 9101), Drop},
		{"web1", "web from monitoring", tcp(monitor, web1, 9101), Drop},
		{"web1", "status from monitoring", tcp(monitor, web1, 9111), Accept},
		{"web1", "status from lb1", tcp(lb1, web1, 9111), Drop},
		{"web1", "http", tcp(client, web1, 80), Drop},
		{"web1", "vrrp", vrrp(lb1), Drop},
		{"web2", "web2's own port from lb1", tcp(lb1, web2, 9102), Accept},
		{"web2", "web1's port on web2", tcp(lb1, web2, 9101), Drop},

		{"db1", "mariadb from web1", tcp(web1, db1, 3306), Accept},
		{"db1", "mariadb from web2", tcp(web2, db1, 3306), Accept},
		{"db1", "mariadb from db2 (replication)", tcp(db2, db1, 3306), Accept},
		{"db1", "mariadb from lb1", tcp(lb1, db1, 3306), Accept},
		{"db1", "mariadb from a client", tcp(client, db1, 3306), Drop},
		{"db1", "mariadb from monitoring", tcp(monitor, db1, 3306), Drop},
		{"db1", "mariadb v6", tcp(client6, db1, 3306), Drop},
		{"db1", "manager admin is not on db1", tcp(monitor, db1, 9910), Drop},
		{"db2", "manager admin from monitoring", tcp(monitor, db2, 9910), Accept},
		{"db2", "mariadb from db1", tcp(db1, db2, 3306), Accept},
		{"db-manager", "same host as db2", tcp(db1, db2, 3306), Accept},
	} {
		t.Run(tc.host+"/"+tc.name, func(t *testing.T) {
			rs, err := Plan(defaultTopology(t), tc.host)
			if err != nil {
				t.Fatal(err)
			}
			got, i := Evaluate(rs.Chain("input"), tc.p)
			if got != tc.want {
				t.Errorf("Evaluate(%+v) = %v (rule %d), want %v", tc.p, got, i, tc.want)
			}
		})
	}
}

func TestForwardDropsOutputAccepts(t *testing.T) {
	rs, err := Plan(defaultTopology(t), "lb1")
	if err != nil {
		t.Fatal(err)
	}
	p := tcp(client, web1, 9101)
	if v, _ := Evaluate(rs.Chain("forward"), p); v != Drop {
		t.Errorf("forward: Evaluate() = %v, want drop", v)
	}
	if v, _ := Evaluate(rs.Chain("output"), p); v != Accept {
		t.Errorf("output: Evaluate() = %v, want accept", v)
	}
}

// TestPorts checks the TCP ports each kind of peer reaches on each host:
// the firewall's whole contract in one table.
func TestPorts(t *testing.T) {
	topo := defaultTopology(t)
	for _, tc := range []struct {
		host     string
		dst, src netip.Addr
		want     []uint16
	}{
		{"lb1", lb1, client, []uint16{22, 80, 443}},
		{"lb1", lb1, monitor, []uint16{22, 80, 443, 9901}},
		{"lb2", lb2, monitor, []uint16{22, 80, 443, 9902}},
		{"web1", web1, client, []uint16{22}},
		{"web1", web1, lb2, []uint16{22, 9101}},
		{"web1", web1, monitor, []uint16{22, 9111}},
		{"db1", db1, web2, []uint16{22, 3306}},
		{"db1", db1, client, []uint16{22}},
		{"db2", db2, monitor, []uint16{22, 9910}},
	} {
		t.Run(tc.host+"/"+tc.src.String(), func(t *testing.T) {
			rs, err := Plan(topo, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.Ports(tc.src, tc.dst); !slices.Equal(got, tc.want) {
				t.Errorf("Ports(%s → %s) = %v, want %v", tc.src, tc.host, got, tc.want)
			}
		})
	}
}

// TestThreeMachines checks the merged roles of hosts that run several
// nodes, and the restricted SSH.
func TestThreeMachines(t *testing.T) {
	topo := threeMachines(t)
	m1, m2, m3 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	admin := netip.MustParseAddr("203.0.113.7") // inside --ssh-from
	outsider := netip.MustParseAddr("192.0.2.200")
	for _, tc := range []struct {
		host     string
		dst, src netip.Addr
		want     []uint16
	}{
		{"lb1", m1, outsider, []uint16{80, 443}},
		{"web1", m1, admin, []uint16{80, 443, 2222}},
		{"db1", m1, m2, []uint16{80, 443, 3306, 9101}},
		{"db1", m1, m3, []uint16{80, 443, 3306}},
		{"db3", m3, m1, []uint16{3306}},
		{"db3", m3, outsider, nil},
		{"db3", m3, monitor, []uint16{9910}},
	} {
		t.Run(tc.host+"/"+tc.src.String(), func(t *testing.T) {
			rs, err := Plan(topo, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.Ports(tc.src, tc.dst); !slices.Equal(got, tc.want) {
				t.Errorf("Ports(%s → %s) = %v, want %v", tc.src, tc.host, got, tc.want)
			}
		})
	}
	rs, err := Plan(topo, "lb2")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := Evaluate(rs.Chain("input"), Packet{Src: m1, Dst: netip.MustParseAddr("224.0.0.18"), Proto: VRRP}); v != Accept {
		t.Errorf("lb2: vrrp from lb1's machine: Evaluate() = %v, want accept", v)
	}
	if v, _ := Evaluate(rs.Chain("input"), Packet{Src: m3, Dst: netip.MustParseAddr("224.0.0.18"), Proto: VRRP}); v != Drop {
		t.Errorf("lb2: vrrp from the third machine: Evaluate() = %v, want drop", v)
	}
}

func TestRuleCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Rule
	}{
		{"v4 address in a v6 rule", Rule{Family: IPv6, Saddr: netip.MustParsePrefix("192.0.2.0/24")}},
		{"address without family", Rule{Saddr: netip.MustParsePrefix("192.0.2.1/32")}},
		{"port without protocol", Rule{DPort: 80}},
		{"icmpv6 type over v4", Rule{Family: IPv4, Proto: ICMPv6, HasICMPType: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.check(); err == nil {
				t.Errorf("check(%s) = nil, want an error", tc.r.String())
			}
		})
	}
}

// TestDBThroughLB: the load balancers reach MariaDB only when they serve
// database ports; the web servers always do.
func TestDBThroughLB(t *testing.T) {
	for _, through := range []bool{true, false} {
		topo := defaultTopology(t)
		topo.DBThroughLB = through
		rs, err := Plan(topo, "db1")
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(rs.Ports(lb1, db1), DBPort); got != through {
			t.Errorf("DBThroughLB %v: lb1 → db1:3306 allowed = %v, want %v", through, got, through)
		}
		if !slices.Contains(rs.Ports(web1, db1), DBPort) {
			t.Errorf("DBThroughLB %v: web1 → db1:3306 refused, want allowed", through)
		}
	}
}
