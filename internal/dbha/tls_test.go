package dbha

import (
	"context"
	"crypto/tls"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/edge"
)

// startTLSCluster starts a cluster whose nodes have certificates from a
// local CA made in a temporary directory.
func startTLSCluster(t *testing.T, n int) *Local {
	t.Helper()
	ca, issue, err := edge.LocalIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startClusterWith(t, n, func(c *LocalConfig) { c.TLS = &LocalTLS{CA: ca, Issue: issue} })
}

// sslCipher logs in to addr as the admin user with tc (nil: no TLS at all)
// and returns the session's Ssl_cipher.
func sslCipher(t *testing.T, l *Local, addr string, tc *tls.Config) (string, error) {
	t.Helper()
	c := l.Credentials()
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr, mc.Timeout = c.AdminUser, c.AdminPassword, "tcp", addr, 2*time.Second
	mc.TLS = tc
	mc.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var name, cipher string
	err = db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
	return cipher, err
}

// replicationOverTLS checks that every node but prim replicates from prim
// with TLS, verifying its certificate. The primary requires secure
// transport, so a running IO thread proves the encryption.
func replicationOverTLS(t *testing.T, l *Local, prim string) {
	t.Helper()
	p, _ := l.node(prim)
	for _, n := range l.Nodes() {
		if n.Name == prim {
			continue
		}
		var rs *ReplicaStatus
		waitFor(t, 20*time.Second, n.Name+" replicating from "+prim, func() bool {
			var err error
			rs, err = readReplica(context.Background(), adminDB(t, l, n.Name))
			return err == nil && rs != nil && rs.MasterAddr() == p.Addr && rs.Healthy()
		})
		if !rs.SSL || !rs.SSLVerify {
			t.Errorf("%s: Master_SSL_Allowed %v, Master_SSL_Verify_Server_Cert %v, want both Yes", n.Name, rs.SSL, rs.SSLVerify)
		}
	}
}

func TestTLSCluster(t *testing.T) {
	start := time.Now()
	l := startTLSCluster(t, 3)
	t.Logf("TLS cluster of 3 up in %v", time.Since(start).Round(time.Millisecond))
	prim := l.Nodes()[0]
	tc, err := l.ClientTLS()
	if err != nil || tc == nil {
		t.Fatalf("ClientTLS() = %v, %v", tc, err)
	}

	t.Run("replication over TLS", func(t *testing.T) {
		replicationOverTLS(t, l, prim.Name)
	})

	t.Run("logins", func(t *testing.T) {
		otherCA, err := edge.LocalCA(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		wrong, err := ClientTLS(otherCA, "")
		if err != nil {
			t.Fatal(err)
		}
		wrongName, err := ClientTLS(l.TLSCA(), "db.example")
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name    string
			tc      *tls.Config
			wantErr string // "" : a TLS session
		}{
			{"verified", tc, ""},
			// MariaDB 10.11 answers a plain login under
			// require_secure_transport with access denied; the same
			// user and password pass over TLS ("verified").
			{"plain", nil, "Access denied"},
			{"other CA", wrong, "certificate signed by unknown authority"},
			{"wrong name", wrongName, "db.example"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cipher, err := sslCipher(t, l, prim.Addr, tt.tc)
				switch {
				case tt.wantErr == "" && (err != nil || cipher == ""):
					t.Errorf("Ssl_cipher = %q, %v; want a cipher", cipher, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("login = %q, %v; want an error with %q", cipher, err, tt.wantErr)
				case err == nil:
					t.Logf("Ssl_cipher = %s", cipher)
				}
			})
		}
		// The unix socket counts as secure: the local root connections work.
		db, err := l.rootDB(prim)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var rst int
		if err := db.QueryRow("SELECT @@require_secure_transport").Scan(&rst); err != nil || rst != 1 {
			t.Errorf("root over the unix socket: @@require_secure_transport = %d, %v; want 1", rst, err)
		}
	})

	t.Run("manager without a CA", func(t *testing.T) {
		// Given no TLS settings the manager still reaches nodes that
		// require TLS: it encrypts whenever a node offers it.
		cfg := l.ManagerConfig()
		cfg.TLS = nil
		m, err := NewManager(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for _, n := range m.Check(context.Background()).Nodes {
			if !n.Reachable {
				t.Errorf("%s unreachable: %s", n.Name, n.Error)
			}
		}
	})

	t.Run("failover and rejoin over TLS", func(t *testing.T) {
		// No ReplicationCA, as in a db.yaml: the replicas' own ssl_ca
		// verifies their new primary.
		m := testManager(t, l, func(c *Config) { c.ReplicationCA = "" })
		waitFor(t, 10*time.Second, "the manager to find the primary", func() bool { return m.Status().Primary == prim.Name })
		var name, cipher string
		if err := m.dbs[prim.Name].QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
			t.Errorf("manager's connection: Ssl_cipher = %q, %v; want a cipher", cipher, err)
		}
		if err := l.Kill(prim.Name); err != nil {
			t.Fatal(err)
		}
		var newPrim string
		waitFor(t, 30*time.Second, "failover", func() bool {
			s := m.Status()
			newPrim = s.Primary
			return s.Failovers == 1 && newPrim != prim.Name
		})
		t.Logf("failover over TLS: %s promoted in %.0f ms", newPrim, m.Status().LastFailoverSeconds*1000)
		if err := l.StartNode(context.Background(), prim.Name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, prim.Name+" rejoined as a replica", func() bool {
			n := nodeStatus(m.Status(), prim.Name)
			return n.Role == "replica" && n.Replica != nil && n.Replica.Healthy()
		})
		replicationOverTLS(t, l, newPrim)
	})

	t.Run("restart keeps TLS", func(t *testing.T) {
		if err := l.Stop(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Opened without an issuer: the certificates on disk are used.
		l2, err := StartLocal(ctx, LocalConfig{Dir: l.Dir()})
		if err != nil {
			t.Fatalf("StartLocal(existing) = %v", err)
		}
		t.Cleanup(func() { _ = l2.Stop() })
		if _, err := sslCipher(t, l2, l2.Addrs()[0], nil); err == nil {
			t.Errorf("plain login after restart succeeded, want it refused")
		}
		p, err := l2.node(l2.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		replicationOverTLS(t, l2, p.Name)
	})
}

// TestTLSOnExistingCluster starts a cluster made without TLS again with
// TLS, as `fulcrum up` does in a state directory from before: the nodes
// then require TLS and the replicas attached in clear are attached again
// over TLS.
func TestTLSOnExistingCluster(t *testing.T) {
	l := startCluster(t, 2)
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	ca, issue, err := edge.LocalIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l2, err := StartLocal(ctx, LocalConfig{Dir: l.Dir(), TLS: &LocalTLS{CA: ca, Issue: issue}})
	if l2 != nil {
		t.Cleanup(func() { _ = l2.Stop() })
	}
	if err != nil {
		t.Fatalf("StartLocal(existing, with TLS) = %v", err)
	}
	if _, err := sslCipher(t, l2, l2.Addrs()[0], nil); err == nil {
		t.Errorf("plain login succeeded, want it refused")
	}
	p, err := l2.node(l2.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	replicationOverTLS(t, l2, p.Name)
}
