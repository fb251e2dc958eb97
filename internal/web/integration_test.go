package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/guestbook"
	"fulcrum/internal/testenv"
)

// startCluster starts a real MariaDB primary and replica (internal/dbha),
// which also creates the guestbook database and the application user as
// the cluster's admin, and stops them at cleanup.
func startCluster(t *testing.T) *dbha.Local {
	t.Helper()
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db")
	// A short directory: a unix socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "fulcrum-web-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: filepath.Join(dir, "db"), Nodes: 2,
		BasePort: testenv.FreeRange(t, 2), SemiSyncTimeout: 3 * time.Second})
	if l != nil {
		t.Cleanup(func() {
			if err := l.Stop(); err != nil {
				t.Errorf("stopping the cluster: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("StartLocal() = %v", err)
	}
	return l
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz = %d %q after 30s", resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("/healthz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGuestbookMariaDB runs two web servers on one real primary/replica
// cluster: each creates the schema (idempotently); a message posted through
// one is read back through the other, from the replica, at once.
func TestGuestbookMariaDB(t *testing.T) {
	cluster := startCluster(t)
	creds := cluster.Credentials()
	addrs := cluster.Addrs()
	primary, replica := addrs[0], addrs[1]
	newServer := func(name string) string {
		off := false
		s, err := New(&config.Web{Name: name, Listen: "127.0.0.1:0", App: "guestbook", AccessLog: &off,
			Database: &config.WebDatabase{Nodes: addrs, User: creds.AppUser, Password: creds.AppPassword,
				Name: creds.Database, CheckInterval: config.Duration(100 * time.Millisecond)}}, nil)
		if err != nil {
			t.Fatalf("New(%s) = %v", name, err)
		}
		addr, _ := serve(t, s)
		waitHealthy(t, addr)
		return addr
	}
	web1, web2 := newServer("web1"), newServer("web2")

	const rounds = 30
	fromReplica := 0
	for i := range rounds {
		body := fmt.Sprintf(`{"name":"visitor %d","message":"hello <b>%d</b>"}`, i, i)
		resp, err := http.Post("http://"+web1+"/api/messages", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var m guestbook.Message
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 201 || m.ID == 0 {
			t.Fatalf("POST #%d = %d %+v, want 201 with an id", i, resp.StatusCode, m)
		}
		if got := resp.Header.Get("X-DB-Node"); got != primary {
			t.Errorf("POST #%d X-DB-Node = %q, want the primary %s", i, got, primary)
		}
		token := resp.Header.Get("X-Read-After")
		if _, ok := guestbook.ParseToken(token); !ok {
			t.Fatalf("POST #%d X-Read-After = %q, want a GTID", i, token)
		}
		// Read at once through the other server: the write must be there.
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/api/messages/%d", web2, m.ID), nil)
		req.Header.Set("X-Read-After", token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got guestbook.Message
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got != m {
			t.Fatalf("GET /api/messages/%d on web2 right after the POST = %d %+v, want 200 %+v", m.ID, resp.StatusCode, got, m)
		}
		switch node := resp.Header.Get("X-DB-Node"); node {
		case replica:
			fromReplica++
		case primary: // the replica did not catch up within the wait
		default:
			t.Errorf("GET X-DB-Node = %q, want %s or %s", node, replica, primary)
		}
		if sb := resp.Header.Get("X-Served-By"); sb != "web2" {
			t.Errorf("GET X-Served-By = %q, want web2", sb)
		}
	}
	t.Logf("%d/%d read-your-writes reads answered by the replica", fromReplica, rounds)
	if fromReplica == 0 {
		t.Errorf("no read went to the replica %s", replica)
	}

	// The same Idempotency-Key through both servers stores one message.
	var ids []int64
	for _, web := range []string{web1, web2, web1} {
		req, _ := http.NewRequest("POST", "http://"+web+"/api/messages", strings.NewReader(`{"name":"once","message":"only once"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m guestbook.Message
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("POST with Idempotency-Key = %d, want 201", resp.StatusCode)
		}
		ids = append(ids, m.ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("ids for one Idempotency-Key = %v, want one id", ids)
	}

	// A browser: the form, the redirect and the cookie.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.PostForm("http://"+web2+"/", map[string][]string{"name": {"Zoë"}, "message": {"<script>x</script> from the form"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "&lt;script&gt;x&lt;/script&gt; from the form") || !strings.Contains(string(page), "Zoë") {
		t.Errorf("page after the form = %d, want 200 showing the escaped message", resp.StatusCode)
	}

	// Bad input stores nothing.
	count := func() int {
		resp, err := http.Get("http://" + web1 + "/api/messages?limit=50")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l struct{ Messages []guestbook.Message }
		json.NewDecoder(resp.Body).Decode(&l)
		return len(l.Messages)
	}
	before := count()
	resp, err = http.Post("http://"+web1+"/api/messages", "application/json", strings.NewReader(`{"name":"","message":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("POST with an empty name = %d, want 400", resp.StatusCode)
	}
	if after := count(); after != before {
		t.Errorf("messages: %d before a rejected POST, %d after", before, after)
	}
}
