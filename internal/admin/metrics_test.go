package admin

import (
	"net/netip"

	"bytes"
	"fulcrum/internal/vrrp"
	"os/exec"
	"strings"
	"testing"

	"fulcrum/internal/testenv"
)

func scrape(t *testing.T, a *Admin) string {
	t.Helper()
	code, body := do(t, a, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics = %d, want 200: %s", code, body)
	}
	return body
}

func withTimes(o *Options) {
	o.VRRP = func() []vrrp.Status {
		return []vrrp.Status{{VRID: 51, State: vrrp.Master, Priority: 150, EffectivePriority: 150,
			Master: netip.MustParseAddrPort("192.0.2.11:0"), Transitions: 2, AdvertsSent: 40, AdvertsReceived: 3}}
	}
	o.ResponseTimes = func() []ServerTimes {
		return []ServerTimes{
			{Backend: "web", Server: "web1", Bounds: []float64{0.005, 0.05, 0.5}, Counts: []uint64{500, 90, 9, 1}, Sum: 4.2},
			{Backend: "web", Server: "bad", Bounds: []float64{0.005}, Counts: []uint64{1}}, // malformed: left out
		}
	}
}

func TestMetricsValues(t *testing.T) {
	a, _ := newTestAdmin(t, withTimes)
	out := scrape(t, a)
	for _, want := range []string{
		`fulcrum_vrrp_state{state="master",vrid="51"} 1`,
		`fulcrum_vrrp_state{state="backup",vrid="51"} 0`,
		`fulcrum_vrrp_adverts_sent_total{vrid="51"} 40`,
		`fulcrum_vrrp_master_info{master="192.0.2.11",vrid="51"} 1`,
		`fulcrum_server_state{backend="web",server="web2",state="DOWN"} 1`,
		`fulcrum_server_state{backend="web",server="web2",state="UP"} 0`,
		`fulcrum_server_state{backend="api",server="api1",state="DRAIN"} 1`,
		`fulcrum_server_state{backend="api",server="api2",state="MAINT"} 1`,
		`fulcrum_server_up{backend="web",server="web2"} 0`,
		`fulcrum_server_responses_total{backend="web",code="2xx",server="web1"} 600`,
		`fulcrum_server_requests_total{backend="web",server="web1"} 600`,
		`fulcrum_server_received_bytes_total{backend="web",server="web1"} 72000`,
		`fulcrum_server_sent_bytes_total{backend="web",server="web1"} 1.2288e+06`,
		`fulcrum_server_current_sessions{backend="web",server="web1"} 2`,
		`fulcrum_server_weight{backend="web",server="web1"} 100`,
		`fulcrum_server_check_failures_total{backend="web",server="web2"} 7`,
		`fulcrum_server_check_duration_seconds{backend="web",server="web1"} 0.0015`,
		`fulcrum_backend_servers_up{backend="web"} 1`,
		`fulcrum_backend_responses_total{backend="web",code="2xx"} 800`,
		`fulcrum_frontend_current_connections{frontend="www"} 3`,
		`fulcrum_frontend_parked_connections{frontend="www"} 2`,
		`fulcrum_frontend_requests_total{frontend="www"} 800`,
		`fulcrum_server_response_time_seconds_bucket{backend="web",server="web1",le="0.05"} 590`,
		`fulcrum_server_response_time_seconds_bucket{backend="web",server="web1",le="+Inf"} 600`,
		`fulcrum_server_response_time_seconds_sum{backend="web",server="web1"} 4.2`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(out, `server="bad"`) {
		t.Error("/metrics has a malformed histogram")
	}
	if strings.Contains(out, `fulcrum_server_check_enabled{backend="api",server="api2"}`) {
		t.Error("/metrics has check metrics for api/api2, which has no checks")
	}
}

// TestPromtool validates /metrics with Prometheus's own linter.
func TestPromtool(t *testing.T) {
	testenv.Short(t)
	promtool := testenv.Program(t, "promtool")[0]
	a, f := newTestAdmin(t, withTimes)
	a.sample()
	f.serve("web", "web1", 5)
	a.sample()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(t, a))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
	if s := strings.TrimSpace(out.String()); s != "" {
		t.Errorf("promtool check metrics printed:\n%s", s)
	}
}
