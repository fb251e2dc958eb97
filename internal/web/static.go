package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"

	"fulcrum/internal/config"
)

// static serves the files under one directory: conditional requests (ETag,
// Last-Modified), ranges and HEAD through http.ServeContent; gzip for
// compressible types; index.html for a directory, never a listing.
//
// Paths are opened through an os.Root, so neither "..", nor an encoded
// slash, nor a symbolic link can reach a file outside the directory
// (https://go.dev/blog/osroot). Names starting with a dot are not served.
type static struct {
	root         *os.Root
	cacheControl string // "" sends none
	gzip         *gzipCache
}

// newStatic opens cfg.Root; it fails when the directory does not exist.
func newStatic(cfg *config.Static) (*static, error) {
	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("static root %s: not a directory", cfg.Root)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static root: %w", err)
	}
	s := &static{root: root, cacheControl: cfg.CacheControl}
	if s.cacheControl == "none" {
		s.cacheControl = ""
	}
	if cfg.GzipOn() {
		s.gzip = newGzipCache(gzipCacheBytes)
	}
	return s, nil
}

func (s *static) Close() error { return s.root.Close() }

// fsName maps a request path to a name inside the root, or reports false
// for a path that must not be served: one with a "..", ".", dot-file or
// empty-after-decoding segment, a backslash or a NUL.
func fsName(urlPath string) (string, bool) {
	if !strings.HasPrefix(urlPath, "/") || strings.ContainsAny(urlPath, "\\\x00") {
		return "", false
	}
	var segs []string
	for seg := range strings.SplitSeq(urlPath[1:], "/") {
		switch {
		case seg == "":
			// "a//b" and the trailing slash of a directory.
		case strings.HasPrefix(seg, "."):
			return "", false
		default:
			segs = append(segs, seg)
		}
	}
	if len(segs) == 0 {
		return ".", true
	}
	return strings.Join(segs, "/"), true
}

func (s *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := fsName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, fi, err := s.open(name)
	if err != nil {
		s.openError(w, r, err)
		return
	}
	defer f.Close()
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			// Relative links in the index resolve against the directory.
			target := path.Base(r.URL.Path) + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		idx, ifi, err := s.open(path.Join(name, "index.html"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				http.Error(w, "403 forbidden: directory listing is disabled", http.StatusForbidden)
				return
			}
			s.openError(w, r, err)
			return
		}
		defer idx.Close()
		f, fi, name = idx, ifi, path.Join(name, "index.html")
	} else if strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	if !fi.Mode().IsRegular() {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	s.serveFile(w, r, name, f, fi)
}

func (s *static) open(name string) (*os.File, fs.FileInfo, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// openError answers 403 for a file the server may not read and 404 for
// everything else, including a path that escapes the root: what lies
// outside is nobody's business.
func (s *static) openError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrPermission) {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	http.NotFound(w, r)
}

func (s *static) serveFile(w http.ResponseWriter, r *http.Request, name string, f *os.File, fi fs.FileInfo) {
	if rg := r.Header.Get("Range"); rg != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(rg)), "bytes=") {
		// An unknown range unit is ignored, not refused (RFC 9110, section
		// 14.2); http.ServeContent would answer 416.
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Range")
		r = &r2
	}
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		var buf [512]byte
		n, _ := io.ReadFull(f, buf[:])
		ctype = http.DetectContentType(buf[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			http.Error(w, "500 internal error", http.StatusInternalServerError)
			return
		}
	}
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
	// The validator of a file is its modification time and size, like
	// nginx's; each encoding is its own representation with its own ETag
	// (RFC 9110, section 8.8.3).
	etag := fmt.Sprintf(`"%x-%x`, fi.ModTime().UnixNano(), fi.Size())
	if s.gzip != nil && compressible(ctype) && fi.Size() >= gzipMinSize && fi.Size() <= gzipMaxSize {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			gz, err := s.gzip.get(name, fi, f)
			if err == nil && int64(len(gz)) < fi.Size() {
				h.Set("Content-Encoding", "gzip")
				h.Set("ETag", etag+`-gzip"`)
				http.ServeContent(lengthWriter{w, len(gz)}, r, name, fi.ModTime(), bytes.NewReader(gz))
				return
			}
		}
	}
	h.Set("ETag", etag+`"`)
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// lengthWriter sets Content-Length on a full 200 response, which
// http.ServeContent leaves out once Content-Encoding is set; without it a
// large compressed body would go out chunked.
type lengthWriter struct {
	http.ResponseWriter
	n int
}

func (lw lengthWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		lw.Header().Set("Content-Length", fmt.Sprint(lw.n))
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw lengthWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }
