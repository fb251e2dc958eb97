package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"fulcrum/internal/config"
)

var css = strings.Repeat("body { color: #222; margin: 0 auto; }\n", 100)

// siteDir builds a site beside a file that must never be served, and
// returns the site's root.
func siteDir(t testing.TB) string {
	t.Helper()
	top := t.TempDir()
	root := filepath.Join(top, "site")
	outside := filepath.Join(top, "outside")
	files := map[string]string{
		"site/index.html":       "<h1>home</h1>",
		"site/style.css":        css,
		"site/small.txt":        "tiny",
		"site/logo.png":         "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00\x01", 400),
		"site/noext":            "<html><body>sniffed</body></html>",
		"site/sub/page.html":    "<p>sub</p>",
		"site/docs/index.html":  "<h1>docs</h1>",
		"site/.env":             "SECRET=1",
		"site/.git/config":      "[core]",
		"outside/secret.txt":    "TOP SECRET",
		"site/range.txt":        "0123456789abcdefghij",
		"site/a b/c%2Fd.txt":    "odd name",
		"site/unreadable.txt":   "no",
		"site/index.html.extra": "x",
	}
	for name, data := range files {
		p := filepath.Join(top, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"site/escape":      filepath.Join(outside, "secret.txt"),
		"site/escape_rel":  "../outside/secret.txt",
		"site/outdir":      outside,
		"site/inside.css":  "style.css",
		"site/sub/up.html": "../index.html",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(top, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newTestStatic(t testing.TB, root string) *static {
	t.Helper()
	s, err := newStatic(&config.Static{Root: root, CacheControl: "public, max-age=60"})
	if err != nil {
		t.Fatalf("newStatic() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://web1"+target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestStaticPaths(t *testing.T) {
	s := newTestStatic(t, siteDir(t))
	tests := []struct {
		target string
		status int
		body   string // a substring of the body, if set
	}{
		{"/", 200, "<h1>home</h1>"},
		{"/index.html", 200, "home"},
		{"/style.css", 200, "body {"},
		{"/docs/", 200, "<h1>docs</h1>"},
		{"/docs", 301, ""},
		{"/sub/", 403, "listing is disabled"},
		{"/sub/page.html", 200, "sub"},
		{"/sub//page.html", 200, "sub"},
		{"/sub/up.html", 200, "home"},      // a link that stays inside
		{"/inside.css", 200, "body {"},     // a link that stays inside
		{"/a%20b/c%252Fd.txt", 200, "odd"}, // an escaped name is a name
		{"/style.css/", 404, ""},
		{"/missing", 404, ""},
		{"/.env", 404, ""},
		{"/.git/config", 404, ""},
		{"/sub/.", 404, ""},
		// Traversal, plain and encoded: never the file outside.
		{"/../outside/secret.txt", 404, ""},
		{"/%2e%2e/outside/secret.txt", 404, ""},
		{"/%2E%2E%2Foutside%2Fsecret.txt", 404, ""},
		{"/sub/..%2f..%2foutside/secret.txt", 404, ""},
		{"/..%5coutside%5csecret.txt", 404, ""},
		{"/sub/%2e%2e/%2e%2e/outside/secret.txt", 404, ""},
		{"/escape", 404, ""},
		{"/escape_rel", 404, ""},
		{"/outdir/secret.txt", 404, ""},
		{"/index.html%00.txt", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := get(s, tt.target)
			if w.Code != tt.status {
				t.Errorf("GET %s = %d, want %d", tt.target, w.Code, tt.status)
			}
			if tt.body != "" && !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("GET %s body = %q, want it to contain %q", tt.target, w.Body, tt.body)
			}
			if strings.Contains(w.Body.String(), "TOP SECRET") {
				t.Errorf("GET %s served the file outside the root", tt.target)
			}
		})
	}
	if w := get(s, "/docs?x=1"); w.Header().Get("Location") != "/docs/?x=1" {
		t.Errorf("GET /docs?x=1 Location = %q, want /docs/?x=1", w.Header().Get("Location"))
	}
}

func TestStaticUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	root := siteDir(t)
	os.Chmod(filepath.Join(root, "unreadable.txt"), 0)
	if w := get(newTestStatic(t, root), "/unreadable.txt"); w.Code != 403 {
		t.Errorf("GET /unreadable.txt = %d, want 403", w.Code)
	}
}

func TestStaticHeaders(t *testing.T) {
	s := newTestStatic(t, siteDir(t))
	w := get(s, "/style.css")
	h := w.Header()
	for k, want := range map[string]string{
		"Content-Type":           "text/css; charset=utf-8",
		"Cache-Control":          "public, max-age=60",
		"Accept-Ranges":          "bytes",
		"X-Content-Type-Options": "nosniff",
		"Vary":                   "Accept-Encoding",
		"Content-Length":         "3800",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("GET /style.css %s = %q, want %q", k, got, want)
		}
	}
	if h.Get("ETag") == "" || h.Get("Last-Modified") == "" {
		t.Errorf("GET /style.css ETag %q, Last-Modified %q, want both", h.Get("ETag"), h.Get("Last-Modified"))
	}
	if got := get(s, "/noext").Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("GET /noext Content-Type = %q, want it sniffed as HTML", got)
	}
	r := httptest.NewRequest("POST", "/style.css", nil)
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /style.css = %d Allow %q, want 405 GET, HEAD", w.Code, w.Header().Get("Allow"))
	}
	r = httptest.NewRequest("HEAD", "/style.css", nil)
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "3800" {
		t.Errorf("HEAD /style.css = %d, %d body bytes, Content-Length %q; want 200, 0, 3800", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

func TestStaticConditional(t *testing.T) {
	s := newTestStatic(t, siteDir(t))
	first := get(s, "/style.css")
	etag, lm := first.Header().Get("ETag"), first.Header().Get("Last-Modified")
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"If-None-Match same", []string{"If-None-Match", etag}, 304},
		{"If-None-Match weak", []string{"If-None-Match", "W/" + etag}, 304},
		{"If-None-Match list", []string{"If-None-Match", `"x", ` + etag}, 304},
		{"If-None-Match star", []string{"If-None-Match", "*"}, 304},
		{"If-None-Match other", []string{"If-None-Match", `"other"`}, 200},
		{"If-Modified-Since same", []string{"If-Modified-Since", lm}, 304},
		{"If-Modified-Since old", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
		{"If-Match other", []string{"If-Match", `"other"`}, 412},
		{"If-Match same", []string{"If-Match", etag}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(s, "/style.css", tt.hdr...)
			if w.Code != tt.status {
				t.Errorf("GET /style.css %v = %d, want %d", tt.hdr, w.Code, tt.status)
			}
			if w.Code == 304 && (w.Body.Len() != 0 || w.Header().Get("ETag") != etag) {
				t.Errorf("304: body %d bytes, ETag %q; want none and %q", w.Body.Len(), w.Header().Get("ETag"), etag)
			}
		})
	}
}

func TestStaticRange(t *testing.T) {
	s := newTestStatic(t, siteDir(t))
	etag := get(s, "/range.txt").Header().Get("ETag")
	tests := []struct {
		rng, ifRange string
		status       int
		body, cr     string
	}{
		{"bytes=0-3", "", 206, "0123", "bytes 0-3/20"},
		{"bytes=10-", "", 206, "abcdefghij", "bytes 10-19/20"},
		{"bytes=-5", "", 206, "fghij", "bytes 15-19/20"},
		{"bytes=5-1000", "", 206, "56789abcdefghij", "bytes 5-19/20"},
		{"bytes=30-40", "", 416, "", "bytes */20"},
		{"bytes=0-3", etag, 206, "0123", "bytes 0-3/20"},
		{"bytes=0-3", `"stale"`, 200, "0123456789abcdefghij", ""},
		{"lines=1-2", "", 200, "0123456789abcdefghij", ""},
	}
	for _, tt := range tests {
		hdr := []string{"Range", tt.rng}
		if tt.ifRange != "" {
			hdr = append(hdr, "If-Range", tt.ifRange)
		}
		w := get(s, "/range.txt", hdr...)
		if w.Code != tt.status {
			t.Errorf("GET Range %s If-Range %s = %d, want %d", tt.rng, tt.ifRange, w.Code, tt.status)
		}
		if tt.status != 416 && w.Body.String() != tt.body {
			t.Errorf("GET Range %s body = %q, want %q", tt.rng, w.Body, tt.body)
		}
		if got := w.Header().Get("Content-Range"); got != tt.cr {
			t.Errorf("GET Range %s Content-Range = %q, want %q", tt.rng, got, tt.cr)
		}
	}
	w := get(s, "/range.txt", "Range", "bytes=0-1,4-5")
	if w.Code != 206 || !strings.HasPrefix(w.Header().Get("Content-Type"), "multipart/byteranges; boundary=") {
		t.Errorf("GET two ranges = %d %q, want 206 multipart/byteranges", w.Code, w.Header().Get("Content-Type"))
	}
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(out)
}

func TestStaticGzip(t *testing.T) {
	s := newTestStatic(t, siteDir(t))
	plain := get(s, "/style.css")
	tests := []struct {
		name, path, accept string
		gzip               bool
	}{
		{"css, gzip", "/style.css", "gzip, deflate, br", true},
		{"css, x-gzip", "/style.css", "x-gzip", true},
		{"css, star", "/style.css", "*", true},
		{"css, gzip q=0", "/style.css", "gzip;q=0, *", false},
		{"css, star then gzip q=0", "/style.css", "*, gzip;q=0", false},
		{"css, identity", "/style.css", "identity", false},
		{"css, none", "/style.css", "", false},
		{"css, br only", "/style.css", "br", false},
		{"small file", "/small.txt", "gzip", false},
		{"png", "/logo.png", "gzip", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(s, tt.path, "Accept-Encoding", tt.accept)
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tt.gzip {
				t.Fatalf("GET %s Accept-Encoding %q: gzip = %v, want %v", tt.path, tt.accept, got, tt.gzip)
			}
			if !tt.gzip {
				return
			}
			if got := gunzip(t, w.Body.Bytes()); got != css {
				t.Errorf("gunzipped body differs from the file")
			}
			if cl := w.Header().Get("Content-Length"); cl != strconvI(w.Body.Len()) {
				t.Errorf("gzip Content-Length = %q, want %d", cl, w.Body.Len())
			}
			if w.Header().Get("ETag") == plain.Header().Get("ETag") {
				t.Errorf("gzip ETag = identity ETag %q, want its own", w.Header().Get("ETag"))
			}
			if w.Header().Get("Vary") != "Accept-Encoding" {
				t.Errorf("gzip Vary = %q", w.Header().Get("Vary"))
			}
			nm := get(s, tt.path, "Accept-Encoding", tt.accept, "If-None-Match", w.Header().Get("ETag"))
			if nm.Code != 304 {
				t.Errorf("If-None-Match with the gzip ETag = %d, want 304", nm.Code)
			}
			rg := get(s, tt.path, "Accept-Encoding", tt.accept, "Range", "bytes=0-9")
			if rg.Code != 206 || rg.Body.Len() != 10 || !bytes.Equal(rg.Body.Bytes(), w.Body.Bytes()[:10]) {
				t.Errorf("Range over gzip = %d, %d bytes, want 206 and the first 10 bytes of the gzip", rg.Code, rg.Body.Len())
			}
		})
	}
}

func TestStaticGzipCacheSeesEdits(t *testing.T) {
	root := siteDir(t)
	s := newTestStatic(t, root)
	get(s, "/style.css", "Accept-Encoding", "gzip")
	edited := strings.Repeat("p { margin: 1em; }\n", 50)
	if err := os.WriteFile(filepath.Join(root, "style.css"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	w := get(s, "/style.css", "Accept-Encoding", "gzip")
	if got := gunzip(t, w.Body.Bytes()); got != edited {
		t.Errorf("after an edit, gzip body = %.40q…, want the new file", got)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		in   []string
		want bool
	}{
		{[]string{"gzip"}, true},
		{[]string{"GZIP;Q=0.5"}, true},
		{[]string{"deflate", "gzip;q=1.0"}, true},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=bad"}, false},
		{[]string{"*;q=0"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.in); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewStaticMissingRoot(t *testing.T) {
	if _, err := newStatic(&config.Static{Root: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Errorf("newStatic(missing dir) = nil error")
	}
}

func strconvI(n int) string { return strconv.Itoa(n) }
