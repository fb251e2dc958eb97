package dbha

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestSemiSyncFallbackAndAdminAPI stops semi-sync acknowledgements (no
// replica IO thread), so that a commit times out into asynchronous mode,
// and checks that status, events and /metrics say so; then that the API
// serves status and refuses a bad switchover.
func TestSemiSyncFallbackAndAdminAPI(t *testing.T) {
	l := startCluster(t, 3)
	m := testManager(t, l, nil)
	waitFor(t, 5*time.Second, "primary db1", func() bool { return m.Status().Primary == "db1" })
	if hasEvent(m.Status(), "semi-sync", "db1", "fell back") {
		t.Errorf("fallback reported on an idle primary: %+v", m.Status().Events)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	adm1 := adminDB(t, l, "db1")
	for _, q := range []string{"SET GLOBAL rpl_semi_sync_master_timeout=200"} {
		if _, err := adm1.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"db2", "db3"} {
		if _, err := adminDB(t, l, n).Exec("STOP SLAVE IO_THREAD"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm1.Exec("CREATE DATABASE fallback"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "fallback reported", func() bool {
		n := nodeStatus(m.Status(), "db1")
		return n.SemiSyncMasterEnabled && !n.SemiSyncMasterActive && n.SemiSyncNoTx > 0 &&
			hasEvent(m.Status(), "semi-sync", "db1", "fell back to asynchronous")
	})
	fams := scrape(t, srv.URL+"/metrics")
	if v := gauge(fams, "fulcrum_db_semisync_master_active", "db1"); v != 0 {
		t.Errorf("fulcrum_db_semisync_master_active{node=db1} = %v, want 0", v)
	}
	if v := gauge(fams, "fulcrum_db_semisync_master_fallback", "db1"); v != 1 {
		t.Errorf("fulcrum_db_semisync_master_fallback{node=db1} = %v, want 1", v)
	}
	if v := gauge(fams, "fulcrum_db_semisync_master_no_tx", "db1"); v < 1 {
		t.Errorf("fulcrum_db_semisync_master_no_tx{node=db1} = %v, want ≥ 1", v)
	}
	if v := gauge(fams, "fulcrum_db_node_role", "db1", "primary"); v != 1 {
		t.Errorf("fulcrum_db_node_role{node=db1,role=primary} = %v, want 1", v)
	}
	for _, n := range []string{"db2", "db3"} {
		if _, err := adminDB(t, l, n).Exec("START SLAVE IO_THREAD"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "semi-sync back", func() bool {
		if _, err := adm1.Exec("CREATE DATABASE IF NOT EXISTS fallback2"); err != nil {
			return false
		}
		return nodeStatus(m.Status(), "db1").SemiSyncMasterActive
	})
	for _, name := range []string{"fulcrum_db_failovers_total", "fulcrum_db_replication_lag_seconds",
		"fulcrum_db_replication_lag_transactions", "fulcrum_db_replication_io_running",
		"fulcrum_db_replication_sql_running", "fulcrum_db_last_failover_duration_seconds"} {
		if _, ok := scrape(t, srv.URL+"/metrics")[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.Primary != "db1" || len(s.Nodes) != 3 {
		t.Errorf("GET /status: primary %q, %d nodes; want db1, 3", s.Primary, len(s.Nodes))
	}
	for _, tt := range []struct {
		to   string
		code int
		msg  string
	}{
		{"", http.StatusBadRequest, "to=NODE"},
		{"db9", http.StatusConflict, `no node "db9"`},
		{"db1", http.StatusConflict, "already the primary"},
	} {
		resp, err := http.Post(srv.URL+"/switchover?to="+tt.to, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.msg) {
			t.Errorf("POST /switchover?to=%s = %d %q, want %d containing %q", tt.to, resp.StatusCode, body, tt.code, tt.msg)
		}
	}
	var b strings.Builder
	if err := m.Status().WriteText(&b, 5); err != nil || !strings.Contains(b.String(), "db1") {
		t.Errorf("WriteText() = %v:\n%s", err, b.String())
	}
}

type promFamily = dto.MetricFamily

func scrape(t *testing.T, url string) map[string]*promFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]*promFamily{}
	for k, v := range fams {
		out[k] = v
	}
	return out
}

// gauge returns the value of the sample of name whose label values are
// labels (node first, then role), or -1.
func gauge(fams map[string]*promFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		ok := true
		for _, lp := range m.GetLabel() {
			want := ""
			switch lp.GetName() {
			case "node":
				want = labels[0]
			case "role":
				if len(labels) > 1 {
					want = labels[1]
				}
			}
			if want != "" && lp.GetValue() != want {
				ok = false
			}
		}
		if ok {
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
		}
	}
	return -1
}
