package admin

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"fulcrum/internal/testenv"
)

// TestDeployFiles checks the shipped Prometheus configuration and Grafana
// dashboard: promtool accepts the configuration, the alert rules and every
// dashboard query, and each fulcrum_ metric they name is one /metrics
// exports.
func TestDeployFiles(t *testing.T) {
	testenv.Short(t)
	promtool := testenv.Program(t, "promtool")[0]
	promtoolOK := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	promtoolOK("check", "config", "../../deploy/prometheus/prometheus.yml")

	raw, err := os.ReadFile("../../deploy/grafana/fulcrum-lb.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("fulcrum-lb.json: %v", err)
	}
	// Dashboard queries as recording rules, the one way promtool parses
	// bare PromQL.
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			e := strings.NewReplacer("$instance", ".*", "$backend", ".*").Replace(tg.Expr)
			exprs = append(exprs, e)
			fmt.Fprintf(&rules, "      - record: dashboard:query\n        expr: %q\n", e)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d queries, want its panels' queries", len(exprs))
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtoolOK("check", "rules", file)

	alerts, err := os.ReadFile("../../deploy/prometheus/fulcrum-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAdmin(t, withTimes)
	exported := scrape(t, a)
	names := regexp.MustCompile(`fulcrum_[a-z_]+`)
	for _, src := range append(exprs, string(alerts)) {
		for _, n := range names.FindAllString(src, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			if !strings.Contains(exported, "# TYPE "+base+" ") {
				t.Errorf("%s is queried but /metrics has no %s", n, base)
			}
		}
	}
}
