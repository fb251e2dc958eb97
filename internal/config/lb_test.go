package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issueExample is the configuration every user is promised works as written.
const issueExample = `admin: 127.0.0.1:9900            # runtime API, stats and /metrics
frontends:
  - name: www
    mode: http                   # http | tcp
    bind: ["127.0.0.1:8080"]
    default_backend: web
backends:
  - name: web
    mode: http
    balance: roundrobin
    health: {type: http, path: /healthz, interval: 2s, rise: 2, fall: 3}
    retries: 3
    redispatch: true
    servers:
      - {name: web1, address: 127.0.0.1:9101, weight: 3}
      - {name: web2, address: 127.0.0.1:9102, weight: 1}
`

func TestLoadLBExample(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(issueExample))
	if err != nil {
		t.Fatalf("ParseLB: %v", err)
	}
	b := c.Backends[0]
	if got := *b.Servers[0].Weight; got != 3 {
		t.Errorf("web1 weight = %d, want 3", got)
	}
	if b.Health.Timeout.D() != 2*time.Second {
		t.Errorf("health timeout = %v, want the interval 2s", b.Health.Timeout.D())
	}
	if b.Health.Method != "OPTIONS" || b.Health.Expect != "200-399" {
		t.Errorf("http check defaults = %s %s, want OPTIONS 200-399", b.Health.Method, b.Health.Expect)
	}
	if !b.Redispatch || *b.Retries != 3 {
		t.Errorf("retries/redispatch = %d/%v, want 3/true", *b.Retries, b.Redispatch)
	}
	if c.Frontends[0].TimeoutClient.D() != 60*time.Second {
		t.Errorf("timeout_client default = %v, want 60s", c.Frontends[0].TimeoutClient.D())
	}
}

func TestLoadLBDefaults(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(`
frontends: [{name: f, bind: ["127.0.0.1:1"], default_backend: b}]
backends: [{name: b, servers: [{name: s, address: "127.0.0.1:2"}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Backends[0]
	if b.Mode != "http" || b.Balance != "roundrobin" || *b.Retries != 3 || *b.Servers[0].Weight != 1 {
		t.Errorf("defaults = mode %s balance %s retries %d weight %d, want http roundrobin 3 1",
			b.Mode, b.Balance, *b.Retries, *b.Servers[0].Weight)
	}
}

// Each invalid file must name the file, the line and the key, and echo the value.
func TestLoadLBErrors(t *testing.T) {
	base := func(backend string) string {
		return "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\nbackends:\n" + backend
	}
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown key", base("  - name: web\n    colour: blue\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"),
			[]string{"lb.yaml:7:", "colour", "unknown key"}},
		{"wrong type", base("  - name: web\n    retries: many\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"),
			[]string{"lb.yaml:7:", "many"}},
		{"missing backend", "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: nope\nbackends:\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n",
			[]string{"lb.yaml:4:", "frontends[0].default_backend", `"nope"`, "no such backend"}},
		{"duplicate server", base("  - name: web\n    servers:\n      - {name: s, address: \"127.0.0.1:1\"}\n      - {name: s, address: \"127.0.0.1:2\"}\n"),
			[]string{"lb.yaml:9:", "backends[0].servers[1].name", `duplicate server name "s"`}},
		{"duplicate backend", base("  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"),
			[]string{"lb.yaml:8:", "backends[1].name", "duplicate backend"}},
		{"weight", base("  - name: web\n    servers:\n      - name: s\n        address: 127.0.0.1:1\n        weight: 300\n"),
			[]string{"lb.yaml:10:", "backends[0].servers[0].weight", "300", "0..256"}},
		{"bad port", base("  - name: web\n    servers: [{name: s, address: \"127.0.0.1:99999\"}]\n"),
			[]string{"lb.yaml:7:", "address", "127.0.0.1:99999", "port"}},
		{"no port", base("  - name: web\n    servers: [{name: s, address: \"localhost\"}]\n"),
			[]string{"lb.yaml:7:", "address", "localhost"}},
		{"bad algorithm", base("  - name: web\n    balance: fastest\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"),
			[]string{"lb.yaml:7:", "backends[0].balance", "fastest", "unknown algorithm"}},
		{"bad duration", base("  - name: web\n    health: {type: tcp, interval: soon}\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"),
			[]string{"lb.yaml:7:", "soon", "duration"}},
		{"mode mismatch", "frontends:\n  - name: www\n    mode: tcp\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\nbackends:\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n",
			[]string{"lb.yaml:5:", "mode http does not match"}},
		{"bad bind", "frontends:\n  - name: www\n    bind: [\"127.0.0.1\"]\n    default_backend: web\nbackends:\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n",
			[]string{"lb.yaml:3:", "frontends[0].bind[0]", `"127.0.0.1"`}},
		{"empty", "", []string{"lb.yaml", "empty"}},
		{"not yaml", "frontends: [", []string{"lb.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLB("lb.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseLB() = nil error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseLB() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadLBFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lb.yaml")
	if err := os.WriteFile(p, []byte(issueExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLB(p); err != nil {
		t.Fatalf("LoadLB(%s) = %v", p, err)
	}
	if _, err := LoadLB(p + ".missing"); err == nil {
		t.Fatal("LoadLB(missing file) = nil error")
	}
}

func FuzzParseLB(f *testing.F) {
	f.Add([]byte(issueExample))
	f.Add([]byte("frontends: [{name: f, bind: [\":1\"], default_backend: b}]\nbackends: [{name: b, servers: [{name: s, address: \"h:1\"}]}]"))
	f.Add([]byte("backends: [{servers: [{weight: -1}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseLB("f.yaml", data)
		if err == nil && (len(c.Frontends) == 0 || len(c.Backends) == 0) {
			t.Fatalf("ParseLB accepted a file without frontends or backends")
		}
	})
}

func TestAdminOffLoopbackNeedsToken(t *testing.T) {
	base := "frontends: [{name: f, bind: [\"127.0.0.1:1\"], default_backend: b}]\nbackends: [{name: b, servers: [{name: s, address: \"127.0.0.1:2\"}]}]\n"
	for _, tt := range []struct {
		admin string
		ok    bool
	}{
		{"admin: 127.0.0.1:9900\n", true},
		{"admin: \"[::1]:9900\"\n", true},
		{"admin: localhost:9900\n", true},
		{"admin: 0.0.0.0:9900\n", false},
		{"admin: 192.0.2.1:9900\n", false},
		{"admin: 192.0.2.1:9900\nadmin_token_file: /etc/fulcrum/token\n", true},
	} {
		_, err := ParseLB("lb.yaml", []byte(tt.admin+base))
		if (err == nil) != tt.ok {
			t.Errorf("%q: error = %v, want ok=%v", tt.admin, err, tt.ok)
		}
	}
}
