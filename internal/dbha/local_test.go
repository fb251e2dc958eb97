package dbha

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/testenv"
)

func TestLocalClusterStartRestart(t *testing.T) {
	testenv.Short(t)
	begin := time.Now()
	l := startCluster(t, 3)
	t.Logf("3-node cluster up in %v", time.Since(begin).Round(time.Millisecond))

	// cluster.env: mode 0600, the variables of issue 3, primary first.
	envPath := filepath.Join(l.Dir(), "cluster.env")
	fi, err := os.Stat(envPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cluster.env mode = %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(envPath)
	c := l.Credentials()
	nodes := l.Nodes()
	for _, want := range []string{
		"FULCRUM_DB_NODES=" + nodes[0].Addr + "," + nodes[1].Addr + "," + nodes[2].Addr + "\n",
		"FULCRUM_DB_ADMIN_USER=" + c.AdminUser + "\n", "FULCRUM_DB_ADMIN_PASSWORD=" + c.AdminPassword + "\n",
		"FULCRUM_DB_APP_USER=" + c.AppUser + "\n", "FULCRUM_DB_APP_PASSWORD=" + c.AppPassword + "\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("cluster.env lacks %q:\n%s", want, data)
		}
	}

	ctx := context.Background()
	app := openAs(t, nodes[0].Addr, c.AppUser, c.AppPassword, c.Database)
	if _, err := app.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.ExecContext(ctx, "INSERT INTO t VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}
	// A temporary table's files are in the node's own tmpdir, where no
	// other mariadbd starting deletes them (it deletes #sql files in its
	// tmpdir, by default $TMPDIR or /tmp, shared by every server).
	conn, err := app.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TEMPORARY TABLE scratch (a INT) ENGINE=Aria"); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(nodes[0].Dir, "tmp", "#sql*")); len(files) == 0 {
		t.Errorf("no #sql file in %s after CREATE TEMPORARY TABLE: the node's temporary tables are elsewhere", filepath.Join(nodes[0].Dir, "tmp"))
	}
	conn.Close() // the temporary table goes with it

	// The application user cannot write to a replica (1290), nor escalate.
	rep := openAs(t, nodes[1].Addr, c.AppUser, c.AppPassword, c.Database)
	waitFor(t, 5*time.Second, "row on replica", func() bool {
		var n int
		return rep.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n) == nil && n == 1
	})
	_, err = rep.ExecContext(ctx, "INSERT INTO t VALUES (2, 'two')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Errorf("app INSERT on replica = %v, want error 1290", err)
	}
	for _, q := range []string{"SET GLOBAL read_only=0", "CREATE DATABASE other", "SELECT * FROM mysql.user"} {
		if _, err := app.ExecContext(ctx, q); err == nil {
			t.Errorf("app %q succeeded, want a privilege error", q)
		}
	}
	// The admin user can create a database and grant on it.
	adm := adminDB(t, l, "db1")
	for _, q := range []string{"CREATE DATABASE shop", "GRANT SELECT ON shop.* TO " + c.AppUser + "@'%'"} {
		if _, err := adm.ExecContext(ctx, q); err != nil {
			t.Errorf("admin %q = %v", q, err)
		}
	}

	// A switchover that cluster.json does not hear of (a manager without
	// OnPrimaryChange): the restart must take the roles from the servers.
	cfg := l.ManagerConfig()
	cfg.OnPrimaryChange = nil
	ms, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ms.Check(ctx)
	if err := ms.Switchover(ctx, "db2"); err != nil {
		t.Fatalf("Switchover(db2) = %v", err)
	}
	ms.Close()

	// Restart: the same roles, the data kept.
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	l2, err := StartLocal(ctx, LocalConfig{Dir: l.Dir()})
	if l2 != nil {
		// l2 knows the node AddNode adds below; l does not.
		t.Cleanup(func() { l2.Stop() })
	}
	if err != nil {
		t.Fatalf("StartLocal(existing) = %v", err)
	}
	t.Logf("restart of an existing 3-node cluster in %v", time.Since(begin).Round(time.Millisecond))
	m, err := NewManager(l2.ManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := m.Check(ctx)
	if s.Primary != "db2" {
		t.Errorf("primary after restart = %q, want db2", s.Primary)
	}
	for _, n := range s.Nodes {
		if n.Name == "db2" {
			continue
		}
		if n.Role != "replica" || !n.ReadOnly || n.Replica == nil || !n.Replica.Healthy() {
			t.Errorf("%s after restart: role %q read_only %v replica %+v, want a healthy read-only replica", n.Name, n.Role, n.ReadOnly, n.Replica)
		}
	}
	var v string
	if err := rep.QueryRowContext(ctx, "SELECT v FROM t WHERE id=1").Scan(&v); err != nil || v != "one" {
		t.Errorf("row after restart = %q, %v; want one", v, err)
	}

	// A fourth node joins a primary that holds data: dump, then replication.
	app = openAs(t, nodes[1].Addr, c.AppUser, c.AppPassword, c.Database)
	if _, err := app.ExecContext(ctx, "INSERT INTO t VALUES (2, 'two')"); err != nil {
		t.Fatal(err)
	}
	n4, err := l2.AddNode(ctx)
	if err != nil {
		t.Fatalf("AddNode() = %v", err)
	}
	if _, err := app.ExecContext(ctx, "INSERT INTO t VALUES (3, 'three')"); err != nil {
		t.Fatal(err)
	}
	rep4 := openAs(t, n4.Addr, c.AppUser, c.AppPassword, c.Database)
	waitFor(t, 5*time.Second, "rows on the added node", func() bool {
		var n int
		return rep4.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n) == nil && n == 3
	})
	m4, err := NewManager(l2.ManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m4.Close()
	if n := nodeStatus(m4.Check(ctx), n4.Name); n.Role != "replica" || len(n.Errant) > 0 || !n.Replica.Healthy() {
		t.Errorf("%s: role %q, errant %v, replica %+v; want a healthy replica without errant GTIDs", n4.Name, n.Role, n.Errant, n.Replica)
	}
	if !strings.Contains(readFile(t, envPath), n4.Addr) {
		t.Errorf("cluster.env does not list %s", n4.Addr)
	}

	// A replica that applied more than the primary has (as after a crash
	// truncated the primary's binlog; simulated by moving its position)
	// leads after a restart.
	adm3 := adminDB(t, l2, "db3")
	var binlog string
	if err := adm3.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&binlog); err != nil {
		t.Fatal(err)
	}
	ahead, _ := ParsePosition(binlog)
	for d, g := range ahead {
		g.Seq += 1000
		ahead[d] = g
	}
	for _, q := range []string{"STOP SLAVE", "SET GLOBAL gtid_slave_pos='" + ahead.String() + "'"} {
		if _, err := adm3.ExecContext(ctx, q); err != nil {
			t.Fatalf("db3: %s: %v", q, err)
		}
	}
	if err := l2.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := StartLocal(ctx, LocalConfig{Dir: l.Dir()}); err != nil {
		t.Fatalf("StartLocal(replica ahead) = %v", err)
	}
	// m4 still believes db2 is the primary: it must follow, not fence db3.
	if s := m4.Check(ctx); s.Primary != "db3" || !hasEvent(s, "primary", "db3", "changed outside the manager") {
		t.Errorf("primary after restart with db3 ahead = %q, want db3 (events %+v)", s.Primary, s.Events)
	}
	s = m4.Check(ctx)
	for _, n := range s.Nodes {
		if n.Name != "db3" && (n.Role != "replica" || !n.ReadOnly || !n.Replica.Healthy()) {
			t.Errorf("%s: role %q read_only %v replica %+v; want a healthy replica of db3", n.Name, n.Role, n.ReadOnly, n.Replica)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
