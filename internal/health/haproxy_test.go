package health

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

// TestStateMachineMatchesHAProxy replays one sequence of check results on
// haproxy (its checks hit a server answering 200 or 500 as scripted) and on
// a Monitor, and compares the state after every check ("UP", "UP 2/3",
// "DOWN 1/2", ...), the interval before the next check (inter, fastinter or
// downinter, told apart by haproxy's timing) and the chkfail and chkdown
// counters.
func TestStateMachineMatchesHAProxy(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "haproxy")[0]

	const (
		rise, fall = 2, 3
		warmup     = 2 // passes that take haproxy from its initial health (rise) to fully UP
		// Far enough apart to tell which one haproxy waited.
		inter, fastinter, downinter = 500 * time.Millisecond, 150 * time.Millisecond, time.Second
	)
	// true: the check passes.
	script := []bool{
		false, true, false, false, true, // dips, recovers
		false, false, false, false, // down, stays down
		true, false, true, true, // rises, falls back, rises
		true, false, false, true, // dips twice, recovers
		false, false, false, true, true, // down, up
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	var (
		mu       sync.Mutex
		requests int
		statuses []string    // statuses[i]: haproxy's state after script[i]
		arrivals []time.Time // of the checks of script
		answers  []time.Time // when the handler answered them
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		n := requests - warmup // index in script of this check
		requests++
		if n >= 0 && n < len(script) {
			arrivals = append(arrivals, time.Now())
			// haproxy counts an interval from the end of a check.
			defer func() { answers = append(answers, time.Now()) }()
		}
		if n > 0 && n <= len(script) {
			st, err := haproxyStat(sock)
			if err != nil {
				t.Errorf("show stat before check %d: %v", n, err)
			}
			statuses = append(statuses, st["status"])
		}
		if n >= 0 && n < len(script) && !script[n] {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)

	cfg := fmt.Sprintf(`global
	stats socket %s level admin
defaults
	mode http
	timeout connect 1s
	timeout client 5s
	timeout server 5s
	timeout check 5s
backend b
	option httpchk GET /
	server s1 %s check inter %d fastinter %d downinter %d rise %d fall %d
`, sock, srv.Listener.Addr(), inter.Milliseconds(), fastinter.Milliseconds(), downinter.Milliseconds(), rise, fall)
	exited := startHAProxy(t, bin, dir, cfg)
	var counters map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("haproxy exited early")
		default:
		}
		mu.Lock()
		done := len(statuses) == len(script)
		mu.Unlock()
		if done {
			var err error
			if counters, err = haproxyStat(sock); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy ran %d of %d checks in 30s", len(statuses), len(script))
		}
	}

	// The same on a Monitor, which starts fully UP: the warmup passes change
	// nothing there.
	clk := newFakeClock()
	chk := newScripted()
	m := NewMonitor(Config{Interval: inter, FastInterval: fastinter, DownInterval: downinter, Rise: rise, Fall: fall}, chk, clk, nil)
	chk.results <- nil
	run(t, m)
	clk.waitTimer(t, inter)
	for range warmup - 1 {
		chk.results <- nil
		clk.fire(t)
		clk.waitTimer(t, inter)
	}
	var got []string
	var gotNext []time.Duration
	for _, pass := range script {
		var err error
		if !pass {
			err = errBoom
		}
		chk.results <- err
		clk.fire(t)
		gotNext = append(gotNext, clk.waitAnyTimer(t))
		got = append(got, m.Status())
	}
	mu.Lock()
	want := statuses
	var gaps []time.Duration // from the answer to a check to the next check
	for i := 1; i < len(arrivals); i++ {
		gaps = append(gaps, arrivals[i].Sub(answers[i-1]).Round(time.Millisecond))
	}
	mu.Unlock()
	for i := range script {
		if got[i] != want[i] {
			t.Errorf("after check %d (pass %v): Status() = %q, want %q (haproxy)\nfulcrum: %q\nhaproxy: %q",
				i, script[i], got[i], want[i], got, want)
			break
		}
	}
	// haproxy never checks before its interval is over, but a loaded
	// machine may delay a check past the next candidate interval: a gap
	// shorter than the Monitor's interval is a mismatch, a gap nearer a
	// longer interval is one only when it recurs beyond what load explains.
	var late []int
	for i, gap := range gaps {
		switch {
		case gotNext[i] > gap+10*time.Millisecond:
			t.Errorf("after check %d (pass %v): Monitor waits %v, haproxy checked again after %v\nfulcrum: %v\nhaproxy gaps: %v",
				i, script[i], gotNext[i], gap, gotNext, gaps)
		case nearest(gap, inter, fastinter, downinter) != gotNext[i]:
			late = append(late, i)
		}
	}
	if len(late) > 2 {
		t.Errorf("after checks %v: haproxy's gap nearer another interval than the Monitor's\nfulcrum: %v\nhaproxy gaps: %v", late, gotNext, gaps)
	}
	t.Logf("haproxy gaps between checks: %v (late: %v)", gaps, late)
	t.Logf("haproxy states: %q, chkfail %s, chkdown %s", want, counters["chkfail"], counters["chkdown"])
	_, failures, downs := m.Counters()
	if f, d := fmt.Sprint(failures), fmt.Sprint(downs); f != counters["chkfail"] || d != counters["chkdown"] {
		t.Errorf("Counters() failures %s, down transitions %s, want chkfail %s, chkdown %s (haproxy)",
			f, d, counters["chkfail"], counters["chkdown"])
	}
}

// startHAProxy runs haproxy on cfg until the test ends; the channel is
// closed if it exits.
func startHAProxy(t *testing.T, bin, dir, cfg string) <-chan struct{} {
	t.Helper()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy stderr:\n%s", stderr.String())
		}
	})
	return exited
}

// nearest returns the candidate closest to d.
func nearest(d time.Duration, candidates ...time.Duration) time.Duration {
	best := candidates[0]
	for _, c := range candidates[1:] {
		if (d - c).Abs() < (d - best).Abs() {
			best = c
		}
	}
	return best
}

// haproxyStat returns the show stat columns of server b/s1.
func haproxyStat(sock string) (map[string]string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || len(recs[0]) == 0 {
		return nil, errors.New("empty show stat")
	}
	header := recs[0]
	header[0] = strings.TrimPrefix(header[0], "# ")
	for _, rec := range recs[1:] {
		if len(rec) > 1 && rec[0] == "b" && rec[1] == "s1" {
			st := map[string]string{}
			for i, h := range header {
				if i < len(rec) {
					st[h] = rec[i]
				}
			}
			return st, nil
		}
	}
	return nil, errors.New("no b/s1 line in show stat")
}

// TestObserveMatchesHAProxy sends live traffic through haproxy to a server
// answering 500 or 200 as scripted (observe layer7, error-limit 3, on-error
// fail-check), gives a Monitor the same results through Observe, and
// compares the state after each response, the counters, and that the next
// check comes at fastinter instead of inter.
func TestObserveMatchesHAProxy(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "haproxy")[0]

	const (
		rise, fall, limit = 2, 3, 3
		inter, fastinter  = 30 * time.Second, 300 * time.Millisecond
	)
	// true: the response is a 200, false a 500. Checks pass meanwhile.
	script := []bool{
		false, false, true, // a success resets the count
		false, false, false, // the third error in a row: one failed check
		false, false, false, // and again: UP 1/3
		false, false, false, // and again: DOWN
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	fe := filepath.Join(dir, "fe.sock")
	var (
		mu     sync.Mutex
		checks []time.Time
		status = http.StatusOK
	)
	// Checks after the first are held until the comparison is done, so a
	// slow test run cannot see a check restore the health in between.
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.URL.Path != "/health" {
			defer mu.Unlock()
			w.WriteHeader(status)
			return
		}
		checks = append(checks, time.Now())
		first := len(checks) == 1
		mu.Unlock()
		if !first {
			<-hold
		}
	}))
	t.Cleanup(srv.Close)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release) // before srv.Close, which waits for handlers

	exited := startHAProxy(t, bin, dir, fmt.Sprintf(`global
	stats socket %s level admin
defaults
	mode http
	timeout connect 1s
	timeout client 5s
	timeout server 5s
frontend f
	bind unix@%s
	default_backend b
backend b
	option httpchk GET /health
	server s1 %s check inter %d fastinter %d rise %d fall %d observe layer7 error-limit %d on-error fail-check
`, sock, fe, srv.Listener.Addr(), inter.Milliseconds(), fastinter.Milliseconds(), rise, fall, limit))

	// Traffic starts after haproxy's first check.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("haproxy exited early")
		default:
		}
		mu.Lock()
		n := len(checks)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no check from haproxy in 20s")
		}
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", fe)
		},
		DisableKeepAlives: true,
	}}

	clk := newFakeClock()
	chk := newScripted()
	m := NewMonitor(Config{Interval: inter, FastInterval: fastinter, Rise: rise, Fall: fall, ErrorLimit: limit}, chk, clk, nil)
	chk.results <- nil
	run(t, m)
	clk.waitTimer(t, inter)

	var got, want []string
	var trigger time.Time // when the first error-limit was reached
	for i, ok := range script {
		mu.Lock()
		status = http.StatusOK
		if !ok {
			status = http.StatusInternalServerError
		}
		mu.Unlock()
		resp, err := client.Get("http://fulcrum.test/t")
		if err != nil {
			t.Fatalf("request %d through haproxy: %v", i, err)
		}
		resp.Body.Close()
		if i == 5 {
			trigger = time.Now()
		}
		st, err := haproxyStat(sock)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, st["status"])

		var oerr error
		if !ok {
			oerr = fmt.Errorf("status %d", resp.StatusCode)
		}
		m.Observe(oerr)
		got = append(got, m.Status())
	}
	st, err := haproxyStat(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("haproxy states: %q, chkfail %s, chkdown %s", want, st["chkfail"], st["chkdown"])
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Status() after each response = %q, want %q (haproxy)", got, want)
	}
	_, failures, downs := m.Counters()
	if f, d := fmt.Sprint(failures), fmt.Sprint(downs); f != st["chkfail"] || d != st["chkdown"] {
		t.Errorf("Counters() failures %s, down transitions %s, want chkfail %s, chkdown %s (haproxy)",
			f, d, st["chkfail"], st["chkdown"])
	}

	// haproxy's next check comes within fastinter of the first error-limit
	// reached, not after inter; so does the Monitor's.
	var next time.Time
	for deadline := time.Now().Add(10 * time.Second); next.IsZero() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		if c := checks[len(checks)-1]; c.After(trigger) {
			next = c
		}
		mu.Unlock()
	}
	if next.IsZero() {
		t.Fatalf("haproxy: no check within 10s of reaching the error limit, want one within fastinter %v", fastinter)
	}
	// Only a loaded machine makes it later than fastinter; inter is 30s.
	if d := next.Sub(trigger); d > 5*time.Second {
		t.Errorf("haproxy checked %v after reaching the error limit, want about fastinter %v, far from inter %v", d, fastinter, inter)
	}
	p := clk.pending()
	for deadline := time.Now().Add(5 * time.Second); (len(p) != 1 || p[0] > fastinter) && time.Now().Before(deadline); p = clk.pending() {
		time.Sleep(time.Millisecond)
	}
	if len(p) != 1 || p[0] > fastinter {
		t.Errorf("Monitor: pending timers = %v, want one within fastinter %v", p, fastinter)
	}
	release()
}
