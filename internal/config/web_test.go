package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const webFull = `name: web1
listen: 127.0.0.1:9101
admin: 127.0.0.1:9111
grace: 3s
static: {root: ./site, cache_control: "public, max-age=60"}
app: guestbook
upstreams:
  - {path_prefix: /legacy, url: "http://127.0.0.1:9201"}
database:
  nodes: [127.0.0.1:13306, 127.0.0.1:13307]
  user: app
  password_file: app.password
  name: guestbook
  max_lag: 2s
`

func TestLoadWeb(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(path, []byte(webFull), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWeb(path)
	if err != nil {
		t.Fatalf("LoadWeb() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", c.Name, "web1"},
		{"grace", c.Grace.D(), 3 * time.Second},
		{"static.root", c.Static.Root, filepath.Join(dir, "site")},
		{"static.gzip", c.Static.GzipOn(), true},
		{"access_log", c.AccessLogOn(), true},
		{"upstreams[0].timeout", c.Upstreams[0].Timeout.D(), 30 * time.Second},
		{"database.password_file", c.Database.PasswordFile, filepath.Join(dir, "app.password")},
		{"database.max_lag", c.Database.MaxLag.D(), 2 * time.Second},
		{"database.check_interval", c.Database.CheckInterval.D(), time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseWebDefaults(t *testing.T) {
	c, err := ParseWeb("web.yaml", []byte("name: w\nlisten: :9101\nstatic: {root: /srv}\n"))
	if err != nil {
		t.Fatalf("ParseWeb() = %v", err)
	}
	if c.Grace.D() != 10*time.Second {
		t.Errorf("grace = %v, want 10s", c.Grace.D())
	}
	if c.Static.CacheControl != "public, max-age=60" {
		t.Errorf("static.cache_control = %q, want the default", c.Static.CacheControl)
	}
	if c.Database != nil {
		t.Errorf("database = %+v, want nil", c.Database)
	}
}

func TestParseWebErrors(t *testing.T) {
	base := "name: web1\nlisten: 127.0.0.1:9101\n"
	db := "database: {nodes: [127.0.0.1:13306], user: app, name: guestbook}\n"
	tests := []struct {
		name, yaml string
		want       string // a substring of the error
	}{
		{"empty", "", "web.yaml: empty file"},
		{"unknown key", base + "static: {root: /s}\nstatc: 1\n", "web.yaml:4: statc: unknown key"},
		{"password inline", base + "app: guestbook\ndatabase: {nodes: [a:1], user: u, name: n, password: x}\n", "password: unknown key"},
		{"no name", "listen: :1\nstatic: {root: /s}\n", "name: a name is required"},
		{"bad name", "name: 'web 1'\nlisten: :1\nstatic: {root: /s}\n", `web.yaml:1: name: "web 1"`},
		{"no listen", "name: w\nstatic: {root: /s}\n", "listen: a host:port address is required"},
		{"bad listen", "name: w\nlisten: 127.0.0.1\nstatic: {root: /s}\n", `web.yaml:2: listen: "127.0.0.1": want host:port`},
		{"bad port", "name: w\nlisten: :70000\nstatic: {root: /s}\n", "must be 1..65535"},
		{"nothing to serve", base, "nothing to serve"},
		{"static no root", base + "static: {cache_control: x}\n", "static.root: a directory is required"},
		{"bad admin", base + "static: {root: /s}\nadmin: nope\n", `admin: "nope": want host:port`},
		{"admin on listen", base + "static: {root: /s}\nadmin: 127.0.0.1:9101\n", "must differ from listen"},
		{"unknown app", base + "app: wiki\n", `app: "wiki": unknown application`},
		{"guestbook without db", base + "app: guestbook\n", "guestbook needs a database section"},
		{"prefix without slash", base + "upstreams: [{path_prefix: legacy, url: 'http://a:1'}]\n", `upstreams[0].path_prefix: "legacy": must start with /`},
		{"prefix healthz", base + "upstreams: [{path_prefix: /healthz, url: 'http://a:1'}]\n", "belongs to the server"},
		{"prefix dup", base + "upstreams: [{path_prefix: /a, url: 'http://a:1'}, {path_prefix: /a/, url: 'http://a:2'}]\n", `upstreams[1].path_prefix: "/a/": duplicate prefix`},
		{"url scheme", base + "upstreams: [{path_prefix: /a, url: 'ftp://a:1'}]\n", "want an absolute http:// or https:// URL"},
		{"url relative", base + "upstreams: [{path_prefix: /a, url: '/x'}]\n", "want an absolute"},
		{"url query", base + "upstreams: [{path_prefix: /a, url: 'http://a:1/?q=1'}]\n", "must not carry a query"},
		{"bad timeout", base + "upstreams: [{path_prefix: /a, url: 'http://a:1', timeout: -1s}]\n", "upstreams[0].timeout: -1s: must be positive"},
		{"bad duration", base + "grace: soon\n", `invalid duration "soon"`},
		{"negative drain", base + "static: {root: /s}\ndrain: -1s\n", "drain: -1s: must not be negative"},
		{"db no nodes", base + "app: guestbook\ndatabase: {user: u, name: n}\n", "database.nodes: at least one node is required"},
		{"db bad node", base + "app: guestbook\ndatabase: {nodes: [x], user: u, name: n}\n", `database.nodes[0]: "x": want host:port`},
		{"db dup node", base + "app: guestbook\ndatabase: {nodes: ['a:1', 'a:1'], user: u, name: n}\n", `database.nodes[1]: "a:1": duplicate node`},
		{"db no user", base + "app: guestbook\ndatabase: {nodes: ['a:1'], name: n}\n", "database.user: a user is required"},
		{"db bad name", base + "app: guestbook\ndatabase: {nodes: ['a:1'], user: u, name: 'x; DROP'}\n", `database.name: "x; DROP"`},
		{"db lag", base + "app: guestbook\n" + strings.TrimSuffix(db, "}\n") + ", max_lag: -2s}\n", "database.max_lag: -2s: must be positive"},
		{"wrong type", base + "static: [1]\n", "wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWeb("web.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseWeb() = nil error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseWeb() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestWebCheck(t *testing.T) {
	c := Web{Name: "web1", Listen: "127.0.0.1:0", App: "guestbook",
		Database: &WebDatabase{Nodes: []string{"127.0.0.1:13306"}, User: "app", Name: "guestbook", Password: "pw"}}
	if err := c.Check("stack"); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if c.Database.MaxLag.D() != 5*time.Second {
		t.Errorf("database.max_lag = %v, want the default 5s", c.Database.MaxLag.D())
	}
	c.Name = ""
	if err := c.Check("stack"); err == nil || !strings.Contains(err.Error(), "stack: name: a name is required") {
		t.Errorf("Check() = %v, want a missing name error", err)
	}
}
