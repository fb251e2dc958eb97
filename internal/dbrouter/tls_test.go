package dbrouter_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fulcrum/internal/dbha"
	"fulcrum/internal/dbrouter"
	"fulcrum/internal/edge"
	"fulcrum/internal/testenv"
)

// TestTLS routes over a cluster that requires secure transport: with the
// cluster's CA every query runs on a TLS session, writes and reads alike;
// with another CA no node is reached.
func TestTLS(t *testing.T) {
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db")
	dir, err := os.MkdirTemp("", "fulcrum-dbrouter-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, issue, err := edge.LocalIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: filepath.Join(dir, "c"), Nodes: 2, FreePorts: true,
		TLS: &dbha.LocalTLS{CA: ca, Issue: issue}})
	if l != nil {
		t.Cleanup(func() { l.Stop() })
	}
	if err != nil {
		t.Fatalf("StartLocal() = %v", err)
	}
	c := l.Credentials()
	open := func(t *testing.T, caFile string) *dbrouter.Router {
		tc, err := dbha.ClientTLS(caFile, "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := dbrouter.Open(ctx, dbrouter.Config{Nodes: l.Addrs(), User: c.AppUser, Password: c.AppPassword,
			Database: c.Database, CheckInterval: 50 * time.Millisecond, TLS: tc})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}

	t.Run("verified", func(t *testing.T) {
		r := open(t, ca)
		res, err := r.Exec(ctx, "CREATE TABLE IF NOT EXISTS tls_t (id INT PRIMARY KEY)")
		if err != nil {
			t.Fatalf("Exec() = %v", err)
		}
		nodes := map[string]bool{}
		for i := 0; i < 6; i++ {
			rows, err := r.Query(ctx, res.Token, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
			if err != nil {
				t.Fatalf("Query() = %v", err)
			}
			var name, cipher string
			if !rows.Next() || rows.Scan(&name, &cipher) != nil || cipher == "" {
				t.Errorf("Ssl_cipher on %s = %q, want a cipher", rows.Node, cipher)
			}
			nodes[rows.Node+" "+cipher] = true
			rows.Close()
		}
		t.Logf("sessions: %v", nodes)
	})

	t.Run("other CA", func(t *testing.T) {
		other := filepath.Join(dir, "other")
		otherCA, err := edge.LocalCA(other)
		if err != nil {
			t.Fatal(err)
		}
		r := open(t, otherCA)
		if _, err := r.Exec(ctx, "SELECT 1"); !errors.Is(err, dbrouter.ErrNoPrimary) {
			t.Errorf("Exec() with another CA = %v, want ErrNoPrimary (no node verified)", err)
		}
	})
}
