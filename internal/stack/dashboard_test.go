package stack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func testStack(t *testing.T) *Stack {
	t.Helper()
	s, err := New(Options{Dir: t.TempDir(), Exe: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	s.state = *fixture()
	s.events = fixture().Events
	return s
}

func TestHandler(t *testing.T) {
	s := testStack(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	t.Run("state", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st State
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if st.ActiveLB != "lb2" || st.Primary != "db2" || len(st.Webs) != 2 || len(st.Events) != 1 {
			t.Errorf("GET /api/state = active %q primary %q, %d webs, %d events; want lb2, db2, 2, 1", st.ActiveLB, st.Primary, len(st.Webs), len(st.Events))
		}
	})
	t.Run("page without CDN", func(t *testing.T) {
		for _, path := range []string{"/", "/ui/app.js", "/ui/style.css"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %s, want 200", path, resp.Status)
			}
			// Only the SVG namespace may name another host.
			ext := regexp.MustCompile(`(src|href)=["']https?://|url\(["']?https?://|import .*https?://`)
			if ext.Match(body) {
				t.Errorf("GET %s loads something from elsewhere", path)
			}
		}
	})
	chaos := func(origin, name string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/chaos/kill?name="+name, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("chaos unknown", func(t *testing.T) {
		code, body := chaos("", "lb9")
		if code != http.StatusNotFound || !strings.Contains(body, "lb1, lb2, web1, web2, manager, db1, db2, db3, db-primary") {
			t.Errorf("kill lb9 = %d %s, want 404 listing the components", code, body)
		}
	})
	t.Run("chaos cross-site", func(t *testing.T) {
		if code, body := chaos("http://evil.example", "lb1"); code != http.StatusForbidden {
			t.Errorf("cross-site kill = %d %s, want 403", code, body)
		}
	})
	t.Run("chaos bad action", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/api/chaos/explode?name=lb1", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST /api/chaos/explode = %s, want 404", resp.Status)
		}
	})
}
