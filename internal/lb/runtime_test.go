package lb

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// counting starts a backend that counts its requests.
func counting(t *testing.T, name string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("X-Server", name)
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String(), &n
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Server")
}

func TestRuntimeChanges(t *testing.T) {
	a1, _ := counting(t, "web1")
	a2, _ := counting(t, "web2")
	a3, _ := counting(t, "web3")
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web, access_log: false}]
backends:
  - name: web
    servers: [{name: web1, address: "%s"}, {name: web2, address: "%s"}]
`, a1, a2))
	url := "http://" + l.Addrs("www")[0].String() + "/"
	c := &http.Client{}
	count := func(n int) map[string]int {
		m := map[string]int{}
		for i := 0; i < n; i++ {
			m[get(t, c, url)]++
		}
		return m
	}
	// A weight change holds exactly over every full cycle (3+1).
	if err := l.SetWeight("web", "web1", "3"); err != nil {
		t.Fatal(err)
	}
	for cycle := 0; cycle < 5; cycle++ {
		if m := count(4); m["web1"] != 3 || m["web2"] != 1 {
			t.Errorf("cycle %d after weight 3: %v, want web1:3 web2:1", cycle, m)
		}
	}
	if err := l.SetWeight("web", "web1", "300%"); err != nil { // 3 × 1 configured
		t.Fatal(err)
	}
	if got := l.Status().Backends[0].Servers[0].Weight; got != 3 {
		t.Errorf("weight after 300%% = %d, want 3 (percent of the configured weight 1)", got)
	}
	// drain and maint take a server out; ready brings it back.
	for _, st := range []string{StateDrain, StateMaint} {
		if err := l.SetState("web", "web1", st); err != nil {
			t.Fatal(err)
		}
		if m := count(4); m["web1"] != 0 {
			t.Errorf("in %s, web1 got %d requests, want 0", st, m["web1"])
		}
	}
	if got := l.Status().Backends[0].Servers[0].State; got != "MAINT" {
		t.Errorf("state = %s, want MAINT", got)
	}
	if err := l.SetState("web", "web1", StateReady); err != nil {
		t.Fatal(err)
	}
	// add-server starts in maint; ready gives it traffic; del needs maint.
	if err := l.AddServer("web", "web3", a3, 1); err != nil {
		t.Fatal(err)
	}
	if m := count(8); m["web3"] != 0 {
		t.Errorf("new server in maint got %d requests, want 0", m["web3"])
	}
	l.SetState("web", "web3", StateReady)
	if m := count(10); m["web3"] == 0 {
		t.Errorf("web3 got no request once ready: %v", m)
	}
	if err := l.DelServer("web", "web3"); !errors.Is(err, ErrInvalid) {
		t.Errorf("DelServer(ready server) = %v, want ErrInvalid", err)
	}
	l.SetState("web", "web3", StateMaint)
	if err := l.DelServer("web", "web3"); err != nil {
		t.Errorf("DelServer(maint server) = %v", err)
	}
	if m := count(8); m["web3"] != 0 {
		t.Errorf("deleted server got %d requests", m["web3"])
	}
	// Errors name what was wrong and change nothing.
	errCases := []struct {
		err  error
		want error
	}{
		{l.SetWeight("web", "nope", "1"), ErrNotFound},
		{l.SetWeight("nope", "web1", "1"), ErrNotFound},
		{l.SetWeight("web", "web1", "257"), ErrInvalid},
		{l.SetWeight("web", "web1", "x"), ErrInvalid},
		{l.SetState("web", "web1", "sleepy"), ErrInvalid},
		{l.AddServer("web", "web1", a3, 1), ErrInvalid},
		{l.AddServer("web", "web9", "nohost", 1), ErrInvalid},
		{l.ForceHealth("web", "web1", false), ErrInvalid}, // no checks configured
	}
	for i, ec := range errCases {
		if !errors.Is(ec.err, ec.want) {
			t.Errorf("case %d: error = %v, want %v", i, ec.err, ec.want)
		}
	}
	if got := l.Status().Backends[0].Servers[0].Weight; got != 3 {
		t.Errorf("weight after rejected changes = %d, want 3", got)
	}
}

// Acceptance: 20 reloads under load, alternating configurations that add
// and remove a server: no request fails, and the removed server gets no new
// request a second after the reload.
func TestReloadUnderLoad(t *testing.T) {
	testenv.Short(t)
	a1, _ := counting(t, "web1")
	a2, _ := counting(t, "web2")
	a3, n3 := counting(t, "web3")
	yaml := func(extra string) string {
		return fmt.Sprintf(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web, access_log: false}]
backends:
  - name: web
    health: {type: tcp, interval: 200ms}
    servers:
      - {name: web1, address: "%s"}
      - {name: web2, address: "%s"}
%s`, a1, a2, extra)
	}
	parse := func(y string) *config.LB {
		c, err := config.ParseLB("reload.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	with3 := parse(yaml(fmt.Sprintf(`      - {name: web3, address: "%s"}`, a3)))
	without3 := parse(yaml(""))
	l := startLB(t, yaml(""))
	url := "http://" + l.Addrs("www")[0].String() + "/"

	load := (&testenv.Load{URL: url}).Start()
	for i := 0; i < 20; i++ {
		next := with3
		if i%2 == 1 {
			next = without3
		}
		if err := l.Reload(next); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(150 * time.Millisecond)
		if next == without3 {
			time.Sleep(time.Second)
			before := n3.Load()
			time.Sleep(300 * time.Millisecond)
			if after := n3.Load(); after != before {
				t.Errorf("reload %d: removed server web3 got %d requests more than a second after", i, after-before)
			}
		}
	}
	load.Stop()
	sent, failed, first := load.Result()
	if failed != 0 {
		t.Errorf("%d of %d requests failed across 20 reloads (first: %v)", failed, sent, first)
	}
	if n3.Load() == 0 {
		t.Errorf("web3 never got traffic while configured")
	}
	t.Logf("%d requests across 20 reloads, %d failed", sent, failed)
}

// An invalid reload changes nothing: a bind that fails leaves the old
// listeners serving.
func TestReloadBindFailureKeepsRunning(t *testing.T) {
	a1, _ := counting(t, "web1")
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web, access_log: false}]
backends: [{name: web, servers: [{name: web1, address: "%s"}]}]
`, a1))
	busy := l.Addrs("www")[0].String()
	next, err := config.ParseLB("x.yaml", []byte(fmt.Sprintf(`
frontends:
  - {name: www, bind: ["127.0.0.1:0"], default_backend: web}
  - {name: other, bind: ["%s"], default_backend: web}
backends: [{name: web, servers: [{name: web1, address: "%s"}, {name: web2, address: "%s"}]}]
`, busy, a1, a1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(next); err == nil {
		t.Fatal("Reload with an address in use = nil error")
	}
	if got := len(l.Status().Backends[0].Servers); got != 1 {
		t.Errorf("servers after a failed reload = %d, want 1", got)
	}
	if got := get(t, &http.Client{}, "http://"+busy+"/"); got != "web1" {
		t.Errorf("served by %q after failed reload, want web1", got)
	}
}

func TestResponseTimeHistogram(t *testing.T) {
	a1, n1 := counting(t, "web1")
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web, access_log: false}]
backends: [{name: web, servers: [{name: web1, address: "%s"}]}]
`, a1))
	c := &http.Client{}
	for i := 0; i < 25; i++ {
		get(t, c, "http://"+l.Addrs("www")[0].String()+"/")
	}
	// A response is timed once it has been sent, so the last one may be
	// recorded a moment after the client has it.
	var counts Counts
	var sum uint64
	for try := 0; try < 100; try++ {
		counts = l.Status().Backends[0].Servers[0].Counts
		sum = 0
		for _, n := range counts.ResponseTimes {
			sum += n
		}
		if sum == uint64(n1.Load()) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if sum != uint64(n1.Load()) || len(counts.ResponseTimes) != len(TimeBounds())+1 {
		t.Errorf("histogram holds %d responses in %d buckets, want %d in %d", sum, len(counts.ResponseTimes), n1.Load(), len(TimeBounds())+1)
	}
	if counts.TimeTotal <= 0 {
		t.Errorf("TimeTotal = %v, want > 0", counts.TimeTotal)
	}
}
