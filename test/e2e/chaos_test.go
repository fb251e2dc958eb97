package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/edge"
	"fulcrum/internal/stack"
	"fulcrum/internal/testenv"
)

// result is one request the client sent.
type result struct {
	write      bool
	start, end time.Time
	ok         bool
	status     int
	err        string
}

// posted is a message the stack acknowledged with 201.
type posted struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// client sends guestbook traffic through the front address: each worker
// posts a message, then lists the latest ones, in a loop, each request on
// a new connection (a takeover resets established ones; a browser would
// reconnect the same way).
type client struct {
	front string
	http  *http.Client

	// mu guards the fields below.
	mu      sync.Mutex
	results []result
	acked   []posted
	seq     int
}

// newClient sends from this machine, or with dial from where it dials
// (a client host's namespace).
func newClient(front string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *client {
	return &client{front: front, http: &http.Client{Timeout: 3 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}}
}

func (c *client) run(stop <-chan struct{}, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.post(w)
				c.list()
				time.Sleep(15 * time.Millisecond)
			}
		}()
	}
	return &wg
}

func (c *client) record(r result) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
}

func (c *client) post(worker int) {
	c.mu.Lock()
	c.seq++
	msg := fmt.Sprintf("e2e message %d from worker %d", c.seq, worker)
	c.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"name": "e2e", "message": msg})
	r := result{write: true, start: time.Now()}
	// Each message carries an Idempotency-Key, as a careful client's do: the
	// load balancer may then send it again to another web server when the
	// first dies with it, and the guestbook stores it once.
	req, _ := http.NewRequest("POST", "http://"+c.front+"/api/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("e2e-%d-%d", worker, time.Now().UnixNano()))
	resp, err := c.http.Do(req)
	if err != nil {
		r.end, r.err = time.Now(), err.Error()
		c.record(r)
		return
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end, r.status = time.Now(), resp.StatusCode
	var p posted
	if resp.StatusCode == http.StatusCreated && json.Unmarshal(data, &p) == nil && p.ID > 0 && p.Message == msg {
		r.ok = true
		c.mu.Lock()
		c.acked = append(c.acked, p)
		c.mu.Unlock()
	} else {
		r.err = strings.TrimSpace(string(data))
	}
	c.record(r)
}

func (c *client) list() {
	r := result{start: time.Now()}
	resp, err := c.http.Get("http://" + c.front + "/api/messages?limit=5")
	if err != nil {
		r.end, r.err = time.Now(), err.Error()
		c.record(r)
		return
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end, r.status = time.Now(), resp.StatusCode
	var l struct {
		Messages []posted `json:"messages"`
	}
	r.ok = resp.StatusCode == http.StatusOK && json.Unmarshal(data, &l) == nil
	if !r.ok {
		r.err = strings.TrimSpace(string(data))
	}
	c.record(r)
}

// phaseStats are the figures of one phase for reads or writes or both.
type phaseStats struct {
	sent, failed int
	// outage is the longest time new requests kept failing: from the start
	// of a failed request to the start of the next one that succeeded (or
	// the end of the last failure, when none did). A single request that
	// hangs until its timeout while the requests after it succeed counts
	// as a failure, not as an outage of its whole length.
	outage    time.Duration
	firstErrs []string
}

func (c *client) stats(from, to time.Time, filter func(result) bool) phaseStats {
	c.mu.Lock()
	var rs []result
	for _, r := range c.results {
		if !r.start.Before(from) && r.start.Before(to) && filter(r) {
			rs = append(rs, r)
		}
	}
	c.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
	var s phaseStats
	var runStart, runEnd time.Time
	inRun := false
	for _, r := range rs {
		s.sent++
		if r.ok {
			if inRun {
				s.outage = max(s.outage, r.start.Sub(runStart))
			}
			inRun = false
			continue
		}
		s.failed++
		if len(s.firstErrs) < 3 {
			s.firstErrs = append(s.firstErrs, fmt.Sprintf("%s status %d %s", r.start.Format("15:04:05.000"), r.status, r.err))
		}
		if !inRun {
			inRun, runStart, runEnd = true, r.start, r.end
		}
		if r.end.After(runEnd) {
			runEnd = r.end
		}
	}
	if inRun {
		s.outage = max(s.outage, runEnd.Sub(runStart))
	}
	return s
}

func all(result) bool      { return true }
func writes(r result) bool { return r.write }
func reads(r result) bool  { return !r.write }
func (s phaseStats) String() string {
	return fmt.Sprintf("sent %5d, failed %3d, longest outage %v", s.sent, s.failed, s.outage.Round(time.Millisecond))
}

// Issue 5's proof: under continuous guestbook traffic, kill web1, then the
// active load balancer, then the database primary, restoring each in turn.
// Targets: losing a web server fails no request; losing the active load
// balancer, an outage under 1s; losing the primary, writes fail for under
// 5s and reads never fail. Nothing acknowledged may be lost.
func TestStackSurvivesChaos(t *testing.T) {
	testenv.Short(t)
	u := startUp(t, 2)
	st := u.waitFor(t, "the stack to be healthy", 120*time.Second, healthy)
	t.Logf("stack up: active %s, primary %s", st.ActiveLB, st.Primary)
	u.checkDBPorts(t, st)
	u.checkHTTPS(t)

	c := newClient(u.front, nil)
	survivesChaos(t, u, c, func() {
		u.checkDBPorts(t, u.state(t))
		u.checkHTTPS(t)
	})

	// fulcrum status prints the healed topology from another process.
	out, err := exec.Command(u.bin, "status", "--dir", u.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("fulcrum status: %v: %s", err, out)
	}
	for _, want := range []string{"lb1", "lb2", "web1", "web2", "db1", "db2", "db3", "ACTIVE", "primary", "failover"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("fulcrum status output lacks %q:\n%s", want, out)
		}
	}
}

// survivesChaos runs issue 5's proof with client c: under its traffic,
// kill web1, then the active load balancer, then the database primary,
// restoring each in turn; then after runs, and every acknowledged write
// must be readable.
func survivesChaos(t *testing.T, u *upProcess, c *client, after func()) {
	t.Helper()
	stop := make(chan struct{})
	wg := c.run(stop, 3)
	stopped := false
	stopClient := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopClient()
	time.Sleep(2 * time.Second)

	type phase struct {
		name     string
		from, to time.Time
		check    func(t *testing.T, all, w, r phaseStats)
		killed   string
	}
	var phases []*phase
	run := func(p *phase, kill string, hold time.Duration, restored func(*stack.State) bool) {
		p.from = time.Now()
		p.killed = kill
		u.chaos(t, "kill", kill)
		time.Sleep(hold)
		u.chaos(t, "restore", kill)
		u.waitFor(t, "the stack to heal after "+p.name, 60*time.Second, func(st *stack.State) bool { return healthy(st) && restored(st) })
		time.Sleep(2 * time.Second)
		p.to = time.Now()
		phases = append(phases, p)
		// A request still in flight at the end of a phase must not meet
		// the next kill and be counted in the wrong phase.
		time.Sleep(time.Second)
	}

	// 1. A web server.
	run(&phase{name: "kill web1", check: func(t *testing.T, a, w, r phaseStats) {
		if a.failed != 0 {
			t.Errorf("kill web1: %d of %d requests failed, want 0 (first: %v)", a.failed, a.sent, a.firstErrs)
		}
	}}, "web1", 3*time.Second, func(*stack.State) bool { return true })

	// 2. The active load balancer (restoring it makes it preempt back: a
	// second takeover, measured in the same phase).
	active := u.state(t).ActiveLB
	run(&phase{name: "kill active LB (" + active + ")", check: func(t *testing.T, a, w, r phaseStats) {
		if a.outage >= time.Second {
			t.Errorf("kill the active LB: longest outage %v, want under 1s (%d of %d failed; first: %v)", a.outage, a.failed, a.sent, a.firstErrs)
		}
	}}, active, 3*time.Second, func(st *stack.State) bool { return st.ActiveLB != "" })

	// 3. The database primary.
	primary := u.state(t).Primary
	run(&phase{name: "kill db primary (" + primary + ")", check: func(t *testing.T, a, w, r phaseStats) {
		if w.outage >= 5*time.Second {
			t.Errorf("kill the primary: writes failed for %v, want under 5s (first: %v)", w.outage, w.firstErrs)
		}
		if r.failed != 0 {
			t.Errorf("kill the primary: %d of %d reads failed, want 0 (first: %v)", r.failed, r.sent, r.firstErrs)
		}
	}}, "db-primary", 5*time.Second, func(st *stack.State) bool { return st.Primary != "" && st.Primary != primary })

	stopClient()
	after()
	t.Logf("%-28s %-60s %-60s", "phase", "reads", "writes")
	for _, p := range phases {
		a, w, r := c.stats(p.from, p.to, all), c.stats(p.from, p.to, writes), c.stats(p.from, p.to, reads)
		t.Logf("%-28s reads: %s | writes: %s | all: longest outage %v", p.name, r, w, a.outage.Round(time.Millisecond))
		p.check(t, a, w, r)
	}

	// Nothing acknowledged is lost: every 201 is readable afterwards.
	lost := 0
	hc := c.http
	for _, m := range c.acked {
		var got posted
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			resp, err := hc.Get(fmt.Sprintf("http://%s/api/messages/%d", u.front, m.ID))
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			ok = resp.StatusCode == http.StatusOK && json.Unmarshal(data, &got) == nil && got.Message == m.Message
		}
		if !ok {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged message %d (%q) is not readable afterwards (got %+v)", m.ID, m.Message, got)
			}
		}
	}
	t.Logf("acknowledged writes: %d, lost: %d", len(c.acked), lost)
	if len(c.acked) == 0 {
		t.Fatal("no write was acknowledged at all")
	}

}

// checkHTTPS reads the guestbook over HTTPS from the active load balancer,
// trusting only fulcrum up's local CA: HTTP/2, with HSTS.
func (u *upProcess) checkHTTPS(t *testing.T) {
	t.Helper()
	caPath, err := edge.LocalCA(u.dir)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + u.frontTLS + "/api/messages?limit=1")
	if err != nil {
		t.Errorf("HTTPS front: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("HTTPS front: %d over HTTP/%d, HSTS %q; want 200 over HTTP/2 with HSTS", resp.StatusCode, resp.ProtoMajor, resp.Header.Get("Strict-Transport-Security"))
		return
	}
	t.Logf("https://%s: %d over HTTP/%d, served by %s", u.frontTLS, resp.StatusCode, resp.ProtoMajor, resp.Header.Get("X-Served-By"))
}

// checkDBPorts checks the load balancer's database ports: the writes port
// reaches the writable primary, the reads port a read-only replica.
func (u *upProcess) checkDBPorts(t *testing.T, st *stack.State) {
	t.Helper()
	mariadbClient := testenv.Program(t, "mariadb")[0]
	data, err := os.ReadFile(filepath.Join(u.dir, "db", "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Credentials struct {
			User     string `json:"app_user"`
			Password string `json:"app_password"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatal(err)
	}
	for _, port := range []struct {
		addr     string
		readOnly int
	}{{st.DBWrites, 0}, {st.DBReads, 1}} {
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr, mc.Timeout = cl.Credentials.User, cl.Credentials.Password, "tcp", port.addr, 2*time.Second
		// The nodes require TLS (issue 8); the LB passes it through.
		mc.TLSConfig = "preferred"
		db, err := sql.Open("mysql", mc.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		var ro, id int
		deadline := time.Now().Add(10 * time.Second)
		for {
			err = db.QueryRow("SELECT @@read_only, @@server_id").Scan(&ro, &id)
			if (err == nil && ro == port.readOnly) || time.Now().After(deadline) {
				break
			}
			db.Close()
			db, _ = sql.Open("mysql", mc.FormatDSN())
			time.Sleep(200 * time.Millisecond)
		}
		db.Close()
		if err != nil || ro != port.readOnly {
			t.Errorf("through %s: @@read_only = %d (err %v), want %d", port.addr, ro, err, port.readOnly)
			continue
		}
		t.Logf("through %s: server_id %d, read_only %d", port.addr, id, ro)
		// The same through the real mariadb command-line client, as an
		// application in another language would connect.
		host, p, _ := net.SplitHostPort(port.addr)
		cmd := exec.Command(mariadbClient, "--protocol=tcp", "-h", host, "-P", p, "-u", cl.Credentials.User,
			"--connect-timeout=3", "-N", "-B", "-e", "SELECT @@read_only, @@server_id")
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+cl.Credentials.Password)
		out, err := cmd.CombinedOutput()
		// (The reads port may pick another replica: compare read_only.)
		if want := fmt.Sprintf("%d\t", port.readOnly); err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("mariadb client through %s: %q (%v), want read_only %d", port.addr, strings.TrimSpace(string(out)), err, port.readOnly)
		} else {
			t.Logf("mariadb client through %s: read_only, server_id = %s", port.addr, strings.TrimSpace(string(out)))
		}
	}
}
