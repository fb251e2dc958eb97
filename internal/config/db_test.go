package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePw(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDBDefaults(t *testing.T) {
	pw := writePw(t, "s3cret\n")
	y := "admin_user: adm\nadmin_password_file: " + pw + "\nrepl_user: repl\nrepl_password_file: " + pw +
		"\nnodes:\n  - address: 10.0.0.1:3306\n  - name: b\n    address: 10.0.0.2:3306\n    replication_address: 192.0.2.2:3306\n"
	c, err := ParseDB("db.yaml", []byte(y))
	if err != nil {
		t.Fatalf("ParseDB() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"admin", c.Admin, "127.0.0.1:9910"},
		{"interval", c.Interval.D(), time.Second},
		{"check_timeout", c.CheckTimeout.D(), time.Second},
		{"failover_cooldown", c.FailoverCooldown.D(), time.Hour},
		{"drain_timeout", c.DrainTimeout.D(), 30 * time.Second},
		{"nodes[0].name", c.Nodes[0].Name, "db1"},
		{"nodes[0].replication_address", c.Nodes[0].ReplicationAddress, "10.0.0.1:3306"},
		{"nodes[1].replication_address", c.Nodes[1].ReplicationAddress, "192.0.2.2:3306"},
		{"admin password", c.AdminPassword(), "s3cret"},
		{"auto_rejoin", c.AutoRejoin, false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseDBErrors(t *testing.T) {
	pw := writePw(t, "x")
	base := "admin_user: adm\nadmin_password_file: " + pw + "\nrepl_user: repl\nrepl_password_file: " + pw + "\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"no nodes", base, "db.yaml: nodes: at least one node is required"},
		{"bad address", base + "nodes:\n  - address: nope\n", "db.yaml:6: nodes[0].address: \"nope\": want host:port"},
		{"duplicate name", base + "nodes:\n  - {name: a, address: 1.2.3.4:1}\n  - {name: a, address: 1.2.3.5:1}\n", "db.yaml:7: nodes[1].name: duplicate node name \"a\""},
		{"unknown key", base + "nodez: []\n", "unknown key"},
		{"missing password file", "admin_user: a\nadmin_password_file: /nonexistent/pw\nrepl_user: r\nrepl_password_file: " + pw + "\nnodes: [{address: 1.2.3.4:1}]\n", "db.yaml:2: admin_password_file: \"/nonexistent/pw\""},
		{"tiny interval", base + "interval: 1ms\nnodes: [{address: 1.2.3.4:1}]\n", "db.yaml:5: interval: 1ms: must be at least 50ms"},
		{"no users", "nodes: [{address: 1.2.3.4:1}]\n", "admin_user: a user is required"},
		{"public admin", base + "admin: 0.0.0.0:9910\nnodes: [{address: 1.2.3.4:1}]\n", "db.yaml:5: admin: \"0.0.0.0:9910\" is not a loopback address: admin_token_file is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDB("db.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseDB() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParseDB checks that whatever ParseDB accepts is usable by the
// manager: nodes with unique names and valid addresses, positive timeouts.
func FuzzParseDB(f *testing.F) {
	pw := filepath.Join(f.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	base := "admin_user: a\nadmin_password_file: " + pw + "\nrepl_user: r\nrepl_password_file: " + pw + "\n"
	f.Add([]byte(base + "nodes: [{address: 127.0.0.1:3306}, {name: b, address: \"[::1]:3307\"}]\n"))
	f.Add([]byte(base + "nodes: [{address: h:1, replication_address: 192.0.2.1:1}]\ninterval: 100ms\nfailover_cooldown: -1s\n"))
	f.Add([]byte(base + "nodes: [{name: a, address: h:1}, {name: a, address: h:2}]\n"))
	f.Add([]byte(base + "hooks: {on_failover: [\"\"]}\nnodes: [{address: h:1}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseDB("db.yaml", data)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, n := range c.Nodes {
			if n.Name == "" || names[n.Name] {
				t.Fatalf("ParseDB accepted node name %q (empty or repeated)", n.Name)
			}
			names[n.Name] = true
			if _, err := ParseHostPort(n.Address); err != nil {
				t.Fatalf("ParseDB accepted address %q: %v", n.Address, err)
			}
		}
		if len(c.Nodes) == 0 || c.Interval.D() < 50*time.Millisecond || c.CheckTimeout.D() <= 0 {
			t.Fatalf("ParseDB accepted %d nodes, interval %v, check_timeout %v", len(c.Nodes), c.Interval.D(), c.CheckTimeout.D())
		}
	})
}
