package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
)

func TestWriteConfigs(t *testing.T) {
	dir := t.TempDir()
	c := config.DefaultStack()
	nodes := []dbha.LocalNode{{Name: "db1", Addr: "127.0.0.1:13306"}, {Name: "db2", Addr: "127.0.0.1:13307"}}
	creds := dbha.Credentials{AdminUser: "adm", AdminPassword: "a-pw", ReplUser: "rep", ReplPassword: "r-pw", AppUser: "app", AppPassword: "p-pw"}
	fs, err := writeConfigs(dir, c, nodes, creds, false)
	if err != nil {
		t.Fatalf("writeConfigs() = %v", err)
	}
	lb1, err := config.LoadLB(fs.lb["lb1"])
	if err != nil {
		t.Fatal(err)
	}
	lb2, err := config.LoadLB(fs.lb["lb2"])
	if err != nil {
		t.Fatal(err)
	}
	if lb1.VRRP.Priority != 150 || lb2.VRRP.Priority != 100 || lb1.VRRP.Local.Address != "127.0.0.1:8080" ||
		lb1.VRRP.Local.Peers[0] != lb2.VRRP.Local.Listen || lb1.VRRP.AdvertInterval.D().String() != "100ms" {
		t.Errorf("vrrp: lb1 %+v %+v, lb2 %+v", lb1.VRRP, lb1.VRRP.Local, lb2.VRRP.Local)
	}
	frontends := func(l *config.LB) string {
		var out []string
		for _, f := range l.Frontends {
			out = append(out, f.Name+"="+strings.Join(f.Bind, ","))
		}
		return strings.Join(out, " ")
	}
	// Both LBs carry the front and the database ports; whichever is
	// master holds them all.
	for _, l := range []*config.LB{lb1, lb2} {
		if got, want := frontends(l), "www=127.0.0.1:8080 www-tls=127.0.0.1:8443 db-writes=127.0.0.1:13300 db-reads=127.0.0.1:13301"; got != want {
			t.Errorf("frontends = %s, want %s", got, want)
		}
		if got, want := strings.Join(l.VRRP.Local.Held(), " "), "127.0.0.1:8080 127.0.0.1:8443 127.0.0.1:13300 127.0.0.1:13301"; got != want {
			t.Errorf("held addresses = %s, want %s", got, want)
		}
		if len(l.Backends) != 3 {
			t.Errorf("%d backends, want web, db-primary and db-replicas", len(l.Backends))
		}
	}
	web := lb1.Backends[0]
	if web.Name != "web" || web.Balance != "roundrobin" || !web.Redispatch || *web.Retries != 3 ||
		web.Health.Path != "/healthz" || web.Health.Interval.D().String() != "500ms" || len(web.Servers) != 2 {
		t.Errorf("backend web = %+v, health %+v", web, web.Health)
	}
	for _, b := range lb1.Backends[1:] {
		if b.Health.Type != "mysql" || len(b.Servers) != 2 || b.Servers[1].Address != "127.0.0.1:13307" {
			t.Errorf("backend %s = %+v", b.Name, b)
		}
	}
	if r := lb1.Backends[2]; r.Health.Role != "replica" || r.Health.MaxLag.D().String() != "5s" {
		t.Errorf("backend db-replicas health = %+v, want role replica, max_lag 5s", r.Health)
	}
	w, err := config.LoadWeb(fs.web["web1"])
	if err != nil {
		t.Fatal(err)
	}
	if w.App != "guestbook" || w.Database.Name != "guestbook" || strings.Join(w.Database.Nodes, ",") != "127.0.0.1:13306,127.0.0.1:13307" || w.Database.User != "app" {
		t.Errorf("web1 = %+v, database %+v", w, w.Database)
	}
	pw, _ := os.ReadFile(w.Database.PasswordFile)
	if string(pw) != "p-pw\n" {
		t.Errorf("app password file = %q, want the app password", pw)
	}
	db, err := config.LoadDB(fs.db)
	if err != nil {
		t.Fatal(err)
	}
	if db.AdminPassword() != "a-pw" || db.ReplPassword() != "r-pw" || !db.AutoRejoin || db.Interval.D().String() != "250ms" || db.CheckTimeout.D().String() != "1s" || len(db.Nodes) != 2 {
		t.Errorf("db.yaml = %+v", db)
	}
	fi, err := os.Stat(w.Database.PasswordFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode = %v, want 0600", fi.Mode())
	}
}

// TestWriteConfigsOnHosts is the --netns placement: every part on its
// host's address, the VIP held by VRRP on eth0, no database ports on the
// load balancers.
func TestWriteConfigsOnHosts(t *testing.T) {
	c, err := onHosts(config.DefaultStack())
	if err != nil {
		t.Fatal(err)
	}
	nodes := []dbha.LocalNode{{Name: "db1", Addr: "192.0.2.31:3306"}, {Name: "db2", Addr: "192.0.2.32:3306"}}
	fs, err := writeConfigs(t.TempDir(), c, nodes, dbha.Credentials{AdminUser: "a", ReplUser: "r", AppUser: "p"}, true)
	if err != nil {
		t.Fatalf("writeConfigs() = %v", err)
	}
	lb, err := config.LoadLB(fs.lb["lb2"])
	if err != nil {
		t.Fatal(err)
	}
	if lb.VRRP.Mode == "local" || lb.VRRP.Interface != "eth0" || strings.Join(lb.VRRP.VirtualIPs, ",") != "192.0.2.10/32" || lb.VRRP.Priority != 100 {
		t.Errorf("lb2 vrrp = %+v, want ip mode on eth0 holding 192.0.2.10/32 at priority 100", lb.VRRP)
	}
	var binds []string
	for _, f := range lb.Frontends {
		binds = append(binds, f.Name+"="+strings.Join(f.Bind, ","))
	}
	if got, want := strings.Join(binds, " "), "www=192.0.2.10:80 www-tls=192.0.2.10:443"; got != want {
		t.Errorf("frontends = %s, want %s", got, want)
	}
	if len(lb.Backends) != 1 || lb.Admin != "192.0.2.12:9902" {
		t.Errorf("%d backends, admin %s; want only web, admin on lb2's host", len(lb.Backends), lb.Admin)
	}
	if s := lb.Backends[0].Servers; len(s) != 2 || s[1].Address != "192.0.2.22:9102" {
		t.Errorf("web servers = %+v, want web2 at 192.0.2.22:9102", s)
	}
	w, err := config.LoadWeb(fs.web["web1"])
	if err != nil {
		t.Fatal(err)
	}
	if w.Listen != "192.0.2.21:9101" || w.Admin != "192.0.2.21:9111" || strings.Join(w.Database.Nodes, ",") != "192.0.2.31:3306,192.0.2.32:3306" {
		t.Errorf("web1 listen %s, admin %s, database %v", w.Listen, w.Admin, w.Database.Nodes)
	}
	if c.DB.Manager != "192.0.2.32:9910" {
		t.Errorf("manager on %s, want beside db2 at 192.0.2.32:9910", c.DB.Manager)
	}
	addrs, namespaces := dbHosts(c)
	if strings.Join(addrs, ",") != "192.0.2.31,192.0.2.32" || strings.Join(namespaces, ",") != "fulcrum-db1,fulcrum-db2" {
		t.Errorf("dbHosts() = %v, %v", addrs, namespaces)
	}
}

// TestCheckPlacement: a cluster made for the hosts runs only with them,
// and one made on this machine only without.
func TestCheckPlacement(t *testing.T) {
	dir := t.TempDir()
	state := `{"nodes": [{"name": "db1", "port": 3306, "addr": "192.0.2.31:3306", "netns": "fulcrum-db1"},
	  {"name": "db2", "port": 3306, "addr": "192.0.2.32:3306", "netns": "fulcrum-db2"}], "primary": "db1"}`
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	hosts := dbha.LocalConfig{Dir: dir, BasePort: 3306, Hosts: []string{"192.0.2.31", "192.0.2.32"}, NetNS: []string{"fulcrum-db1", "fulcrum-db2"}}
	if err := checkPlacement(hosts); err != nil {
		t.Errorf("the same hosts: %v, want nil", err)
	}
	moved := hosts
	moved.Hosts = []string{"192.0.2.31", "192.0.2.33"}
	if err := checkPlacement(moved); err == nil || !strings.Contains(err.Error(), "db2 on 192.0.2.32:3306") {
		t.Errorf("db2 on another host: %v, want a refusal naming db2", err)
	}
	if err := checkPlacement(dbha.LocalConfig{Dir: dir, BasePort: 13306}); err == nil || !strings.Contains(err.Error(), "--netns") {
		t.Errorf("without --netns: %v, want a refusal saying to use --netns", err)
	}
	if err := checkPlacement(dbha.LocalConfig{Dir: t.TempDir(), BasePort: 13306}); err != nil {
		t.Errorf("no cluster yet: %v, want nil", err)
	}
}
