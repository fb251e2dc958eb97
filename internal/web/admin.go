package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is a snapshot of the server, for `fulcrum status` and the
// dashboard.
type Status struct {
	Name string `json:"name"`
	// Addr is the address the server listens on ("" before Serve).
	Addr string `json:"addr"`
	// Healthy and Health are what /healthz answers.
	Healthy bool   `json:"healthy"`
	Health  string `json:"health"`
	// DBPrimary is the database primary the router knows ("" without a
	// database or when none is known).
	DBPrimary string    `json:"db_primary,omitempty"`
	Requests  uint64    `json:"requests"`
	Responses Responses `json:"responses"`
	InFlight  int64     `json:"in_flight"`
	Started   time.Time `json:"started"`
}

// Responses counts responses by status class.
type Responses struct {
	Informational uint64 `json:"1xx"`
	Success       uint64 `json:"2xx"`
	Redirect      uint64 `json:"3xx"`
	ClientError   uint64 `json:"4xx"`
	ServerError   uint64 `json:"5xx"`
}

// Status returns a snapshot of the server.
func (s *Server) Status() Status {
	ok, msg := s.health()
	st := s.Stats()
	out := Status{
		Name: s.cfg.Name, Healthy: ok, Health: msg,
		Requests: st.Requests, InFlight: st.InFlight, Started: s.created,
		Responses: Responses{st.ByClass[1], st.ByClass[2], st.ByClass[3], st.ByClass[4], st.ByClass[5]},
	}
	if a := s.addr.Load(); a != nil {
		out.Addr = *a
	}
	if s.primary != nil {
		out.DBPrimary, _ = s.primary()
	}
	return out
}

// AdminHandler serves GET /status (the Status as JSON) and GET /metrics
// (Prometheus, prefixed fulcrum_web_). Serve runs it on the configured
// admin address; a program embedding the server may mount it elsewhere.
func (s *Server) AdminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{s: s}, s.durations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.MarshalIndent(s.Status(), "", "  ")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(append(b, '\n'))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	return mux
}

// newDurations is the histogram of response times, labelled with the
// server's name.
func newDurations(name string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "fulcrum_web_request_duration_seconds",
		Help:        "Time from a request's arrival to the end of its response.",
		ConstLabels: prometheus.Labels{"server": name},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
}

// collector turns the counters into metrics at scrape time.
type collector struct{ s *Server }

var _ prometheus.Collector = (*collector)(nil)

var (
	descRequests  = prometheus.NewDesc("fulcrum_web_requests_total", "Requests answered.", []string{"server"}, nil)
	descResponses = prometheus.NewDesc("fulcrum_web_responses_total", "Responses by status class.", []string{"server", "code"}, nil)
	descInFlight  = prometheus.NewDesc("fulcrum_web_in_flight_requests", "Requests being answered.", []string{"server"}, nil)
	descHealthy   = prometheus.NewDesc("fulcrum_web_healthy", "1 when /healthz answers 200.", []string{"server"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descResponses, descInFlight, descHealthy} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	name := c.s.cfg.Name
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(st.Requests), name)
	for i, code := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(st.ByClass[i+1]), name, code)
	}
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), name)
	healthy := 0.0
	if ok, _ := c.s.health(); ok {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, name)
}
