package admin

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"fulcrum/internal/lb"
)

// bigFake has 10 backends of 20 servers, with a sampled minute of rates.
func bigFake(b *testing.B) *Admin {
	f := &fakeLB{front: lb.FrontendStatus{Name: "www", Mode: "http"}}
	for i := range 10 {
		fb := &fakeBackend{name: fmt.Sprintf("be%d", i)}
		for j := range 20 {
			fb.servers = append(fb.servers, &fakeServer{name: fmt.Sprintf("s%d", j), addr: "127.0.0.1:1",
				admin: lb.StateReady, healthy: true, checks: true, weight: 1, cfg: 1})
		}
		f.backends = append(f.backends, fb)
	}
	a := New(Options{LB: f, Addr: "127.0.0.1:9900"})
	for k := range 60 {
		for _, fb := range f.backends {
			for _, s := range fb.servers {
				s.requests += uint64(k)
			}
		}
		a.rates.sample(fakeEpoch.Add(time.Duration(k)*time.Second), f.Status())
	}
	return a
}

func benchGET(b *testing.B, path string) {
	a := bigFake(b)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		r := httptest.NewRequest("GET", "http://127.0.0.1:9900"+path, nil)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("GET %s = %d", path, w.Code)
		}
		n = w.Body.Len()
	}
	b.ReportMetric(float64(n), "bytes/answer")
}

// The cost of one stats-page refresh and one Prometheus scrape for 200
// servers.
func BenchmarkStatus200Servers(b *testing.B)  { benchGET(b, "/api/status") }
func BenchmarkMetrics200Servers(b *testing.B) { benchGET(b, "/metrics") }

// The sampler's cost per tick for 200 servers.
func BenchmarkSample200Servers(b *testing.B) {
	a := bigFake(b)
	st := a.opts.LB.Status()
	now := fakeEpoch.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		a.rates.sample(now, st)
	}
}
