package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultStack(t *testing.T) {
	c := DefaultStack()
	if err := c.Check("defaults"); err != nil {
		t.Fatalf("DefaultStack().Check() = %v", err)
	}
	// The addresses of ARCHITECTURE.md.
	checks := []struct {
		name      string
		got, want any
	}{
		{"front", c.Front, "127.0.0.1:8080"},
		{"dashboard", c.Dashboard, "127.0.0.1:9000"},
		{"replicas", c.Replicas, 1},
		{"lbs[0].name", c.LBs[0].Name, "lb1"},
		{"lbs[0].admin", c.LBs[0].Admin, "127.0.0.1:9901"},
		{"lbs[0].priority", c.LBs[0].Priority, 150},
		{"lbs[1].admin", c.LBs[1].Admin, "127.0.0.1:9902"},
		{"lbs[1].priority", c.LBs[1].Priority, 100},
		{"advert_interval", c.AdvertInterval.D(), 100 * time.Millisecond},
		{"webs[0].listen", c.Webs[0].Listen, "127.0.0.1:9101"},
		{"webs[1].listen", c.Webs[1].Listen, "127.0.0.1:9102"},
		{"health_interval", c.HealthInterval.D(), 500 * time.Millisecond},
		{"db.base_port", c.DB.BasePort, 13306},
		{"db.writes", c.DB.Writes, "127.0.0.1:13300"},
		{"db.reads", c.DB.Reads, "127.0.0.1:13301"},
		{"db.manager", c.DB.Manager, "127.0.0.1:9910"},
		{"db.name", c.DB.Name, "guestbook"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadStack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stack.yaml")
	data := `front: 127.0.0.1:18080
dashboard: 127.0.0.1:19000
replicas: 2
lbs:
  - {admin: 127.0.0.1:19901, vrrp_listen: 127.0.0.1:17401}
  - {name: backup, admin: 127.0.0.1:19902, vrrp_listen: 127.0.0.1:17402, priority: 90}
webs:
  - {name: app1, listen: 127.0.0.1:19101, admin: 127.0.0.1:19111}
db: {base_port: 23306, failover_cooldown: -1s}
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadStack(path)
	if err != nil {
		t.Fatalf("LoadStack() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"replicas", c.Replicas, 2},
		{"lbs[0].name", c.LBs[0].Name, "lb1"},
		{"lbs[0].priority", c.LBs[0].Priority, 150},
		{"lbs[1].name", c.LBs[1].Name, "backup"},
		{"lbs[1].priority", c.LBs[1].Priority, 90},
		{"len(webs)", len(c.Webs), 1},
		{"db.base_port", c.DB.BasePort, 23306},
		{"db.failover_cooldown", c.DB.FailoverCooldown.D(), -time.Second},
		{"db.writes (default)", c.DB.Writes, "127.0.0.1:13300"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseStackErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // a substring of the error
	}{
		{"empty", "", "stack.yaml: empty file"},
		{"unknown key", "front: 127.0.0.1:1\nfrnt: x\n", "stack.yaml:2: frnt: unknown key"},
		{"bad front", "front: nowhere\n", `stack.yaml:1: front: "nowhere": want host:port`},
		{"port twice", "dashboard: 127.0.0.1:8080\n", `dashboard: "127.0.0.1:8080" is already used by front`},
		{"db port taken", "front: 127.0.0.1:13307\n", `db.base_port (node 2): "127.0.0.1:13307" is already used by front`},
		{"replicas", "replicas: 9\n", "replicas: 9: must be 1..8"},
		{"one lb", "lbs: [{name: lb1}]\n", "lbs: 1 load balancers: the stack runs a pair, exactly 2"},
		{"same priority", "lbs: [{priority: 100}, {priority: 100}]\n", "lbs[1].priority: 100: must differ"},
		{"priority range", "lbs: [{priority: 255}, {}]\n", "lbs[0].priority: 255: must be 1..254"},
		{"reserved name", "webs: [{name: db-primary}]\n", `webs[0].name: "db-primary" is reserved`},
		{"duplicate name", "webs: [{name: lb1}]\n", `webs[0].name: "lb1" is already the name of lbs[0].name`},
		{"bad name", "webs: [{name: 'a b'}]\n", `webs[0].name: "a b"`},
		{"advert", "advert_interval: 15ms\n", "advert_interval: 15ms: must be a multiple of 10ms"},
		{"vrid", "virtual_router_id: 300\n", "virtual_router_id: 300: must be 1..255"},
		{"db interval", "db: {interval: 10ms}\n", "db.interval: 10ms: must be at least 50ms"},
		{"db name", "db: {name: 'x;y'}\n", `db.name: "x;y"`},
		{"base port", "db: {base_port: 65535}\n", "db.base_port: 65535: must leave room for 2 ports"},
		{"wrong type", "webs: 3\n", "wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStack("stack.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseStack() = nil error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseStack() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStackCheckAfterFlags(t *testing.T) {
	c := DefaultStack()
	c.Replicas = 0 // --replicas 0 is not given; the default applies
	if err := c.Check("defaults"); err != nil || c.Replicas != 1 {
		t.Errorf("Check() = %v, replicas %d, want nil and 1", err, c.Replicas)
	}
	c.Replicas = 20
	if err := c.Check("defaults with --replicas"); err == nil || !strings.Contains(err.Error(), "defaults with --replicas: replicas: 20") {
		t.Errorf("Check() = %v, want a replicas error naming the source", err)
	}
}

func FuzzParseStack(f *testing.F) {
	f.Add([]byte("front: 127.0.0.1:18080\nreplicas: 2\n"))
	f.Add([]byte("lbs: [{name: a, priority: 10}, {name: b, priority: 20}]\nwebs: [{name: w}]\n"))
	f.Add([]byte("db: {base_port: 1, interval: 1s, failover_cooldown: -1s, name: g}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseStack("stack.yaml", data)
		if err != nil {
			return
		}
		// An accepted file is complete: every part has a name and an
		// address, and the pair is exactly two.
		if len(c.LBs) != 2 || len(c.Webs) == 0 || c.Front == "" || c.Dashboard == "" || c.DB.Manager == "" {
			t.Fatalf("ParseStack accepted an incomplete stack: %+v", c)
		}
		seen := map[string]bool{}
		for _, n := range append([]string{c.LBs[0].Name, c.LBs[1].Name}, c.Webs[0].Name) {
			if n == "" || seen[n] {
				t.Fatalf("ParseStack accepted an empty or duplicate name %q", n)
			}
			seen[n] = true
		}
	})
}

func TestStackHosts(t *testing.T) {
	c := DefaultStack()
	want := map[string]string{"lb1": "192.0.2.11", "lb2": "192.0.2.12", "web1": "192.0.2.21", "web2": "192.0.2.22",
		"db1": "192.0.2.31", "db2": "192.0.2.32", DBManagerRole: "192.0.2.32"}
	for role, addr := range want {
		if h := c.HostOf(role); h == nil || h.Address != addr {
			t.Errorf("HostOf(%s) = %+v, want the host at %s", role, h, addr)
		}
	}
	if c.VIP != "192.0.2.10" || c.Client != "192.0.2.100" || c.Monitor != "192.0.2.5" || c.Network != "192.0.2.0/24" {
		t.Errorf("vip, client, monitor, network = %s, %s, %s, %s", c.VIP, c.Client, c.Monitor, c.Network)
	}
	// --replicas after the defaults: the placement follows.
	c.Replicas = 2
	if err := c.Check("defaults with --replicas"); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if h := c.HostOf("db3"); h == nil || h.Address != "192.0.2.33" || c.HostOf(DBManagerRole) != h {
		t.Errorf("with 2 replicas: db3 on %+v, manager on %+v; want both on 192.0.2.33", h, c.HostOf(DBManagerRole))
	}
	// Written hosts stay as written: two parts on one host.
	c, err := ParseStack("stack.yaml", []byte(`network: 198.51.100.0/24
hosts:
  - {name: edge-a, address: 198.51.100.2, roles: [lb1, web1]}
  - {name: edge-b, address: 198.51.100.3, roles: [lb2, web2]}
  - {name: data-a, address: 198.51.100.4, roles: [db1]}
  - {name: data-b, address: 198.51.100.6, roles: [db2, db-manager]}
`))
	if err != nil {
		t.Fatalf("ParseStack() = %v", err)
	}
	if h := c.HostOf("web2"); h == nil || h.Name != "edge-b" || c.VIP != "198.51.100.10" {
		t.Errorf("HostOf(web2) = %+v, vip %s; want edge-b and 198.51.100.10", h, c.VIP)
	}
}

func TestStackHostErrors(t *testing.T) {
	four := "  - {name: a, address: 192.0.2.2, roles: [lb1, web1]}\n  - {name: b, address: 192.0.2.3, roles: [lb2, web2]}\n" +
		"  - {name: c, address: 192.0.2.4, roles: [db1]}\n"
	tests := []struct{ name, yaml, want string }{
		{"network", "network: 2001:db8::/64\n", `stack.yaml:1: network: "2001:db8::/64": want an IPv4 network`},
		{"vip outside", "vip: 203.0.113.1\n", "vip: 203.0.113.1: not a host address of network 192.0.2.0/24"},
		{"vip is client", "vip: 192.0.2.100\n", "client: 192.0.2.100 is already the address of vip"},
		{"missing part", "hosts:\n" + four, "hosts: no host runs db2: every part needs one"},
		{"unknown part", "hosts:\n" + four + "  - {name: d, address: 192.0.2.5, roles: [db2, db-manager, db9]}\n", `hosts[3].roles[2]: "db9": no such part`},
		{"part twice", "hosts:\n" + four + "  - {name: d, address: 192.0.2.6, roles: [db1, db2, db-manager]}\n", `stack.yaml:5: hosts[3].roles[0]: "db1" already runs on c`},
		{"same address", "hosts:\n" + four + "  - {name: d, address: 192.0.2.4, roles: [db2, db-manager]}\n", "hosts[3].address: 192.0.2.4 is already the address of hosts[2].address"},
		{"monitor outside", "monitor: 203.0.113.5\n", `monitor: "203.0.113.5": want an IPv4 address in network 192.0.2.0/24`},
		{"long name", "hosts:\n  - {name: a-very-long-host, address: 192.0.2.2, roles: [lb1]}\n", `hosts[0].name: "a-very-long-host": use 1..12`},
		{"lb pair on one host", "hosts:\n  - {name: a, address: 192.0.2.2, roles: [lb1, lb2, web1, web2, db1, db2, db-manager]}\n", "lb1 and lb2 run on one host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStack("stack.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseStack() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
