package dbha

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to a target until it is cut: then it
// drops every connection and refuses new ones, as a network partition
// between the manager and one node would.
type cutProxy struct {
	ln     net.Listener
	target string

	// mu guards the fields below.
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func hasEvent(s Status, kind, node, contains string) bool {
	for _, e := range s.Events {
		if e.Kind == kind && (node == "" || e.Node == node) && strings.Contains(e.Message, contains) {
			return true
		}
	}
	return false
}

func TestManagerBadInput(t *testing.T) {
	l := startCluster(t, 3)
	ctx := context.Background()
	t.Run("wrong credentials", func(t *testing.T) {
		cfg := l.ManagerConfig()
		cfg.AdminPassword = "wrong"
		m, err := NewManager(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s := m.Check(ctx)
		for _, n := range s.Nodes {
			if n.Reachable || !strings.Contains(n.Error, "Access denied") {
				t.Errorf("%s: reachable %v, error %q; want unreachable with Access denied", n.Name, n.Reachable, n.Error)
			}
		}
		if s.Primary != "" || s.Failovers != 0 {
			t.Errorf("Primary = %q, Failovers = %d; want none, 0", s.Primary, s.Failovers)
		}
	})
	t.Run("unreachable node", func(t *testing.T) {
		cfg := l.ManagerConfig()
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		cfg.Nodes = append(cfg.Nodes, NodeConfig{Name: "db9", Addr: dead})
		m, err := NewManager(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s := m.Check(ctx)
		if n := nodeStatus(s, "db9"); n.Reachable || !strings.Contains(n.Error, "connection refused") {
			t.Errorf("db9: reachable %v, error %q; want unreachable, connection refused", n.Reachable, n.Error)
		}
		if !hasEvent(s, "unreachable", "db9", "db9 unreachable") {
			t.Errorf("no unreachable event for db9 in %+v", s.Events)
		}
		if s.Primary != "db1" || nodeStatus(s, "db2").Role != "replica" || s.Failovers != 0 {
			t.Errorf("Primary %q, db2 role %q, failovers %d; want db1, replica, 0", s.Primary, nodeStatus(s, "db2").Role, s.Failovers)
		}
	})
	t.Run("manager started after the primary died", func(t *testing.T) {
		if err := l.Kill("db1"); err != nil {
			t.Fatal(err)
		}
		cfg := l.ManagerConfig()
		cfg.OnPrimaryChange = nil
		m, err := NewManager(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var s Status
		waitFor(t, 10*time.Second, "failover", func() bool {
			s = m.Check(ctx)
			return s.Failovers == 1
		})
		if s.Primary == "db1" || !hasEvent(s, "primary", "db1", "replicate from db1") {
			t.Errorf("Primary = %q, events %+v; want db1 found through its replicas, then replaced", s.Primary, s.Events)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		cfg := l.ManagerConfig()
		cfg.Nodes[0].Addr = "no-port"
		if _, err := NewManager(cfg); err == nil || !strings.Contains(err.Error(), `"no-port"`) {
			t.Errorf("NewManager(bad address) = %v, want an error naming it", err)
		}
	})
}

// TestManagerFaults walks one cluster through the faults of issue 3: a
// stopped SQL thread, a duplicate-key error, an errant GTID, the manager cut
// off from the primary alone, then a real failover refusing the errant
// replica, anti-flapping, a manual failover overriding it, and a planned
// switchover with its hook.
func TestManagerFaults(t *testing.T) {
	l := startCluster(t, 3)
	ctx := context.Background()
	nodes := l.Nodes()
	proxy := newCutProxy(t, nodes[0].Addr)
	hookOut := filepath.Join(t.TempDir(), "hook.env")
	m := testManager(t, l, func(c *Config) {
		c.Nodes[0].Addr, c.Nodes[0].ReplicationAddr = proxy.addr(), nodes[0].Addr
		c.FailoverCooldown = time.Hour
		c.OnSwitchover = []string{"env | grep ^FULCRUM_DB_ | sort > " + hookOut}
	})
	waitFor(t, 5*time.Second, "primary db1", func() bool { return m.Status().Primary == "db1" })
	c := l.Credentials()
	app := openAs(t, nodes[0].Addr, c.AppUser, c.AppPassword, c.Database)
	if _, err := app.Exec("CREATE TABLE f (id INT PRIMARY KEY, v VARCHAR(32))"); err != nil {
		t.Fatal(err)
	}
	db2, db3 := adminDB(t, l, "db2"), adminDB(t, l, "db3")
	mustExec := func(name string, q string) {
		t.Helper()
		if _, err := adminDB(t, l, name).Exec(q); err != nil {
			t.Fatalf("%s: %s: %v", name, q, err)
		}
	}

	t.Run("stopped SQL thread", func(t *testing.T) {
		mustExec("db3", "STOP SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "SQL thread reported stopped", func() bool {
			n := nodeStatus(m.Status(), "db3")
			return n.Replica != nil && n.Replica.SQLRunning == "No" && strings.Contains(n.Error, "SQL thread stopped")
		})
		mustExec("db3", "START SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "replication healthy again", func() bool {
			return hasEvent(m.Status(), "replication-ok", "db3", "healthy again")
		})
	})

	t.Run("duplicate key on a replica", func(t *testing.T) {
		// A row written on the replica alone, then the same key on the
		// primary: the replica must stop and say so, never skip.
		conn, err := db3.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"SET SESSION sql_log_bin=0", "INSERT INTO " + c.Database + ".f VALUES (100, 'replica')"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := app.Exec("INSERT INTO f VALUES (100, 'primary')"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "duplicate key reported", func() bool {
			n := nodeStatus(m.Status(), "db3")
			return n.Replica != nil && n.Replica.LastSQLErrno == 1062 && strings.Contains(n.Error, "1062")
		})
		if !hasEvent(m.Status(), "replication-error", "db3", "SQL thread error 1062") {
			t.Errorf("no replication-error event with 1062: %+v", m.Status().Events)
		}
		// The operator repairs the row; replication resumes with the
		// primary's transaction, which was not skipped.
		if _, err := conn.ExecContext(ctx, "DELETE FROM "+c.Database+".f WHERE id=100"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		mustExec("db3", "START SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "the primary's row on db3", func() bool {
			var v string
			return db3.QueryRow("SELECT v FROM "+c.Database+".f WHERE id=100").Scan(&v) == nil && v == "primary"
		})
	})

	t.Run("errant GTID", func(t *testing.T) {
		conn, err := db2.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, q := range []string{"SET SESSION gtid_domain_id=9", "INSERT INTO " + c.Database + ".f VALUES (200, 'errant')"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "errant GTID reported", func() bool {
			n := nodeStatus(m.Status(), "db2")
			return len(n.Errant) == 1 && n.Errant[0] == "9-2-1"
		})
	})

	t.Run("manager cut off from the primary alone", func(t *testing.T) {
		proxy.setCut(true)
		waitFor(t, 5*time.Second, "primary unreachable from the manager", func() bool {
			return hasEvent(m.Status(), "unreachable", "db1", "still replicates from it: no failover")
		})
		time.Sleep(time.Second) // ten checks
		s := m.Status()
		if s.Failovers != 0 || s.Primary != "db1" {
			t.Fatalf("Failovers = %d, Primary = %q; want 0, db1", s.Failovers, s.Primary)
		}
		var ro int
		if err := adminDB(t, l, "db1").QueryRow("SELECT @@read_only").Scan(&ro); err != nil || ro != 0 {
			t.Fatalf("db1 read_only = %d, %v; want 0 (still the primary)", ro, err)
		}
	})

	t.Run("failover refuses the errant replica", func(t *testing.T) {
		if _, err := app.Exec("INSERT INTO f VALUES (300, 'before kill')"); err != nil {
			t.Fatal(err)
		}
		if err := l.Kill("db1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "failover", func() bool { return m.Status().Failovers == 1 })
		s := m.Status()
		if s.Primary != "db3" {
			t.Fatalf("Primary = %q, want db3 (db2 is errant)", s.Primary)
		}
		if !hasEvent(s, "refused", "db2", "errant GTID 9-2-1") {
			t.Errorf("no refusal of db2 with its reason: %+v", s.Events)
		}
		var v string
		if err := db3.QueryRow("SELECT v FROM " + c.Database + ".f WHERE id=300").Scan(&v); err != nil || v != "before kill" {
			t.Errorf("row 300 on db3 = %q, %v; want it", v, err)
		}
	})

	t.Run("former primary rejoins", func(t *testing.T) {
		proxy.setCut(false)
		if err := l.StartNode(ctx, "db1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "db1 rejoined", func() bool {
			n := nodeStatus(m.Status(), "db1")
			return n.Role == "replica" && n.ReadOnly && n.Replica != nil && n.Replica.Healthy()
		})
	})

	t.Run("anti-flapping, then manual failover overrides it", func(t *testing.T) {
		if err := l.Kill("db3"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "failover held", func() bool {
			return hasEvent(m.Status(), "failover-held", "db3", "anti-flapping")
		})
		time.Sleep(500 * time.Millisecond)
		s := m.Status()
		if s.Failovers != 1 || s.FailoverHeldUntil == nil {
			t.Fatalf("Failovers = %d, held until %v; want 1 and a hold", s.Failovers, s.FailoverHeldUntil)
		}
		if err := m.Switchover(ctx, "db2"); !errors.Is(err, ErrSwitchover) || !strings.Contains(err.Error(), "errant") {
			t.Errorf("Switchover(db2) = %v, want a refusal naming the errant GTID", err)
		}
		if err := m.Switchover(ctx, "db1"); err != nil {
			t.Fatalf("Switchover(db1) = %v", err)
		}
		if s := m.Status(); s.Primary != "db1" {
			t.Fatalf("Primary = %q, want db1", s.Primary)
		}
		var v string
		if err := adminDB(t, l, "db1").QueryRow("SELECT v FROM " + c.Database + ".f WHERE id=300").Scan(&v); err != nil {
			t.Errorf("row 300 on db1: %v", err)
		}
	})

	t.Run("planned switchover runs its hook", func(t *testing.T) {
		if err := l.StartNode(ctx, "db3"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "db3 rejoined", func() bool {
			n := nodeStatus(m.Status(), "db3")
			return n.Role == "replica" && n.Replica != nil && n.Replica.Healthy()
		})
		if err := m.Switchover(ctx, "db3"); err != nil {
			t.Fatalf("Switchover(db3) = %v", err)
		}
		waitFor(t, 5*time.Second, "db1 replicating from db3", func() bool {
			n := nodeStatus(m.Status(), "db1")
			return m.Status().Primary == "db3" && n.Role == "replica" && n.ReadOnly && n.Replica != nil && n.Replica.Healthy()
		})
		var data []byte
		waitFor(t, 5*time.Second, "hook output", func() bool {
			var err error
			data, err = os.ReadFile(hookOut)
			return err == nil && len(data) > 0
		})
		want := "FULCRUM_DB_EVENT=switchover\nFULCRUM_DB_NEW_PRIMARY=" + nodes[2].Addr + "\nFULCRUM_DB_OLD_PRIMARY=" + proxy.addr() + "\n"
		if string(data) != want {
			t.Errorf("hook environment:\n%s\nwant:\n%s", data, want)
		}
		// db2 keeps its errant row 200: it is compared apart.
		waitConverged(t, l, m, c.Database+".f", "db2")
		var n int
		if err := db2.QueryRow("SELECT COUNT(*) FROM " + c.Database + ".f WHERE id <> 200").Scan(&n); err != nil || n != 2 {
			t.Errorf("db2 rows besides the errant one = %d, %v; want 2", n, err)
		}
	})
}
