package dbha

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

// startCluster starts a local cluster of n nodes, stopped at cleanup.
func startCluster(t testing.TB, n int) *Local {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with edit applied to the configuration.
func startClusterWith(t testing.TB, n int, edit func(*LocalConfig)) *Local {
	t.Helper()
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db", "mariadb-dump", "mariadb")
	dir, err := os.MkdirTemp("", "fulcrum-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := LocalConfig{Dir: filepath.Join(dir, "c"), Nodes: n, FreePorts: true, SemiSyncTimeout: 3 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	l, err := StartLocal(ctx, cfg)
	if l != nil {
		t.Cleanup(func() {
			if err := l.Stop(); err != nil {
				t.Errorf("Stop() = %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("StartLocal() = %v", err)
	}
	return l
}

func openAs(t testing.TB, addr, user, pass, db string) *sql.DB {
	t.Helper()
	// TLS when the server offers it: a TLS cluster refuses plain logins.
	d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=1s&tls=preferred", user, pass, addr, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func adminDB(t testing.TB, l *Local, name string) *sql.DB {
	t.Helper()
	n, err := l.node(name)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Credentials()
	return openAs(t, n.Addr, c.AdminUser, c.AdminPassword, "")
}

// testManager returns a manager on l with short intervals, running in the
// background until cleanup.
func testManager(t testing.TB, l *Local, edit func(*Config)) *Manager {
	t.Helper()
	cfg := l.ManagerConfig()
	cfg.Interval = 100 * time.Millisecond
	cfg.CheckTimeout = 500 * time.Millisecond
	cfg.FailoverCooldown = -1
	cfg.SemiSyncWait = 2 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); m.Close() })
	return m
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeStatus(s Status, name string) NodeStatus {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n
		}
	}
	return NodeStatus{}
}
