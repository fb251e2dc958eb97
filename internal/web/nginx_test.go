package web

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// startNginx serves root with nginx (autoindex off, the default) and
// returns its address; the process is killed at cleanup.
func startNginx(t *testing.T, root string) string {
	t.Helper()
	nginx := testenv.Program(t, "nginx")[0]
	dir := t.TempDir()
	port := testenv.FreeRange(t, 1)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  types { text/html html; text/css css; text/plain txt; image/png png; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:%[2]d;
    root %[3]s;
  }
}
`, dir, port, root)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStaticLikeNginx sends the same requests to nginx and to the static
// handler, both serving one directory, and compares status, body and the
// range and validator headers. Where fulcrum differs from nginx on purpose
// (dot files, links out of the root, traversal answered 404 instead of
// 400), the cases live in TestStaticPaths instead.
func TestStaticLikeNginx(t *testing.T) {
	testenv.Short(t)
	root := siteDir(t)
	ngx := startNginx(t, root)
	s, err := New(&config.Web{Name: "web1", Listen: "127.0.0.1:0",
		Static: &config.Static{Root: root, Gzip: new(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fulcrum, _ := serve(t, s)

	// Each server's own validators, for the conditional requests.
	validators := func(addr string) (etag, lastMod string) {
		resp, err := http.Get("http://" + addr + "/style.css")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	type req struct {
		method, path string
		hdr          []string // "ETAG" and "LASTMOD" stand for the server's own
	}
	reqs := []req{
		{"GET", "/", nil},
		{"GET", "/index.html", nil},
		{"HEAD", "/style.css", nil},
		{"GET", "/docs", nil},
		{"GET", "/docs/", nil},
		{"GET", "/sub/", nil},
		{"GET", "/missing.html", nil},
		{"GET", "/sub/page.html", nil},
		{"GET", "/sub/up.html", nil},
		{"POST", "/style.css", nil},
		{"GET", "/style.css", []string{"If-None-Match", "ETAG"}},
		{"GET", "/style.css", []string{"If-None-Match", `"nope"`}},
		{"GET", "/style.css", []string{"If-Modified-Since", "LASTMOD"}},
		{"GET", "/style.css", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}},
		{"GET", "/style.css", []string{"If-Match", `"nope"`}},
		{"GET", "/style.css", []string{"If-Unmodified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}},
		{"GET", "/range.txt", []string{"Range", "bytes=0-3"}},
		{"GET", "/range.txt", []string{"Range", "bytes=10-"}},
		{"GET", "/range.txt", []string{"Range", "bytes=-5"}},
		{"GET", "/range.txt", []string{"Range", "bytes=5-1000"}},
		{"GET", "/range.txt", []string{"Range", "bytes=30-40"}},
		{"GET", "/range.txt", []string{"Range", "lines=1-2"}},
		{"GET", "/range.txt", []string{"Range", "bytes=0-3", "If-Range", `"stale"`}},
		{"GET", "/range.txt", []string{"Range", "bytes=0-3", "If-Range", "ETAG"}},
	}
	type answer struct {
		status                     int
		body, contentRange, length string
	}
	ask := func(addr string, r req) answer {
		etag, lastMod := validators(addr)
		if strings.HasSuffix(r.path, "range.txt") {
			resp, _ := http.Get("http://" + addr + "/range.txt")
			resp.Body.Close()
			etag = resp.Header.Get("ETag")
		}
		hr, _ := http.NewRequestWithContext(context.Background(), r.method, "http://"+addr+r.path, nil)
		for i := 0; i+1 < len(r.hdr); i += 2 {
			v := strings.NewReplacer("ETAG", etag, "LASTMOD", lastMod).Replace(r.hdr[i+1])
			hr.Header.Set(r.hdr[i], v)
		}
		resp, err := noRedirect.Do(hr)
		if err != nil {
			t.Fatalf("%s %s on %s: %v", r.method, r.path, addr, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a := answer{status: resp.StatusCode, contentRange: resp.Header.Get("Content-Range")}
		if resp.StatusCode < 300 { // error pages differ in wording
			a.body, a.length = string(b), resp.Header.Get("Content-Length")
		}
		return a
	}
	for _, r := range reqs {
		want, got := ask(ngx, r), ask(fulcrum, r)
		if got != want {
			t.Errorf("%s %s %q:\n fulcrum %+v\n nginx   %+v", r.method, r.path, r.hdr, got, want)
		}
	}
}
