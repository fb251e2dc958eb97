package vrrp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
)

// The integration tests run each router, and the client that measures the
// gap, as a separate process (the test binary again), so that a failure can
// be a real kill -9 and so that each can live in its own network namespace.
const (
	envHelper = "FULCRUM_VRRP_HELPER" // JSON helperSpec: run one router
	envClient = "FULCRUM_VRRP_CLIENT" // JSON clientSpec: measure
)

// helperSpec is the configuration of one router process.
type helperSpec struct {
	Name string
	VRRP config.VRRP
	// Serve is the TCP address answered with Name: bound with
	// ListenFreebind from the start in ip mode, bound by Up and closed by
	// Down in local mode.
	Serve string
}

// clientSpec is the configuration of the measuring client.
type clientSpec struct {
	Addr     string
	Duration time.Duration
	Every    time.Duration
}

// TestHelperProcess is not a test: it is the body of the helper processes.
func TestHelperProcess(t *testing.T) {
	switch {
	case os.Getenv(envHelper) != "":
		os.Exit(helperMain(os.Getenv(envHelper)))
	case os.Getenv(envClient) != "":
		os.Exit(clientMain(os.Getenv(envClient)))
	}
	t.Skip("runs only as a helper process")
}

func helperMain(specJSON string) int {
	var spec helperSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var out sync.Mutex
	emit := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	serve := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, spec.Name)
			c.Close()
		}
	}
	var (
		mu sync.Mutex
		ln net.Listener
	)
	opt := Options{
		Log: log,
		OnChange: func(vrid uint8, _, to State) {
			if int(vrid) == spec.VRRP.VirtualRouterID {
				emit("state %s %d", to, time.Now().UnixNano())
			}
		},
		Up: func() error {
			mu.Lock()
			defer mu.Unlock()
			l, err := net.Listen("tcp", spec.Serve)
			if err != nil {
				return err
			}
			ln = l
			go serve(l)
			return nil
		},
		Down: func() error {
			mu.Lock()
			defer mu.Unlock()
			if ln != nil {
				ln.Close()
				ln = nil
			}
			return nil
		},
	}
	if spec.VRRP.Mode != "local" && spec.Serve != "" {
		l, err := ListenFreebind("tcp", spec.Serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper: freebind:", err)
			return 2
		}
		go serve(l)
	}
	if spec.VRRP.VirtualRouterID == 0 {
		// Serve only, beside another VRRP implementation.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		<-ctx.Done()
		return 0
	}
	g, err := FromConfig(&spec.VRRP, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGUSR1 and SIGUSR2 stand for "every server of backend web is down"
	// and "up again", as the LB will report them.
	faults := make(chan os.Signal, 1)
	signal.Notify(faults, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range faults {
			g.SetFault("web", sig == syscall.SIGUSR1)
		}
	}()
	emit("ready %s", g.Routers[0].t.LocalAddr())
	err = g.Run(ctx)
	st, _ := json.Marshal(g.Status()[0])
	emit("final %s", st)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// clientMain starts a connection to the address every spec.Every, each in
// its own goroutine so that a lost SYN does not delay the next attempt, and
// prints for each "ok START END NAME" or "fail START END ERROR" (Unix
// nanoseconds).
func clientMain(specJSON string) int {
	var spec clientSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 2
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	inflight := make(chan struct{}, 128)
	end := time.Now().Add(spec.Duration)
	tick := time.NewTicker(spec.Every)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = <-tick.C {
		inflight <- struct{}{}
		wg.Add(1)
		go func(start time.Time) {
			defer func() { <-inflight; wg.Done() }()
			// Attempts overlap, so the timeouts do not coarsen the measure;
			// they only decide when a SYN lost to a vanished MAC (TCP would
			// resend it after 1s) counts as failed. Generous, so that a
			// loaded machine is not mistaken for a gap.
			name, err := fetchName(spec.Addr, time.Second, time.Second)
			mu.Lock()
			defer mu.Unlock()
			end := time.Now()
			if err != nil {
				fmt.Fprintf(w, "fail %d %d %v\n", start.UnixNano(), end.UnixNano(), strings.ReplaceAll(err.Error(), " ", "_"))
			} else {
				fmt.Fprintf(w, "ok %d %d %s\n", start.UnixNano(), end.UnixNano(), name)
			}
			w.Flush()
		}(now)
	}
	wg.Wait()
	return 0
}

func fetchName(addr string, dial, read time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, dial)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(read))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// proc is a helper process seen from the test.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}

	mu     sync.Mutex
	states []stateAt
	lines  []string
}

type stateAt struct {
	s  string
	at time.Time
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc runs the test binary as a helper, inside namespace ns unless
// it is empty.
func startProc(t *testing.T, ns, name, env string, spec any) *proc {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{os.Args[0], "-test.run=^TestHelperProcess$"}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env+"="+string(js))
	p := &proc{t: t, name: name, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.record(sc.Text())
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, tail(p.stderr.String(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) record(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	f := strings.Fields(line)
	if len(f) == 3 && f[0] == "state" {
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		p.states = append(p.states, stateAt{f[1], time.Unix(0, ns)})
	}
}

// kill signals the process (by its pid) and waits for it to exit.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit on its own.
func (p *proc) wait(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v", p.name, timeout)
	}
}

func (p *proc) state() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.states) == 0 {
		return ""
	}
	return p.states[len(p.states)-1].s
}

// stateSince returns when the process last entered state s after t0.
func (p *proc) stateSince(s string, t0 time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.states) - 1; i >= 0; i-- {
		if p.states[i].s == s && !p.states[i].at.Before(t0) {
			return p.states[i].at, true
		}
	}
	return time.Time{}, false
}

func (p *proc) transitionsSince(t0 time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.states {
		if !s.at.Before(t0) {
			out = append(out, s.s)
		}
	}
	return out
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// final returns the Status the process printed on exit.
func (p *proc) final() (Status, bool) {
	for _, l := range p.output() {
		if js, ok := strings.CutPrefix(l, "final "); ok {
			var s Status
			if json.Unmarshal([]byte(js), &s) == nil {
				return s, true
			}
		}
	}
	return Status{}, false
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gapReport summarises a client's attempts around a failure at t0.
type gapReport struct {
	attempts, fails int
	// firstAfter is the time from t0 until a server other than oldName
	// first answered (the end of that attempt: a SYN resent after the
	// takeover may complete an attempt started long before); maxGap the
	// longest time between two answers; failsAfter counts the attempts
	// started after that first answer that failed.
	firstAfter, maxGap time.Duration
	failsAfter         int
	newName            string
}

func analyse(t *testing.T, lines []string, t0 time.Time, oldName string) gapReport {
	t.Helper()
	type attempt struct {
		ok         bool
		start, end time.Time
		what       string
	}
	var as []attempt
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "ok" && f[0] != "fail" {
			continue
		}
		s, err1 := strconv.ParseInt(f[1], 10, 64)
		e, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		as = append(as, attempt{f[0] == "ok", time.Unix(0, s), time.Unix(0, e), f[3]})
	}
	var r gapReport
	r.attempts = len(as)
	var restored time.Time
	slices.SortFunc(as, func(a, b attempt) int { return a.end.Compare(b.end) })
	var lastOK time.Time
	for _, a := range as {
		if !a.ok {
			r.fails++
			continue
		}
		if !lastOK.IsZero() && a.end.Sub(lastOK) > r.maxGap {
			r.maxGap = a.end.Sub(lastOK)
		}
		lastOK = a.end
		if restored.IsZero() && a.what != oldName && a.end.After(t0) {
			restored, r.newName = a.end, a.what
			r.firstAfter = a.end.Sub(t0)
		}
	}
	for _, a := range as {
		if !a.ok && !restored.IsZero() && a.start.After(restored) {
			r.failsAfter++
			t.Logf("after the takeover: failed attempt %v after the first answer: %s", a.start.Sub(restored).Round(time.Millisecond), a.what)
		}
	}
	return r
}
