package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/guestbook"
	"fulcrum/internal/testenv"
)

func newTestServer(t *testing.T, cfg *config.Web) *Server {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "web1"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(s.closeStatic)
	return s
}

func TestServedByEverywhere(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "legacy-app")
		io.WriteString(w, "legacy "+r.URL.Path)
	}))
	defer backend.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s := newTestServer(t, &config.Web{
		Static: &config.Static{Root: siteDir(t)},
		Upstreams: []config.Upstream{
			{PathPrefix: "/legacy", URL: backend.URL},
			{PathPrefix: "/gone", URL: dead.URL},
		},
	})
	h := s.Handler()
	for _, tt := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/", 200},
		{"GET", "/missing", 404},
		{"GET", "/sub/", 403},
		{"GET", "/docs", 301},
		{"GET", "/../x", 307}, // the mux cleans the path first
		{"DELETE", "/style.css", 405},
		{"GET", "/style.css", 200},
		{"GET", "/healthz", 200},
		{"POST", "/healthz", 405},
		{"OPTIONS", "/healthz", 200},
		{"HEAD", "/healthz", 200},
		{"GET", "/legacy/x", 200},
		{"GET", "/gone/x", 502},
	} {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.target, w.Code, tt.status)
		}
		if got := w.Header().Values("X-Served-By"); len(got) != 1 || got[0] != "web1" {
			t.Errorf("%s %s X-Served-By = %q, want [web1]", tt.method, tt.target, got)
		}
	}
}

func TestPanicIs500WithServedBy(t *testing.T) {
	s := newTestServer(t, &config.Web{Static: &config.Static{Root: t.TempDir()}})
	h := s.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 500 || w.Header().Get("X-Served-By") != "web1" {
		t.Errorf("panicking handler = %d X-Served-By %q, want 500 web1", w.Code, w.Header().Get("X-Served-By"))
	}
	if st := s.Stats(); st.Requests != 1 || st.ByClass[5] != 1 || st.InFlight != 0 {
		t.Errorf("Stats() = %+v, want 1 request, one 5xx, none in flight", st)
	}
}

func TestUpstream(t *testing.T) {
	type seen struct{ Path, XFF, Host string }
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Host})
	}))
	defer backend.Close()
	s := newTestServer(t, &config.Web{
		Static: &config.Static{Root: siteDir(t)},
		Upstreams: []config.Upstream{
			{PathPrefix: "/legacy", URL: backend.URL},
			{PathPrefix: "/api2/", URL: backend.URL + "/base", StripPrefix: true},
		},
	})
	h := s.Handler()
	tests := []struct {
		target   string
		proxied  bool
		wantPath string
	}{
		{"/legacy", true, "/legacy"},
		{"/legacy/a/b?q=1", true, "/legacy/a/b"},
		{"/legacyx", false, ""},
		{"/api2/users", true, "/base/users"},
		{"/api2/", true, "/base/"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.target, nil)
		r.Header.Set("X-Forwarded-For", "192.0.2.7")
		r.RemoteAddr = "127.0.0.9:5555"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var got seen
		err := json.Unmarshal(w.Body.Bytes(), &got)
		if proxied := err == nil; proxied != tt.proxied {
			t.Errorf("GET %s proxied = %v, want %v (status %d)", tt.target, proxied, tt.proxied, w.Code)
			continue
		}
		if !tt.proxied {
			continue
		}
		if got.Path != tt.wantPath {
			t.Errorf("GET %s: upstream saw path %q, want %q", tt.target, got.Path, tt.wantPath)
		}
		if got.XFF != "192.0.2.7, 127.0.0.9" {
			t.Errorf("GET %s: upstream saw X-Forwarded-For %q, want the chain 192.0.2.7, 127.0.0.9", tt.target, got.XFF)
		}
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer backend.Close()
	defer close(release)
	s := newTestServer(t, &config.Web{Upstreams: []config.Upstream{
		{PathPrefix: "/slow", URL: backend.URL, Timeout: config.Duration(100 * time.Millisecond)},
	}})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/slow", nil))
	if w.Code != http.StatusGatewayTimeout {
		t.Errorf("GET /slow = %d, want 504", w.Code)
	}
}

func TestHealthz(t *testing.T) {
	db := &config.WebDatabase{Nodes: []string{"127.0.0.1:1"}, User: "app", Name: "guestbook", Password: "x"}
	tests := []struct {
		name     string
		cfg      config.Web
		primary  func() (string, error)
		initApp  bool
		draining bool
		status   int
		body     string
	}{
		{"no database", config.Web{Static: &config.Static{Root: t.TempDir()}}, nil, false, false, 200, "ok"},
		{"database, no primary", config.Web{Static: &config.Static{Root: t.TempDir()}, Database: db},
			func() (string, error) { return "", errors.New("dbrouter: no primary") }, false, false, 503, "database: dbrouter: no primary"},
		{"database up", config.Web{Static: &config.Static{Root: t.TempDir()}, Database: db},
			func() (string, error) { return "127.0.0.1:13306", nil }, false, false, 200, "ok, database primary 127.0.0.1:13306"},
		{"app schema not ready", config.Web{App: "guestbook", Database: db},
			func() (string, error) { return "127.0.0.1:13306", nil }, false, false, 503, "app: guestbook: schema not created yet"},
		{"draining", config.Web{Static: &config.Static{Root: t.TempDir()}}, nil, false, true, 503, "shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, &tt.cfg)
			if tt.primary != nil {
				s.primary = tt.primary
			}
			s.draining.Store(tt.draining)
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
			if w.Code != tt.status || strings.TrimSpace(w.Body.String()) != tt.body {
				t.Errorf("GET /healthz = %d %q, want %d %q", w.Code, w.Body, tt.status, tt.body)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("GET /healthz Cache-Control = %q, want no-store", w.Header().Get("Cache-Control"))
			}
		})
	}
}

// A primary lost during a failover keeps /healthz at 200 for primaryGrace,
// then 503.
func TestHealthzFailoverGrace(t *testing.T) {
	db := &config.WebDatabase{Nodes: []string{"127.0.0.1:1"}, User: "app", Name: "guestbook", Password: "x"}
	s := newTestServer(t, &config.Web{Static: &config.Static{Root: t.TempDir()}, Database: db})
	primary := "127.0.0.1:13306"
	s.primary = func() (string, error) {
		if primary == "" {
			return "", errors.New("dbrouter: no primary")
		}
		return primary, nil
	}
	get := func() int {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		return w.Code
	}
	if got := get(); got != 200 {
		t.Fatalf("with a primary: %d, want 200", got)
	}
	primary = ""
	if got := get(); got != 200 {
		t.Errorf("primary just lost: %d, want 200 during the grace", got)
	}
	s.lastPrimary.Store(time.Now().Add(-primaryGrace - time.Second).UnixNano())
	if got := get(); got != 503 {
		t.Errorf("primary lost for longer than the grace: %d, want 503", got)
	}
}

func serve(t *testing.T, s *Server) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once bool
	var result error
	stop = func() error {
		if !once {
			once = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer backend.Close()
	s := newTestServer(t, &config.Web{Grace: config.Duration(5 * time.Second),
		Upstreams: []config.Upstream{{PathPrefix: "/slow", URL: backend.URL}}})
	addr, stop := serve(t, s)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-started
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Serve() = %v after a clean shutdown, want nil", err)
	}
	if r := <-res; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request = %q, %v; want it finished", r.body, r.err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("shutdown took %v, want it to wait for the in-flight request", d)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("dial after shutdown succeeded, want refused")
	}
}

func TestShutdownGraceOver(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	}))
	defer backend.Close()
	defer close(release)
	s := newTestServer(t, &config.Web{Grace: config.Duration(200 * time.Millisecond),
		Upstreams: []config.Upstream{{PathPrefix: "/stuck", URL: backend.URL}}})
	addr, stop := serve(t, s)
	go http.Get("http://" + addr + "/stuck")
	<-started
	t0 := time.Now()
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Errorf("Serve() = %v, want a grace period error", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("shutdown took %v, want about the 200ms grace", d)
	}
}

// TestServeWithoutDatabase runs the real router against a port where no
// database listens: the server serves, /healthz and the app say 503.
func TestServeWithoutDatabase(t *testing.T) {
	var logs bytes.Buffer
	cfg := &config.Web{Name: "web1", Listen: "127.0.0.1:0", App: "guestbook",
		Database: &config.WebDatabase{Nodes: []string{"127.0.0.1:1"}, User: "app", Name: "guestbook", Password: "x"}}
	s, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(t, s)
	check := func(path string, want int) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("X-Served-By") != "web1" {
			t.Errorf("GET %s = %d %q X-Served-By %q, want %d web1", path, resp.StatusCode, body, resp.Header.Get("X-Served-By"), want)
		}
	}
	check("/healthz", 503)
	check("/api/messages", 503)
	check("/", 503)
	if err := stop(); err != nil {
		t.Errorf("Serve() = %v", err)
	}
	if !strings.Contains(logs.String(), "msg=access") || !strings.Contains(logs.String(), "path=/healthz") {
		t.Errorf("no access log line for /healthz in:\n%s", logs.String())
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Web
		want string
	}{
		{"invalid", config.Web{Listen: "x"}, "name: a name is required"},
		{"missing root", config.Web{Name: "w", Listen: ":0", Static: &config.Static{Root: "/nonexistent/fulcrum"}}, "static root"},
		{"password file", config.Web{Name: "w", Listen: ":0", App: "guestbook",
			Database: &config.WebDatabase{Nodes: []string{"a:1"}, User: "u", Name: "n", PasswordFile: "/nonexistent/pw"}}, "database.password_file"},
		{"static and upstream on /", config.Web{Name: "w", Listen: ":0", Static: &config.Static{Root: "/"},
			Upstreams: []config.Upstream{{PathPrefix: "/", URL: "http://a:1"}}}, "both claim every path"},
	}
	for _, tt := range tests {
		if _, err := New(&tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPassword(t *testing.T) {
	env := func(string) string { return "from-env" }
	if pw, _ := password(&config.WebDatabase{}, env); pw != "from-env" {
		t.Errorf("password() without a file = %q, want the environment's", pw)
	}
	if pw, _ := password(&config.WebDatabase{Password: "set"}, env); pw != "set" {
		t.Errorf("password() = %q, want the one set", pw)
	}
}

var _ guestbook.DB = (*database)(nil)

func TestAdmin(t *testing.T) {
	port := testenv.FreeRange(t, 1)
	cfg := &config.Web{Static: &config.Static{Root: siteDir(t)}, Admin: fmt.Sprintf("127.0.0.1:%d", port)}
	s := newTestServer(t, cfg)
	addr, _ := serve(t, s)
	for _, p := range []string{"/", "/missing", "/style.css"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + cfg.Admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	want := Responses{Success: 2, ClientError: 1}
	if st.Name != "web1" || st.Addr != addr || !st.Healthy || st.Requests != 3 || st.Responses != want {
		t.Errorf("GET /status = %+v, want web1 at %s, healthy, 3 requests %+v", st, addr, want)
	}
	resp, err = http.Get("http://" + cfg.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`fulcrum_web_requests_total{server="web1"} 3`,
		`fulcrum_web_responses_total{code="4xx",server="web1"} 1`,
		`fulcrum_web_healthy{server="web1"} 1`,
		`fulcrum_web_request_duration_seconds_count{server="web1"} 3`,
	} {
		if !strings.Contains(string(metrics), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(metrics)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

func TestDrain(t *testing.T) {
	s := newTestServer(t, &config.Web{Static: &config.Static{Root: siteDir(t)}, Drain: config.Duration(400 * time.Millisecond)})
	addr, stop := serve(t, s)
	client := &http.Client{Transport: &http.Transport{}} // keeps its connection
	status := func(path string) int {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/healthz"); got != 200 {
		t.Fatalf("GET /healthz before shutdown = %d, want 200", got)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	if got := status("/healthz"); got != 503 {
		t.Errorf("GET /healthz while draining = %d, want 503", got)
	}
	if got := status("/style.css"); got != 200 {
		t.Errorf("GET /style.css while draining = %d, want 200", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve() = %v, want nil", err)
	}
}
