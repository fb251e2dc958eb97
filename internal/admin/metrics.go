package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fulcrum/internal/lb"
)

// ServerTimes is one server's response-time histogram.
type ServerTimes struct {
	Backend, Server string
	// Bounds are the buckets' upper bounds in seconds, ascending.
	Bounds []float64
	// Counts are the responses per bucket, not cumulative: Counts[i] fell
	// in (Bounds[i-1], Bounds[i]]; one more, last, for those above every
	// bound.
	Counts []uint64
	// Sum is the total of all response times in seconds.
	Sum float64
}

// metricsHandler serves /metrics from a registry of its own: the load
// balancer's collector, Go runtime and process metrics.
func (a *Admin) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&collector{a: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{a}})
}

type slogPrinter struct{ a *Admin }

func (p slogPrinter) Println(v ...any) { p.a.log.Error("metrics", "error", v) }

// collector turns one Status snapshot per scrape into metrics.
type collector struct{ a *Admin }

var _ prometheus.Collector = (*collector)(nil)

// counterSet describes the counters kept alike for frontends, backends and
// servers (HAProxy stats columns in parentheses).
type counterSet struct {
	requests, responses, in, out, connErrs, respErrs, reqErrs, retries, redispatches *prometheus.Desc
}

func newCounterSet(kind string, labels []string) counterSet {
	name := func(n string) string { return "fulcrum_" + kind + "_" + n }
	codeLabels := append(append([]string{}, labels...), "code")
	return counterSet{
		requests:     prometheus.NewDesc(name("requests_total"), "Requests (tcp: connections) handled (stot).", labels, nil),
		responses:    prometheus.NewDesc(name("responses_total"), "HTTP responses by status class: 1xx..5xx, other (hrsp_*).", codeLabels, nil),
		in:           prometheus.NewDesc(name("received_bytes_total"), "Bytes received from clients (bin).", labels, nil),
		out:          prometheus.NewDesc(name("sent_bytes_total"), "Bytes sent to clients (bout).", labels, nil),
		connErrs:     prometheus.NewDesc(name("connection_errors_total"), "Failed connection attempts to servers (econ).", labels, nil),
		respErrs:     prometheus.NewDesc(name("response_errors_total"), "Exchanges a server broke off or answered wrongly (eresp).", labels, nil),
		reqErrs:      prometheus.NewDesc(name("request_errors_total"), "Malformed or aborted client requests (ereq).", labels, nil),
		retries:      prometheus.NewDesc(name("retries_total"), "Connection attempts retried (wretr).", labels, nil),
		redispatches: prometheus.NewDesc(name("redispatches_total"), "Retries sent to another server (wredis).", labels, nil),
	}
}

func (cs counterSet) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cs.requests, cs.responses, cs.in, cs.out, cs.connErrs, cs.respErrs, cs.reqErrs, cs.retries, cs.redispatches} {
		ch <- d
	}
}

// statusClasses names lb.Counts.StatusClasses' entries.
var statusClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (cs counterSet) collect(ch chan<- prometheus.Metric, c lb.Counts, labels ...string) {
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	counter(cs.requests, c.Requests, labels...)
	for i, n := range c.StatusClasses {
		counter(cs.responses, n, append(labels[:len(labels):len(labels)], statusClasses[i])...)
	}
	counter(cs.in, c.BytesIn, labels...)
	counter(cs.out, c.BytesOut, labels...)
	counter(cs.connErrs, c.ConnErrors, labels...)
	counter(cs.respErrs, c.RespErrors, labels...)
	counter(cs.reqErrs, c.ReqErrors, labels...)
	counter(cs.retries, c.Retries, labels...)
	counter(cs.redispatches, c.Redispatches, labels...)
}

var (
	frontendLabels = []string{"frontend"}
	backendLabels  = []string{"backend"}
	serverLabels   = []string{"backend", "server"}

	frontendCounters = newCounterSet("frontend", frontendLabels)
	backendCounters  = newCounterSet("backend", backendLabels)
	serverCounters   = newCounterSet("server", serverLabels)

	descFrontendConns   = prometheus.NewDesc("fulcrum_frontend_current_connections", "Open client connections (scur).", frontendLabels, nil)
	descFrontendParked  = prometheus.NewDesc("fulcrum_frontend_parked_connections", "Idle client connections among the open ones held without a goroutine.", frontendLabels, nil)
	descBackendSessions = prometheus.NewDesc("fulcrum_backend_current_sessions", "Requests (tcp: connections) in flight to the backend's servers (scur).", backendLabels, nil)
	descBackendUp       = prometheus.NewDesc("fulcrum_backend_servers_up", "Servers in state UP, taking traffic.", backendLabels, nil)
	descBackendServers  = prometheus.NewDesc("fulcrum_backend_servers", "Servers in the backend, any state.", backendLabels, nil)
	descServerSessions  = prometheus.NewDesc("fulcrum_server_current_sessions", "Requests (tcp: connections) in flight (scur).", serverLabels, nil)
	descServerState     = prometheus.NewDesc("fulcrum_server_state", "The server's state: 1 for the one it is in (UP, DOWN, DRAIN, MAINT), 0 for the others.", append(serverLabels, "state"), nil)
	descServerUp        = prometheus.NewDesc("fulcrum_server_up", "Whether the server takes new traffic (state UP).", serverLabels, nil)
	descServerWeight    = prometheus.NewDesc("fulcrum_server_weight", "Current weight, 0..256 (weight).", serverLabels, nil)
	descServerCfgWeight = prometheus.NewDesc("fulcrum_server_configured_weight", "Weight from the configuration file.", serverLabels, nil)
	descServerChange    = prometheus.NewDesc("fulcrum_server_last_state_change_timestamp_seconds", "When the server last changed state, Unix time (lastchg).", serverLabels, nil)
	descCheckEnabled    = prometheus.NewDesc("fulcrum_server_check_enabled", "Whether the server's health checks run.", serverLabels, nil)
	descCheckSuccess    = prometheus.NewDesc("fulcrum_server_check_success", "Whether the last health check passed.", serverLabels, nil)
	descCheckDuration   = prometheus.NewDesc("fulcrum_server_check_duration_seconds", "Duration of the last health check (check_duration).", serverLabels, nil)
	descChecks          = prometheus.NewDesc("fulcrum_server_checks_total", "Health checks run.", serverLabels, nil)
	descCheckFailures   = prometheus.NewDesc("fulcrum_server_check_failures_total", "Failed health checks (chkfail).", serverLabels, nil)
	descCheckDowns      = prometheus.NewDesc("fulcrum_server_check_down_transitions_total", "Transitions from UP to DOWN by health checks (chkdown).", serverLabels, nil)
	descFrontendDenied  = prometheus.NewDesc("fulcrum_frontend_denied_total", "Requests (tcp: connections) an ACL denied.", frontendLabels, nil)
	descFrontendLimited = prometheus.NewDesc("fulcrum_frontend_rate_limited_total", "Requests or connections refused over a per-client limit.", frontendLabels, nil)
	descFrontendTLSErrs = prometheus.NewDesc("fulcrum_frontend_tls_handshake_failures_total", "Failed TLS handshakes.", frontendLabels, nil)
	descResponseTime    = prometheus.NewDesc("fulcrum_server_response_time_seconds", "Time from sending the request to the server to the end of its response.", serverLabels, nil)

	serverStates = []string{"UP", "DOWN", "DRAIN", "MAINT"}
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	frontendCounters.describe(ch)
	backendCounters.describe(ch)
	serverCounters.describe(ch)
	for _, d := range []*prometheus.Desc{
		descFrontendConns, descFrontendParked, descBackendSessions, descBackendUp, descBackendServers,
		descServerSessions, descServerState, descServerUp, descServerWeight, descServerCfgWeight, descServerChange,
		descCheckEnabled, descCheckSuccess, descCheckDuration, descChecks, descCheckFailures,
		descCheckDowns, descResponseTime, descFrontendDenied, descFrontendLimited, descFrontendTLSErrs,
	} {
		ch <- d
	}
	for _, d := range vrrpDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	if c.a.opts.VRRP != nil {
		collectVRRP(ch, vrrpView(c.a.opts.VRRP()))
	}
	st := c.a.opts.LB.Status()
	for _, f := range st.Frontends {
		frontendCounters.collect(ch, f.Counts, f.Name)
		gauge(descFrontendConns, float64(f.Conns), f.Name)
		gauge(descFrontendParked, float64(f.Parked), f.Name)
		counter(descFrontendDenied, f.Counts.Denied, f.Name)
		counter(descFrontendLimited, f.Counts.RateLimited, f.Name)
		counter(descFrontendTLSErrs, f.Counts.TLSErrors, f.Name)
	}
	for _, b := range st.Backends {
		backendCounters.collect(ch, b.Counts, b.Name)
		var sessions int64
		for _, s := range b.Servers {
			sessions += s.Active
		}
		gauge(descBackendSessions, float64(sessions), b.Name)
		gauge(descBackendUp, float64(b.Up), b.Name)
		gauge(descBackendServers, float64(len(b.Servers)), b.Name)
		for _, s := range b.Servers {
			serverCounters.collect(ch, s.Counts, b.Name, s.Name)
			gauge(descServerSessions, float64(s.Active), b.Name, s.Name)
			for _, state := range serverStates {
				gauge(descServerState, b2f(s.State == state), b.Name, s.Name, state)
			}
			gauge(descServerUp, b2f(s.State == "UP"), b.Name, s.Name)
			gauge(descServerWeight, float64(s.Weight), b.Name, s.Name)
			gauge(descServerCfgWeight, float64(s.ConfigWeight), b.Name, s.Name)
			if !s.LastChange.IsZero() {
				gauge(descServerChange, float64(s.LastChange.UnixNano())/1e9, b.Name, s.Name)
			}
			if ck := s.Check; ck != nil {
				gauge(descCheckEnabled, b2f(ck.Enabled), b.Name, s.Name)
				gauge(descCheckSuccess, b2f(ck.LastOK), b.Name, s.Name)
				gauge(descCheckDuration, ck.LastDuration.Seconds(), b.Name, s.Name)
				counter(descChecks, ck.Checks, b.Name, s.Name)
				counter(descCheckFailures, ck.Failures, b.Name, s.Name)
				counter(descCheckDowns, ck.DownTransitions, b.Name, s.Name)
			}
		}
	}
	if c.a.opts.ResponseTimes != nil {
		for _, t := range c.a.opts.ResponseTimes() {
			if h, ok := constHistogram(t); ok {
				ch <- h
			}
		}
	}
}

// constHistogram turns t into a Prometheus histogram (cumulative buckets);
// ok is false when t is malformed.
func constHistogram(t ServerTimes) (prometheus.Metric, bool) {
	if len(t.Counts) != len(t.Bounds)+1 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(t.Bounds))
	var cum uint64
	for i, b := range t.Bounds {
		cum += t.Counts[i]
		buckets[b] = cum
	}
	cum += t.Counts[len(t.Bounds)]
	m, err := prometheus.NewConstHistogram(descResponseTime, cum, t.Sum, buckets, t.Backend, t.Server)
	return m, err == nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
