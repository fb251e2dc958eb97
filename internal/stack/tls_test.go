package stack

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/testenv"
)

// TestMain removes the build of the fulcrum binary the stack runs.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuild()
	os.Exit(code)
}

// runStack runs a whole stack (one replica) on free loopback ports until
// the test ends.
func runStack(t *testing.T) *Stack {
	t.Helper()
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db")
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	// A short directory: the nodes' unix sockets live under it.
	dir, err := os.MkdirTemp("", "fulcrum-stack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &config.Stack{Front: testenv.FreeAddr(t, "tcp"), FrontTLS: testenv.FreeAddr(t, "tcp"), Dashboard: testenv.FreeAddr(t, "tcp"), Replicas: 1,
		LBs: []config.StackLB{{Name: "lb1", Admin: testenv.FreeAddr(t, "tcp"), VRRPListen: testenv.FreeAddr(t, "udp")},
			{Name: "lb2", Admin: testenv.FreeAddr(t, "tcp"), VRRPListen: testenv.FreeAddr(t, "udp")}},
		Webs: []config.StackWeb{{Name: "web1", Listen: testenv.FreeAddr(t, "tcp"), Admin: testenv.FreeAddr(t, "tcp")},
			{Name: "web2", Listen: testenv.FreeAddr(t, "tcp"), Admin: testenv.FreeAddr(t, "tcp")}},
		DB: config.StackDB{BasePort: testenv.FreeRange(t, 2), Writes: testenv.FreeAddr(t, "tcp"), Reads: testenv.FreeAddr(t, "tcp"), Manager: testenv.FreeAddr(t, "tcp")}}
	if err := c.Check("test stack"); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Dir: filepath.Join(dir, "s"), Config: c, Exe: bin, Fresh: true, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := s.State()
		up := st.FrontUp && st.Primary != "" && len(st.Webs) == 2
		for _, w := range st.Webs {
			up = up && w.Healthy
		}
		for _, l := range st.LBs {
			if !l.Active {
				continue
			}
			for _, srv := range l.Servers {
				up = up && (srv.State == "UP" || srv.Backend == "db-primary" || srv.Backend == "db-replicas")
			}
		}
		if up {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run() = %v before the stack was up", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack not up after 90s: %+v (logs in %s)", st, filepath.Join(s.Dir(), "logs"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

// TestStackEncryptsEveryHop starts a whole stack and checks every hop
// behind the HTTPS front: the database nodes refuse logins without TLS
// (so the web servers', the manager's and the load balancers' sessions,
// which work, are encrypted), replication runs over verified TLS, the
// load balancers' database ports lead to nodes that need TLS, and the
// web servers speak HTTPS only.
func TestStackEncryptsEveryHop(t *testing.T) {
	s := runStack(t)
	l, err := dbha.OpenLocal(filepath.Join(s.Dir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := l.ClientTLS()
	if err != nil || tc == nil {
		t.Fatalf("ClientTLS() = %v, %v; want the cluster's CA", tc, err)
	}
	creds := l.Credentials()
	open := func(addr string, tc *tls.Config) *sql.DB {
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr, mc.Timeout = creds.AdminUser, creds.AdminPassword, "tcp", addr, 2*time.Second
		mc.TLS, mc.Logger = tc, &mysql.NopLogger{}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		t.Cleanup(func() { db.Close() })
		return db
	}
	prim := l.Addrs()[0]

	t.Run("database nodes", func(t *testing.T) {
		for _, n := range l.Nodes() {
			if err := open(n.Addr, nil).Ping(); err == nil || !strings.Contains(err.Error(), "Access denied") {
				t.Errorf("%s: plain login = %v, want it refused", n.Name, err)
			}
			db := open(n.Addr, tc)
			var rst int
			var name, cipher string
			if err := db.QueryRow("SELECT @@require_secure_transport").Scan(&rst); err != nil || rst != 1 {
				t.Errorf("%s: @@require_secure_transport = %d, %v; want 1", n.Name, rst, err)
			}
			if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
				t.Errorf("%s: Ssl_cipher = %q, %v", n.Name, cipher, err)
			}
			if n.Addr == prim {
				continue
			}
			rs, err := replicaStatus(db)
			if err != nil {
				t.Fatalf("%s: SHOW SLAVE STATUS: %v", n.Name, err)
			}
			masterHost, ssl, verify, io := rs["Master_Host"], rs["Master_SSL_Allowed"], rs["Master_SSL_Verify_Server_Cert"], rs["Slave_IO_Running"]
			if ssl != "Yes" || verify != "Yes" || io != "Yes" {
				t.Errorf("%s replicating from %s: Master_SSL_Allowed %s, Master_SSL_Verify_Server_Cert %s, Slave_IO_Running %s; want Yes, Yes, Yes",
					n.Name, masterHost, ssl, verify, io)
			}
		}
	})

	t.Run("sessions of the web servers, manager and load balancers", func(t *testing.T) {
		// The primary refuses sessions without TLS: every TCP session of
		// the application and admin users on it is encrypted.
		rows, err := open(prim, tc).Query("SELECT USER, COUNT(*) FROM information_schema.PROCESSLIST WHERE HOST LIKE '%:%' GROUP BY USER")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		users := map[string]int{}
		for rows.Next() {
			var u string
			var n int
			if err := rows.Scan(&u, &n); err != nil {
				t.Fatal(err)
			}
			users[u] = n
		}
		if users[creds.AppUser] == 0 || users[creds.AdminUser] < 2 {
			t.Errorf("TCP sessions on the primary by user = %v; want the application's (web servers, LB checks) and the manager's besides ours", users)
		}
		t.Logf("encrypted TCP sessions on the primary, by user: %v", users)
	})

	t.Run("load balancer database port", func(t *testing.T) {
		// The writes port leads to the primary once an LB's mysql check
		// (which logs in, over TLS) has passed; the client's own session
		// goes through the LB in TCP mode, TLS end to end.
		c := tc.Clone()
		c.ServerName, _, _ = net.SplitHostPort(prim)
		var ro int
		var name, cipher string
		db := open(s.cfg.DB.Writes, c)
		if err := db.QueryRow("SELECT @@read_only").Scan(&ro); err != nil || ro != 0 {
			t.Errorf("through %s: @@read_only = %d, %v; want the writable primary", s.cfg.DB.Writes, ro, err)
		}
		if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
			t.Errorf("through %s: Ssl_cipher = %q, %v", s.cfg.DB.Writes, cipher, err)
		}
		if err := open(s.cfg.DB.Writes, nil).Ping(); err == nil {
			t.Errorf("through %s: a plain login succeeded, want it refused", s.cfg.DB.Writes)
		}
	})

	t.Run("load balancer to web servers", func(t *testing.T) {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.Clone()}}
		for _, w := range s.cfg.Webs {
			resp, err := client.Get("https://" + w.Listen + "/healthz")
			if err != nil {
				t.Errorf("%s over HTTPS: %v", w.Name, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s over HTTPS: /healthz = %d, want 200", w.Name, resp.StatusCode)
			}
			plain := &http.Client{Timeout: 2 * time.Second}
			if resp, err := plain.Get("http://" + w.Listen + "/healthz"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Errorf("%s over plain HTTP: /healthz = %d %q, want no page", w.Name, resp.StatusCode, b)
				}
			}
		}
		// Through the front: the load balancers reach them over TLS.
		resp, err := client.Get("http://" + s.cfg.Front + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") == "" {
			t.Errorf("front /healthz = %d served by %q, want 200 from a web server", resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	})
}

// replicaStatus returns the row of SHOW SLAVE STATUS by column.
func replicaStatus(db *sql.DB) (map[string]string, error) {
	rows, err := db.Query("SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, fmt.Errorf("no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, rows.Err()
}
