package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzChangeRequest sends arbitrary bodies to every POST endpoint: each
// answer is JSON, never a server error, and a refused change changes
// nothing.
func FuzzChangeRequest(f *testing.F) {
	// Seeds: one valid body per endpoint, then the near misses.
	for _, seed := range []struct {
		endpoint uint8
		body     string
	}{
		{0, `{"weight": "50%"}`},
		{0, `{"weight": 256}`},
		{0, `{"weight": 1e400}`},
		{0, `{"weight": "-1%"}`},
		{0, `{"weight": null}`},
		{1, `{"state": "drain"}`},
		{1, `{"state": "DRAIN"}`},
		{2, `{"enabled": false}`},
		{2, `{"enabled": "no"}`},
		{3, `{"health": "down"}`},
		{4, `{"name": "web3", "address": "127.0.0.1:9103", "weight": 3}`},
		{4, `{"name": "web3", "address": "[::1]:0"}`},
		{4, `{"name": "", "address": ""}`},
		{1, `{"state": "drain"} {"state": "maint"}`},
		{0, `{"weight": "5", "weight": "6"}`},
		{1, "\xef\xbb\xbf{\"state\": \"maint\"}"},
		{1, ``},
	} {
		f.Add(seed.endpoint, seed.body)
	}
	paths := []string{
		"/api/servers/web/web1/weight", "/api/servers/web/web1/state", "/api/servers/web/web1/checks",
		"/api/servers/web/web1/health", "/api/backends/web/servers", "/api/reload",
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		a, fake := newTestAdmin(t, func(o *Options) { o.Reload = func() error { return nil } })
		path := paths[int(endpoint)%len(paths)]
		before := snapshotOf(t, fake)
		code, out := do(t, a, "POST", path, body)
		if code >= 500 {
			t.Fatalf("POST %s %q = %d: %s", path, body, code, out)
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("POST %s %q answered %q, not JSON", path, body, out)
		}
		if code >= 400 {
			if after := snapshotOf(t, fake); after != before {
				t.Fatalf("POST %s %q = %d but the load balancer changed", path, body, code)
			}
			if !strings.Contains(out, `"error"`) {
				t.Fatalf("POST %s %q = %d without an error message: %s", path, body, code, out)
			}
		}
	})
}

func snapshotOf(t *testing.T, f *fakeLB) string {
	t.Helper()
	b, err := json.Marshal(f.Status())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
