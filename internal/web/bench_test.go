package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"fulcrum/internal/config"
)

// benchServe measures the whole handler chain (X-Served-By, counters,
// mux, static) for one request, without the network.
func benchServe(b *testing.B, target string, hdr ...string) {
	s, err := New(&config.Web{Name: "web1", Listen: "127.0.0.1:0", AccessLog: new(false),
		Static: &config.Static{Root: siteDir(b)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.closeStatic()
	h := s.Handler()
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusNotModified {
			b.Fatalf("GET %s = %d", target, w.Code)
		}
	}
}

func BenchmarkStatic(b *testing.B)     { benchServe(b, "/style.css") }
func BenchmarkStaticGzip(b *testing.B) { benchServe(b, "/style.css", "Accept-Encoding", "gzip") }
func BenchmarkStaticNotModified(b *testing.B) {
	benchServe(b, "/range.txt", "If-Modified-Since", "Mon, 01 Jan 2046 00:00:00 GMT")
}
