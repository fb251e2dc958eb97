package health

import (
	"bufio"
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
// "DOWN 1/2", ...) and the chkfail and chkdown counters.
func TestStateMachineMatchesHAProxy(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "haproxy")[0]

	const (
		rise, fall = 2, 3
		warmup     = 2 // passes that take haproxy from its initial health (rise) to fully UP
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
		statuses []string // statuses[i]: haproxy's state after script[i]
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		n := requests - warmup // index in script of this check
		requests++
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
backend b
	option httpchk GET /
	server s1 %s check inter 100ms rise %d fall %d
`, sock, srv.Listener.Addr(), rise, fall)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
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
	})

	var counters map[string]string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %v\n%s", cmd.ProcessState, stderr.String())
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
			t.Fatalf("haproxy ran %d of %d checks in 20s", len(statuses), len(script))
		}
	}

	// The same on a Monitor, which starts fully UP: the warmup passes change
	// nothing there.
	clk := newFakeClock()
	chk := newScripted()
	m := NewMonitor(Config{Interval: time.Second, Rise: rise, Fall: fall}, chk, clk, nil)
	chk.results <- nil
	run(t, m)
	clk.waitTimer(t, time.Second)
	for range warmup - 1 {
		chk.results <- nil
		clk.fire(t)
		clk.waitTimer(t, time.Second)
	}
	var got []string
	for _, pass := range script {
		var err error
		if !pass {
			err = errBoom
		}
		chk.results <- err
		clk.fire(t)
		clk.waitTimer(t, time.Second)
		got = append(got, m.Status())
	}
	mu.Lock()
	want := statuses
	mu.Unlock()
	for i := range script {
		if got[i] != want[i] {
			t.Errorf("after check %d (pass %v): Status() = %q, want %q (haproxy)\nfulcrum: %q\nhaproxy: %q",
				i, script[i], got[i], want[i], got, want)
			break
		}
	}
	t.Logf("haproxy states: %q, chkfail %s, chkdown %s", want, counters["chkfail"], counters["chkdown"])
	_, failures, downs := m.Counters()
	if f, d := fmt.Sprint(failures), fmt.Sprint(downs); f != counters["chkfail"] || d != counters["chkdown"] {
		t.Errorf("Counters() failures %s, down transitions %s, want chkfail %s, chkdown %s (haproxy)",
			f, d, counters["chkfail"], counters["chkdown"])
	}
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
