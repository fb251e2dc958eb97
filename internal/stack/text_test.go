package stack

import (
	"strings"
	"testing"
	"time"
)

func fixture() *State {
	return &State{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Front: "127.0.0.1:8080", FrontUp: true, FrontServedBy: "web2",
		Dashboard: "127.0.0.1:9000", ActiveLB: "lb2", Primary: "db2", DBWrites: "127.0.0.1:13300", DBReads: "127.0.0.1:13301",
		LBs: []LBState{{Name: "lb1", Priority: 150, Exit: "killed by SIGKILL"},
			{Name: "lb2", PID: 42, Running: true, Active: true, Priority: 100, AdminUp: true,
				Servers: []ServerHealth{{Backend: "web", Name: "web1", State: "UP"}}}},
		Webs: []WebState{{Name: "web1", PID: 7, Running: true, Healthy: true, RPS: 12.5, Health: "ok"},
			{Name: "web2", PID: 8, Running: true, Health: "database: no primary"}},
		Manager: Manager{Addr: "127.0.0.1:9910", PID: 9, Running: true, Reachable: true, Failovers: 1},
		DB: []DBNode{{Name: "db1", Addr: "127.0.0.1:13306", LagSeconds: -1},
			{Name: "db2", Addr: "127.0.0.1:13307", Running: true, Reachable: true, Role: "primary", LagSeconds: -1},
			{Name: "db3", Addr: "127.0.0.1:13308", Running: true, Reachable: true, Role: "replica", ReadOnly: true, LagSeconds: 2}},
		Events: []Event{{Time: time.Date(2026, 1, 2, 3, 4, 4, 0, time.UTC), Kind: "takeover", Message: "LB takeover: lb2 holds the front address"}},
	}
}

func TestStatusLine(t *testing.T) {
	got := StatusLine(fixture())
	for _, want := range []string{"03:04:05", "site UP via lb2", "web1 UP 12 r/s", "web2 UNHEALTHY", "db1 DEAD", "db2 primary", "db3 replica(lag 2s)", "last: LB takeover"} {
		if !strings.Contains(got, want) {
			t.Errorf("StatusLine() = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("StatusLine() = %q, want one line", got)
	}
}

func TestWriteStatus(t *testing.T) {
	var b strings.Builder
	if err := WriteStatus(&b, fixture(), 5); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"site http://127.0.0.1:8080  UP (answered by web2)",
		"active load balancer: lb2   database primary: db2",
		"lb1", "DEAD", "killed by SIGKILL", "lb2", "ACTIVE", "web/web1 UP",
		"web2", "UNHEALTHY", "database: no primary",
		"manager", "failovers 1", "db3", "replica(lag 2s)",
		"recent events:", "LB takeover",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteStatus() lacks %q:\n%s", want, out)
		}
	}
	if got := fixture().Components(); strings.Join(got, " ") != "lb1 lb2 web1 web2 manager db1 db2 db3 db-primary" {
		t.Errorf("Components() = %v", got)
	}
}
