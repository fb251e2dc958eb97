package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// newTestAdmin returns an admin endpoint over a fresh fake, served on a
// loopback address, with a fixed clock.
func newTestAdmin(t *testing.T, mod func(*Options)) (*Admin, *fakeLB) {
	t.Helper()
	f := newFakeLB()
	opts := Options{LB: f, Addr: "127.0.0.1:9900", Now: func() time.Time { return fakeEpoch }}
	if mod != nil {
		mod(&opts)
	}
	return New(opts), f
}

// do sends one request to h and returns the status and body.
func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:9900"+path, rd)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		body         string
		wantCode     int
		wantBody     []string // substrings of the answer
		check        func(t *testing.T, f *fakeLB)
	}{
		{name: "status", method: "GET", path: "/api/status", wantCode: 200,
			wantBody: []string{`"frontends"`, `"name":"web1"`, `"state":"DOWN"`, `"time":"2026-11-25T12:00:00Z"`}},
		{name: "frontends", method: "GET", path: "/api/frontends", wantCode: 200, wantBody: []string{`"name":"www"`, `"current_connections":3`}},
		{name: "backends", method: "GET", path: "/api/backends", wantCode: 200, wantBody: []string{`"name":"api"`, `"servers_up":1`}},
		{name: "one backend", method: "GET", path: "/api/backends/web", wantCode: 200, wantBody: []string{`"balance":"roundrobin"`, `"current_sessions":2`}},
		{name: "unknown backend", method: "GET", path: "/api/backends/nope", wantCode: 404, wantBody: []string{`"error":"backend \"nope\": not found"`}},
		{name: "servers", method: "GET", path: "/api/servers", wantCode: 200, wantBody: []string{`"backend":"api"`, `"name":"api2"`, `"state":"MAINT"`}},
		{name: "one server", method: "GET", path: "/api/servers/web/web2", wantCode: 200, wantBody: []string{`"state":"DOWN"`, `"last_error":"connection refused"`}},
		{name: "unknown server", method: "GET", path: "/api/servers/web/nope", wantCode: 404, wantBody: []string{`server \"nope\": not found`}},
		{name: "set weight", method: "POST", path: "/api/servers/web/web1/weight", body: `{"weight": "50%"}`, wantCode: 200,
			wantBody: []string{`"weight":50`, `"config_weight":100`},
			check:    func(t *testing.T, f *fakeLB) { wantWeight(t, f, "web1", 50) }},
		{name: "set weight number", method: "POST", path: "/api/servers/web/web1/weight", body: `{"weight": 7}`, wantCode: 200,
			check: func(t *testing.T, f *fakeLB) { wantWeight(t, f, "web1", 7) }},
		{name: "bad weight", method: "POST", path: "/api/servers/web/web1/weight", body: `{"weight": "300"}`, wantCode: 400,
			wantBody: []string{`weight 300: must be 0..256`},
			check:    func(t *testing.T, f *fakeLB) { wantWeight(t, f, "web1", 100) }},
		{name: "weight missing", method: "POST", path: "/api/servers/web/web1/weight", body: `{}`, wantCode: 400},
		{name: "weight of unknown server", method: "POST", path: "/api/servers/web/nope/weight", body: `{"weight": "5"}`, wantCode: 404},
		{name: "unknown field", method: "POST", path: "/api/servers/web/web1/weight", body: `{"wieght": "5"}`, wantCode: 400,
			wantBody: []string{`unknown field`}},
		{name: "not json", method: "POST", path: "/api/servers/web/web1/state", body: `drain`, wantCode: 400},
		{name: "drain", method: "POST", path: "/api/servers/web/web1/state", body: `{"state": "drain"}`, wantCode: 200,
			wantBody: []string{`"state":"DRAIN"`, `"admin":"drain"`}},
		{name: "bad state", method: "POST", path: "/api/servers/web/web1/state", body: `{"state": "off"}`, wantCode: 400,
			wantBody: []string{`state \"off\": want ready, drain or maint`}},
		{name: "checks off", method: "POST", path: "/api/servers/web/web1/checks", body: `{"enabled": false}`, wantCode: 200,
			wantBody: []string{`"enabled":false`}},
		{name: "force health", method: "POST", path: "/api/servers/web/web2/health", body: `{"health": "up"}`, wantCode: 200,
			wantBody: []string{`"state":"UP"`}},
		{name: "bad health", method: "POST", path: "/api/servers/web/web2/health", body: `{"health": "sideways"}`, wantCode: 400},
		{name: "add server", method: "POST", path: "/api/backends/web/servers", body: `{"name": "web3", "address": "127.0.0.1:9103", "weight": 10}`,
			wantCode: 201, wantBody: []string{`"name":"web3"`, `"state":"MAINT"`, `"weight":10`}},
		{name: "add existing server", method: "POST", path: "/api/backends/web/servers", body: `{"name": "web1", "address": "127.0.0.1:9103"}`,
			wantCode: 400, wantBody: []string{`already exists`}},
		{name: "add to unknown backend", method: "POST", path: "/api/backends/nope/servers", body: `{"name": "x", "address": "127.0.0.1:1"}`, wantCode: 404},
		{name: "add without address", method: "POST", path: "/api/backends/web/servers", body: `{"name": "x"}`, wantCode: 400},
		{name: "delete in maint", method: "DELETE", path: "/api/servers/api/api2", wantCode: 200, wantBody: []string{`"deleted":true`},
			check: func(t *testing.T, f *fakeLB) {
				if _, err := f.find("api", "api2"); err == nil {
					t.Error("api/api2 still there after DELETE")
				}
			}},
		{name: "delete when ready", method: "DELETE", path: "/api/servers/web/web1", wantCode: 400, wantBody: []string{`put it in maint first`}},
		{name: "delete unknown", method: "DELETE", path: "/api/servers/web/nope", wantCode: 404},
		{name: "reload", method: "POST", path: "/api/reload", wantCode: 200, wantBody: []string{`"reloaded":true`}},
		{name: "reload alias", method: "POST", path: "/reload", wantCode: 200},
		{name: "unknown endpoint", method: "GET", path: "/api/nope", wantCode: 404, wantBody: []string{`"error"`}},
		{name: "stats page", method: "GET", path: "/", wantCode: 200, wantBody: []string{`<title>fulcrum`, `/ui/stats.js`}},
		{name: "stats script", method: "GET", path: "/ui/stats.js", wantCode: 200, wantBody: []string{`/api/status`}},
		{name: "stats style", method: "GET", path: "/ui/stats.css", wantCode: 200, wantBody: []string{`.st.DOWN`}},
		{name: "metrics", method: "GET", path: "/metrics", wantCode: 200, wantBody: []string{`fulcrum_server_up{backend="web",server="web1"} 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, f := newTestAdmin(t, func(o *Options) { o.Reload = func() error { return nil } })
			code, body := do(t, a, tt.method, tt.path, tt.body)
			if code != tt.wantCode {
				t.Fatalf("%s %s = %d, want %d; body %s", tt.method, tt.path, code, tt.wantCode, body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s body lacks %s:\n%s", tt.method, tt.path, w, body)
				}
			}
			if code >= 400 && strings.HasPrefix(tt.path, "/api/") {
				var eb ErrorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
					t.Errorf("error body %q: want {\"error\": MESSAGE}", body)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func wantWeight(t *testing.T, f *fakeLB, server string, want int) {
	t.Helper()
	s, err := f.find("web", server)
	if err != nil {
		t.Fatal(err)
	}
	if s.weight != want {
		t.Errorf("weight of web/%s = %d, want %d", server, s.weight, want)
	}
}

func TestReloadErrors(t *testing.T) {
	tests := []struct {
		name     string
		reload   func() error
		wantCode int
		wantBody string
	}{
		{"invalid file", func() error { return errors.New("lb.yaml:3: backends[0].servers: at least one server") }, 500, `reload: lb.yaml:3`},
		{"not wired", nil, 501, `reload is not available`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAdmin(t, func(o *Options) { o.Reload = tt.reload })
			code, body := do(t, a, "POST", "/api/reload", "")
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("POST /api/reload = %d %s, want %d with %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name     string
		addr     string
		token    string
		method   string
		path     string
		hdr      []string
		host     string
		wantCode int
	}{
		{name: "loopback open", addr: "127.0.0.1:9901", path: "/api/status", wantCode: 200},
		{name: "loopback ipv6 open", addr: "[::1]:9901", path: "/api/status", host: "[::1]:9901", wantCode: 200},
		{name: "localhost open", addr: "localhost:9901", path: "/metrics", host: "localhost:9901", wantCode: 200},
		{name: "loopback, foreign host name", addr: "127.0.0.1:9901", path: "/api/status", host: "evil.example:9901", wantCode: 403},
		{name: "loopback with a token set needs it", addr: "127.0.0.1:9901", token: token, path: "/api/status", wantCode: 401},
		{name: "remote without token", addr: "192.0.2.10:9901", token: token, path: "/api/status", wantCode: 401},
		{name: "remote metrics without token", addr: "192.0.2.10:9901", token: token, path: "/metrics", wantCode: 401},
		{name: "remote wrong token", addr: "192.0.2.10:9901", token: token, path: "/api/status", hdr: []string{"Authorization", "Bearer nope"}, wantCode: 401},
		{name: "remote wrong scheme", addr: "192.0.2.10:9901", token: token, path: "/api/status", hdr: []string{"Authorization", "Basic " + token}, wantCode: 401},
		{name: "remote right token", addr: "192.0.2.10:9901", token: token, path: "/api/status", hdr: []string{"Authorization", "Bearer " + token}, wantCode: 200},
		{name: "remote change without token", addr: "192.0.2.10:9901", token: token, method: "POST", path: "/api/servers/web/web1/state", wantCode: 401},
		{name: "all interfaces without token", addr: ":9901", token: token, path: "/api/status", wantCode: 401},
		{name: "remote and no token configured", addr: "0.0.0.0:9901", path: "/api/status", hdr: []string{"Authorization", "Bearer "}, wantCode: 401},
		{name: "remote page without token", addr: "192.0.2.10:9901", token: token, path: "/", wantCode: 200},
		{name: "remote page script without token", addr: "192.0.2.10:9901", token: token, path: "/ui/stats.js", wantCode: 200},
		{name: "form post without JSON type", addr: "127.0.0.1:9901", method: "POST", path: "/api/reload", hdr: []string{"Content-Type", "text/plain"}, wantCode: 415},
		{name: "loopback profiler", addr: "127.0.0.1:9901", path: "/debug/pprof/", wantCode: 200},
		{name: "remote profiler without token", addr: "192.0.2.10:9901", token: token, path: "/debug/pprof/heap", wantCode: 401},
		{name: "remote profiler with token", addr: "192.0.2.10:9901", token: token, path: "/debug/pprof/heap", hdr: []string{"Authorization", "Bearer " + token}, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(Options{LB: newFakeLB(), Addr: tt.addr, Token: tt.token, Reload: func() error { return nil }})
			method := tt.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, tt.path, strings.NewReader(`{"state":"drain"}`))
			r.Host = "127.0.0.1:9901"
			if tt.host != "" {
				r.Host = tt.host
			}
			if method == "POST" {
				r.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				r.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("%s %s on %s = %d, want %d; body %s", method, tt.path, tt.addr, w.Code, tt.wantCode, w.Body)
			}
			if w.Code >= 400 {
				var eb ErrorBody
				if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == "" {
					t.Errorf("error body %q: want {\"error\": MESSAGE}", w.Body)
				}
			}
			if w.Code == 401 && tt.token != "" && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9900", true}, {"127.3.4.5:1", true}, {"[::1]:9900", true}, {"localhost:9900", true},
		{"[::ffff:127.0.0.1]:9900", true}, {":9900", false}, {"0.0.0.0:9900", false}, {"[::]:9900", false},
		{"192.0.2.1:9900", false}, {"admin.example:9900", false}, {"", false},
	}
	for _, tt := range tests {
		if got := Loopback(tt.addr); got != tt.want {
			t.Errorf("Loopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestOCSPWithoutToken: OCSP requests reach the responder without a token
// (clients checking revocation carry none), the API still needs one, and
// a token-less request RequireToken guards is refused.
func TestOCSPWithoutToken(t *testing.T) {
	ocsp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ocsp answer") })
	a, _ := newTestAdmin(t, func(o *Options) { o.Addr, o.Token, o.OCSP = "192.0.2.1:9901", "secret", ocsp })
	for _, tc := range []struct {
		method, path, auth string
		code               int
	}{
		{http.MethodPost, "/ocsp/", "", http.StatusOK},
		{http.MethodGet, "/ocsp/MEMwQTA", "", http.StatusOK},
		{http.MethodGet, "/api/status", "", http.StatusUnauthorized},
		{http.MethodGet, "/api/status", "Bearer secret", http.StatusOK},
	} {
		req := httptest.NewRequest(tc.method, "http://192.0.2.1:9901"+tc.path, strings.NewReader("x"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s %s (auth %q) = %d, want %d", tc.method, tc.path, tc.auth, rec.Code, tc.code)
		}
	}
	guarded := RequireToken("secret", ocsp)
	for auth, code := range map[string]int{"": http.StatusUnauthorized, "Bearer wrong": http.StatusUnauthorized, "Bearer secret": http.StatusOK} {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		guarded.ServeHTTP(rec, req)
		if rec.Code != code {
			t.Errorf("RequireToken, Authorization %q = %d, want %d", auth, rec.Code, code)
		}
	}
}
