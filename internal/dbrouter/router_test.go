package dbrouter_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/dbha"
	"fulcrum/internal/dbrouter"
	"fulcrum/internal/testenv"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := dbrouter.Open(ctx, dbrouter.Config{}); err == nil {
		t.Error("Open(no nodes) = nil error, want one")
	}
	if _, err := dbrouter.Open(ctx, dbrouter.Config{Nodes: []string{"nohost"}}); err == nil || !strings.Contains(err.Error(), "nohost") {
		t.Errorf("Open(bad address) = %v, want an error naming it", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	r, err := dbrouter.Open(ctx, dbrouter.Config{Nodes: []string{dead}, CheckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(unreachable node) = %v, want a router that retries", err)
	}
	defer r.Close()
	if p, err := r.Primary(); !errors.Is(err, dbrouter.ErrNoPrimary) {
		t.Errorf("Primary() = %q, %v; want ErrNoPrimary", p, err)
	}
	if _, err := r.Exec(ctx, "SELECT 1"); !errors.Is(err, dbrouter.ErrNoPrimary) {
		t.Errorf("Exec() = %v, want ErrNoPrimary", err)
	}
}

// cluster starts a 3-node local cluster and a manager-free router over it,
// nodes listed replicas first (the order must not matter).
func cluster(t *testing.T, interval time.Duration) (*dbha.Local, *dbrouter.Router) {
	t.Helper()
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db", "mariadb-dump", "mariadb")
	dir, err := os.MkdirTemp("", "fulcrum-dbrouter-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: filepath.Join(dir, "c"), FreePorts: true})
	if l != nil {
		t.Cleanup(func() { l.Stop() })
	}
	if err != nil {
		t.Fatalf("StartLocal() = %v", err)
	}
	c := l.Credentials()
	addrs := l.Addrs()
	r, err := dbrouter.Open(ctx, dbrouter.Config{Nodes: append(addrs[1:], addrs[0]), User: c.AppUser,
		Password: c.AppPassword, Database: c.Database, CheckInterval: interval, WaitTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return l, r
}

func readNodes(t *testing.T, r *dbrouter.Router, after dbrouter.Token, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		rows, err := r.Query(context.Background(), after, "SELECT COUNT(*) FROM kv")
		if err != nil {
			t.Fatalf("Query() = %v", err)
		}
		seen[rows.Node]++
		rows.Close()
	}
	return seen
}

func TestRouterReadsAndWrites(t *testing.T) {
	l, r := cluster(t, 100*time.Millisecond)
	ctx := context.Background()
	addrs := l.Addrs()
	prim, rep1, rep2 := addrs[0], addrs[1], addrs[2]
	if p, err := r.Primary(); p != prim || err != nil {
		t.Fatalf("Primary() = %q, %v; want %s", p, err, prim)
	}
	if _, err := r.Exec(ctx, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	res, err := r.Exec(ctx, "INSERT INTO kv VALUES (1, 1)")
	if err != nil {
		t.Fatal(err)
	}
	if res.Node != prim || !strings.HasPrefix(res.Token.GTID, "0-1-") {
		t.Errorf("Exec() node %s token %q; want %s and a GTID of server 1", res.Node, res.Token.GTID, prim)
	}

	t.Run("read your writes", func(t *testing.T) {
		for i := 2; i < 30; i++ {
			res, err := r.Exec(ctx, "INSERT INTO kv VALUES (?, ?)", i, i)
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := r.QueryRow(ctx, res.Token, "SELECT v FROM kv WHERE k = ?", i).Scan(&v); err != nil || v != i {
				t.Fatalf("read after write %d = %d, %v", i, v, err)
			}
		}
		fromReplica := 0
		for i := 100; i < 110; i++ {
			res, err := r.Exec(ctx, "INSERT INTO kv VALUES (?, ?)", i, i)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := r.Query(ctx, res.Token, "SELECT v FROM kv WHERE k = ?", i)
			if err != nil {
				t.Fatal(err)
			}
			if !rows.Next() {
				t.Fatalf("row %d not found on %s after waiting for %s", i, rows.Node, res.Token.GTID)
			}
			if rows.Node != prim {
				fromReplica++
			}
			rows.Close()
		}
		if fromReplica == 0 {
			t.Errorf("all 10 reads-after-write went to the primary, want replicas to wait for the GTID and serve them")
		}
	})

	t.Run("round robin over replicas", func(t *testing.T) {
		if got := readNodes(t, r, dbrouter.Token{}, 6); got[rep1] != 3 || got[rep2] != 3 {
			t.Errorf("reads per node = %v, want 3 on %s and 3 on %s", got, rep1, rep2)
		}
	})

	t.Run("token a replica lacks goes to the primary", func(t *testing.T) {
		future := dbrouter.Token{GTID: "0-1-999999"}
		if got := readNodes(t, r, future, 2); got[prim] != 2 {
			t.Errorf("reads per node = %v, want both on the primary %s", got, prim)
		}
	})

	adm := func(addr, q string) {
		t.Helper()
		c := l.Credentials()
		db, err := sql.Open("mysql", c.AdminUser+":"+c.AdminPassword+"@tcp("+addr+")/")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %s: %v", addr, q, err)
		}
	}
	t.Run("a stopped replica is not read from", func(t *testing.T) {
		adm(rep1, "STOP SLAVE SQL_THREAD")
		time.Sleep(300 * time.Millisecond)
		if got := readNodes(t, r, dbrouter.Token{}, 4); got[rep2] != 4 {
			t.Errorf("reads per node = %v, want all 4 on %s", got, rep2)
		}
		adm(rep2, "STOP SLAVE SQL_THREAD")
		time.Sleep(300 * time.Millisecond)
		if got := readNodes(t, r, dbrouter.Token{}, 2); got[prim] != 2 {
			t.Errorf("reads per node = %v, want both on the primary %s", got, prim)
		}
		adm(rep1, "START SLAVE SQL_THREAD")
		adm(rep2, "START SLAVE SQL_THREAD")
	})
}

func TestRouterFollowsSwitchoverAndRetries1290(t *testing.T) {
	// A refresh interval longer than the test: only the 1290 answer of the
	// old primary can make the router look again.
	l, r := cluster(t, time.Hour)
	ctx := context.Background()
	if _, err := r.Exec(ctx, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	m, err := dbha.NewManager(l.ManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addrs := l.Addrs()
	if err := m.Switchover(ctx, addrs[2]); err != nil {
		t.Fatalf("Switchover() = %v", err)
	}
	res, err := r.Exec(ctx, "INSERT INTO kv VALUES (1, 1)")
	if err != nil {
		t.Fatalf("Exec() after switchover = %v, want a retry on the new primary", err)
	}
	if res.Node != addrs[2] {
		t.Errorf("Exec() ran on %s, want the new primary %s", res.Node, addrs[2])
	}
	tx, node, err := r.Begin(ctx)
	if err != nil || node != addrs[2] {
		t.Fatalf("Begin() = %s, %v; want %s", node, err, addrs[2])
	}
	if _, err := tx.Exec("INSERT INTO kv VALUES (2, 2)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A replica that dies between refreshes: the read is retried on the
	// primary.
	old := addrs[0]
	if err := l.Kill(old); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		var n int
		if err := r.QueryRow(ctx, dbrouter.Token{}, "SELECT COUNT(*) FROM kv").Scan(&n); err != nil {
			t.Fatalf("read %d with a dead replica = %v", i, err)
		}
	}
}

// With the primary dead and no manager to promote a replica, reads still
// succeed from the replicas, which hold everything acknowledged.
func TestReadsSurviveNoPrimary(t *testing.T) {
	l, r := cluster(t, 100*time.Millisecond)
	ctx := context.Background()
	if _, err := r.Exec(ctx, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	res, err := r.Exec(ctx, "INSERT INTO kv VALUES (1, 1)")
	if err != nil {
		t.Fatal(err)
	}
	readNodes(t, r, res.Token, 1) // the write reached the replicas
	if err := l.Kill(l.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the router sees no primary
	if _, err := r.Primary(); err == nil {
		t.Fatalf("Primary() found one after the primary was killed")
	}
	for i := 0; i < 10; i++ {
		var n int
		if err := r.QueryRow(ctx, dbrouter.Token{}, "SELECT COUNT(*) FROM kv").Scan(&n); err != nil || n != 1 {
			t.Fatalf("read %d without a primary = %d, %v; want 1 row", i, n, err)
		}
	}
	// A token the replicas hold is honoured without a primary too.
	rows, err := r.Query(ctx, res.Token, "SELECT v FROM kv WHERE k = 1")
	if err != nil {
		t.Fatalf("read-your-writes without a primary = %v", err)
	}
	rows.Close()
}
