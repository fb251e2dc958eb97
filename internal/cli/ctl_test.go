package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/admin"
	"fulcrum/internal/config"
	"fulcrum/internal/lb"
	"fulcrum/internal/testenv"
)

const ctlTestConfig = `
admin: 127.0.0.1:9900
frontends:
  - name: www
    bind: ["127.0.0.1:0"]
    default_backend: web
backends:
  - name: web
    health: {type: tcp, interval: 1h}
    servers:
      - {name: web1, address: "127.0.0.1:9101", weight: 100}
      - {name: web2, address: "127.0.0.1:9102", weight: 100}
  - name: static
    servers:
      - {name: s1, address: "127.0.0.1:9201"}
`

// ctlTarget is a load balancer (built, not started) behind an admin
// endpoint, and how ctl reaches it.
type ctlTarget struct {
	lb      *lb.LB
	url     string
	reloads int
}

func newCtlTarget(t *testing.T, mod func(*admin.Options)) *ctlTarget {
	t.Helper()
	cfg, err := config.ParseLB("lb.yaml", []byte(ctlTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	l, err := lb.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	tg := &ctlTarget{lb: l}
	opts := admin.Options{LB: l, Addr: "127.0.0.1:9900", Reload: func() error { tg.reloads++; return nil }}
	if mod != nil {
		mod(&opts)
	}
	srv := httptest.NewServer(admin.New(opts))
	t.Cleanup(srv.Close)
	tg.url = srv.URL
	return tg
}

func (tg *ctlTarget) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCtl(context.Background(), env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb},
		append([]string{"--admin", tg.url}, args...))
	return code, out.String(), errb.String()
}

func (tg *ctlTarget) server(t *testing.T, backend, server string) lb.ServerStatus {
	t.Helper()
	for _, b := range tg.lb.Status().Backends {
		for _, s := range b.Servers {
			if b.Name == backend && s.Name == server {
				return s
			}
		}
	}
	t.Fatalf("no server %s/%s", backend, server)
	return lb.ServerStatus{}
}

func TestCtl(t *testing.T) {
	tests := []struct {
		name      string
		before    [][]string // commands run first, each must succeed
		args      []string
		wantCode  int
		wantOut   []string
		wantErr   string
		check     func(t *testing.T, tg *ctlTarget)
		unchanged bool // the load balancer must be as before
	}{
		{name: "servers", args: []string{"servers"}, wantOut: []string{"SERVER", "STATE", "web/web1", "127.0.0.1:9101", "static/s1", "UP"}},
		{name: "backends", args: []string{"backends"}, wantOut: []string{"NAME", "BALANCE", "web", "roundrobin", "2/2"}},
		{name: "frontends", args: []string{"frontends"}, wantOut: []string{"www", "127.0.0.1:0"}},
		{name: "flags after the command", args: []string{"servers", "-o", "json"}, wantOut: []string{`"backend": "web"`}},
		{name: "set weight", args: []string{"set-weight", "web/web1", "50"}, wantOut: []string{"web/web1: UP, weight 50 (configured 100)"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web1", "weight", 50, tg.server(t, "web", "web1").Weight)
			}},
		{name: "set weight percent", args: []string{"set-weight", "web/web1", "25%"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web1", "weight", 25, tg.server(t, "web", "web1").Weight)
			}},
		{name: "set weight json", args: []string{"-o", "json", "set-weight", "web/web2", "0"}, wantOut: []string{`"weight": 0`, `"config_weight": 100`}},
		{name: "weight too big", args: []string{"set-weight", "web/web1", "300"}, wantCode: 1, wantErr: "weight 300: must be 0..256", unchanged: true},
		{name: "weight not a number", args: []string{"set-weight", "web/web1", "heavy"}, wantCode: 1, wantErr: `weight "heavy"`, unchanged: true},
		{name: "negative percentage", args: []string{"set-weight", "web/web1", "-5%"}, wantCode: 1, wantErr: "must not be negative", unchanged: true},
		{name: "unknown server", args: []string{"set-weight", "web/nope", "5"}, wantCode: 1, wantErr: `backend "web": server "nope": not found`, unchanged: true},
		{name: "unknown backend", args: []string{"drain", "nope/web1"}, wantCode: 1, wantErr: `backend "nope": not found`, unchanged: true},
		{name: "drain", args: []string{"drain", "web/web1"}, wantOut: []string{"web/web1: DRAIN"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web1", "state", "DRAIN", tg.server(t, "web", "web1").State)
			}},
		{name: "maint", args: []string{"maint", "web/web1"}, wantOut: []string{"web/web1: MAINT"}},
		{name: "ready again", before: [][]string{{"maint", "web/web1"}}, args: []string{"ready", "web/web1"}, wantOut: []string{"web/web1: UP"}},
		{name: "disable checks", args: []string{"disable-checks", "web/web1"}, wantOut: []string{"checks off"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web1", "checks enabled", false, tg.server(t, "web", "web1").Check.Enabled)
			}},
		{name: "enable checks", before: [][]string{{"disable-checks", "web/web1"}}, args: []string{"enable-checks", "web/web1"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web1", "checks enabled", true, tg.server(t, "web", "web1").Check.Enabled)
			}},
		{name: "checks of a server without", args: []string{"disable-checks", "static/s1"}, wantCode: 1, wantErr: "has no health checks", unchanged: true},
		{name: "force down", args: []string{"health", "web/web2", "down"}, wantOut: []string{"web/web2: DOWN"}},
		{name: "force up", before: [][]string{{"health", "web/web2", "down"}}, args: []string{"health", "web/web2", "up"}, wantOut: []string{"web/web2: UP"}},
		{name: "health sideways", args: []string{"health", "web/web2", "sideways"}, wantCode: 2, wantErr: "want up or down", unchanged: true},
		{name: "add server", args: []string{"add-server", "web/web3", "127.0.0.1:9103", "--weight", "5"}, wantOut: []string{"web/web3: MAINT, weight 5"},
			check: func(t *testing.T, tg *ctlTarget) {
				wantServer(t, tg, "web/web3", "address", "127.0.0.1:9103", tg.server(t, "web", "web3").Address)
			}},
		{name: "add server, flag first", args: []string{"--weight", "7", "add-server", "web/web3", "127.0.0.1:9103"}, wantOut: []string{"weight 7"}},
		{name: "add existing server", args: []string{"add-server", "web/web1", "127.0.0.1:9103"}, wantCode: 1, wantErr: "already exists", unchanged: true},
		{name: "add bad weight", args: []string{"add-server", "web/web3", "127.0.0.1:9103", "--weight", "999"}, wantCode: 1, wantErr: "must be 0..256", unchanged: true},
		{name: "add bad address", args: []string{"add-server", "web/web3", "nowhere"}, wantCode: 1, wantErr: `address "nowhere"`, unchanged: true},
		{name: "delete ready server", args: []string{"del-server", "web/web1"}, wantCode: 1, wantErr: "put it in maint first", unchanged: true},
		{name: "delete in maint", before: [][]string{{"maint", "web/web2"}}, args: []string{"del-server", "web/web2"}, wantOut: []string{"web/web2: deleted"},
			check: func(t *testing.T, tg *ctlTarget) {
				if n := len(tg.lb.Status().Backends[0].Servers); n != 1 {
					t.Errorf("servers in web after del-server = %d, want 1", n)
				}
			}},
		{name: "reload", args: []string{"reload"}, wantOut: []string{"reloaded"},
			check: func(t *testing.T, tg *ctlTarget) { wantServer(t, tg, "lb", "reloads", 1, tg.reloads) }},
		{name: "no command", args: []string{}, wantCode: 2, wantErr: "a command is required"},
		{name: "unknown command", args: []string{"explode"}, wantCode: 2, wantErr: `unknown command "explode"`},
		{name: "missing argument", args: []string{"set-weight", "web/web1"}, wantCode: 2, wantErr: "set-weight takes 2 argument(s), got 1"},
		{name: "no slash", args: []string{"drain", "web1"}, wantCode: 2, wantErr: `"web1": want BACKEND/SERVER`, unchanged: true},
		{name: "bad output", args: []string{"-o", "yaml", "servers"}, wantCode: 2, wantErr: "want table or json"},
		{name: "weight flag elsewhere", args: []string{"drain", "web/web1", "--weight", "3"}, wantCode: 2, wantErr: "only for add-server", unchanged: true},
		{name: "help", args: []string{"--help"}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newCtlTarget(t, nil)
			for _, b := range tt.before {
				if code, _, errs := tg.run(t, b...); code != 0 {
					t.Fatalf("ctl %v = %d (%s), want 0", b, code, errs)
				}
			}
			before := snapshot(t, tg.lb)
			code, out, errs := tg.run(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("ctl %v = %d, want %d; stdout %q stderr %q", tt.args, code, tt.wantCode, out, errs)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("ctl %v stdout lacks %q:\n%s", tt.args, w, out)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errs, tt.wantErr) {
				t.Errorf("ctl %v stderr = %q, want it to say %q", tt.args, errs, tt.wantErr)
			}
			if tt.unchanged {
				if after := snapshot(t, tg.lb); after != before {
					t.Errorf("ctl %v changed the load balancer:\nbefore %s\nafter  %s", tt.args, before, after)
				}
			}
			if tt.check != nil {
				tt.check(t, tg)
			}
		})
	}
}

func wantServer[T comparable](t *testing.T, tg *ctlTarget, who, what string, want, got T) {
	t.Helper()
	if got != want {
		t.Errorf("%s %s = %v, want %v", who, what, got, want)
	}
}

func snapshot(t *testing.T, l *lb.LB) string {
	t.Helper()
	b, err := json.Marshal(l.Status())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCtlJSON(t *testing.T) {
	tg := newCtlTarget(t, nil)
	for _, what := range []string{"servers", "backends", "frontends"} {
		code, out, errs := tg.run(t, "-o", "json", what)
		if code != 0 {
			t.Fatalf("ctl -o json %s = %d: %s", what, code, errs)
		}
		var v []map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) == 0 {
			t.Errorf("ctl -o json %s: want a JSON array, got %q (%v)", what, out, err)
		}
	}
}

func TestCtlToken(t *testing.T) {
	const token = "0123456789abcdef"
	tg := newCtlTarget(t, func(o *admin.Options) { o.Addr = "192.0.2.1:9901"; o.Token = token })
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no token", []string{"servers"}, 1, "bearer token is required"},
		{"wrong token", []string{"--token-file", wrong, "drain", "web/web1"}, 1, "bearer token is required"},
		{"missing token file", []string{"--token-file", filepath.Join(t.TempDir(), "absent"), "servers"}, 1, "no such file"},
		{"right token", []string{"--token-file", file, "servers"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := tg.run(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("ctl %v = %d %q, want %d with %q", tt.args, code, errs, tt.wantCode, tt.wantErr)
			}
		})
	}
	if st := tg.server(t, "web", "web1").State; st != "UP" {
		t.Errorf("web1 after a drain with a wrong token = %s, want UP", st)
	}
}

func TestCtlReloadFails(t *testing.T) {
	tg := newCtlTarget(t, func(o *admin.Options) {
		o.Reload = func() error { return errors.New(`lb.yaml:7: backends[0].balance: "fastest": unknown algorithm`) }
	})
	code, _, errs := tg.run(t, "reload")
	if code != 1 || !strings.Contains(errs, `"fastest": unknown algorithm`) {
		t.Errorf("ctl reload = %d %q, want 1 with the configuration error", code, errs)
	}
}

func TestCtlAdminAddress(t *testing.T) {
	tg := newCtlTarget(t, nil)
	t.Setenv("FULCRUM_ADMIN", strings.TrimPrefix(tg.url, "http://"))
	var out, errb bytes.Buffer
	if code := runCtl(context.Background(), env{stdout: &out, stderr: &errb}, []string{"backends"}); code != 0 {
		t.Errorf("ctl backends with $FULCRUM_ADMIN = %d: %s", code, errb.String())
	}

	// Nothing listens there: a clear error, exit 1.
	srv := httptest.NewServer(nil)
	addr := srv.Listener.Addr().String()
	srv.Close()
	errb.Reset()
	code := runCtl(context.Background(), env{stdout: &out, stderr: &errb}, []string{"--admin", addr, "servers"})
	if code != 1 || !strings.Contains(errb.String(), "admin API at http://"+addr) {
		t.Errorf("ctl against a closed port = %d %q, want 1 naming the address", code, errb.String())
	}
}

// TestCtlLiveLB drives a started load balancer: traffic through it shows up
// in ctl's counters and rates, and a weight set with ctl changes where the
// next requests go.
func TestCtlLiveLB(t *testing.T) {
	testenv.Short(t)
	var backends [2]*httptest.Server
	for i := range backends {
		name := fmt.Sprintf("web%d", i+1)
		backends[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		t.Cleanup(backends[i].Close)
	}
	yaml := fmt.Sprintf(`
frontends:
  - name: www
    bind: ["127.0.0.1:0"]
    default_backend: web
backends:
  - name: web
    servers:
      - {name: web1, address: %q}
      - {name: web2, address: %q}
`, backends[0].Listener.Addr(), backends[1].Listener.Addr())
	cfg, err := config.ParseLB("lb.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	l, err := lb.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = l.Shutdown(sctx)
	})
	a := admin.New(admin.Options{LB: l, Addr: "127.0.0.1:0", Interval: 50 * time.Millisecond})
	go a.Run(ctx)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	tg := &ctlTarget{lb: l, url: srv.URL}
	front := "http://" + l.Addrs("www")[0].String()

	hits := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			resp, err := http.Get(front)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	servers := func() []admin.Server {
		code, out, errs := tg.run(t, "-o", "json", "servers")
		if code != 0 {
			t.Fatalf("ctl servers = %d: %s", code, errs)
		}
		var ss []admin.Server
		if err := json.Unmarshal([]byte(out), &ss); err != nil {
			t.Fatal(err)
		}
		return ss
	}
	// The traffic must come after the sampler's first look, which the
	// shares and rates count from: wait for a rate sampled since.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ss := servers(); len(ss) == 2 && len(ss[0].RateHistory) > 0 && len(ss[1].RateHistory) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the admin sampled no rates in 5 s")
		}
	}
	if got := hits(40); got["web1"] != 20 || got["web2"] != 20 {
		t.Fatalf("40 requests went %v, want 20 to each server", got)
	}
	time.Sleep(150 * time.Millisecond) // a few samples
	for _, what := range []string{"frontends", "backends", "servers"} {
		_, table, _ := tg.run(t, what)
		t.Logf("fulcrum ctl %s\n%s", what, table)
	}
	for _, s := range servers() {
		if s.Counts.Requests != 20 || s.Counts.StatusClasses[2] != 20 {
			t.Errorf("%s requests = %d (2xx %d), want 20", s.Name, s.Counts.Requests, s.Counts.StatusClasses[2])
		}
		if s.Share != 0.5 {
			t.Errorf("%s share = %v, want 0.5", s.Name, s.Share)
		}
		peak := 0.0
		for _, r := range s.RateHistory {
			peak = max(peak, r)
		}
		if peak == 0 {
			t.Errorf("%s rate history %v: want a sample with traffic", s.Name, s.RateHistory)
		}
	}

	// HAProxy's roundrobin after `set server web/web1 weight 3`: three of
	// every four requests go to web1.
	if code, _, errs := tg.run(t, "set-weight", "web/web1", "3"); code != 0 {
		t.Fatalf("ctl set-weight = %d: %s", code, errs)
	}
	if got := hits(40); got["web1"] != 30 || got["web2"] != 10 {
		t.Errorf("40 requests after set-weight web/web1 3 went %v, want 30 and 10", got)
	}
	if code, _, errs := tg.run(t, "drain", "web/web2"); code != 0 {
		t.Fatalf("ctl drain = %d: %s", code, errs)
	}
	if got := hits(10); got["web2"] != 0 {
		t.Errorf("10 requests after drain web/web2 went %v, want none to web2", got)
	}
}
