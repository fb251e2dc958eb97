package health

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

// scripted is a Checker whose results the test sends one by one.
type scripted struct {
	results chan error
	calls   atomic.Int64
}

func newScripted() *scripted { return &scripted{results: make(chan error, 64)} }

func (s *scripted) Check(ctx context.Context) error {
	s.calls.Add(1)
	select {
	case err := <-s.results:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorder collects onChange calls.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) onChange(up bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	state := "down"
	if up {
		state = "up"
	}
	r.events = append(r.events, state+": "+reason)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// run starts m.Run and returns a function that stops it and fails the
// test unless Run returns promptly; it is also called at cleanup.
func run(t *testing.T, m *Monitor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return 5s after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero is HAProxy's defaults", Config{},
			Config{Interval: 2 * time.Second, Timeout: 2 * time.Second, FastInterval: 2 * time.Second, DownInterval: 2 * time.Second, Rise: 2, Fall: 3, ErrorLimit: 10}},
		{"timeout and fast and down follow interval", Config{Interval: time.Second},
			Config{Interval: time.Second, Timeout: time.Second, FastInterval: time.Second, DownInterval: time.Second, Rise: 2, Fall: 3, ErrorLimit: 10}},
		{"negative is default", Config{Interval: -1, Rise: -1, Fall: -5, ErrorLimit: -1},
			Config{Interval: 2 * time.Second, Timeout: 2 * time.Second, FastInterval: 2 * time.Second, DownInterval: 2 * time.Second, Rise: 2, Fall: 3, ErrorLimit: 10}},
		{"set values kept", Config{Interval: 3, Timeout: 1, FastInterval: 2, DownInterval: 4, Rise: 5, Fall: 6, ErrorLimit: 7},
			Config{Interval: 3, Timeout: 1, FastInterval: 2, DownInterval: 4, Rise: 5, Fall: 6, ErrorLimit: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestMonitorRiseFall walks HAProxy's health counter through every state,
// checking the state, the interval chosen for the next check and the
// transitions reported.
func TestMonitorRiseFall(t *testing.T) {
	clk := newFakeClock()
	chk := newScripted()
	rec := &recorder{}
	cfg := Config{Interval: 2 * time.Second, FastInterval: 500 * time.Millisecond, DownInterval: 5 * time.Second, Rise: 2, Fall: 3}
	m := NewMonitor(cfg, chk, clk, rec.onChange)
	if !m.Up() || m.Status() != "UP" {
		t.Fatalf("new Monitor: Up() = %v, Status() = %q, want true, UP", m.Up(), m.Status())
	}
	chk.results <- nil // the first check runs at once
	run(t, m)
	clk.waitTimer(t, 2*time.Second)

	steps := []struct {
		name   string
		err    error
		up     bool
		status string
		next   time.Duration
		events int
	}{
		{"fail 1 of 3 keeps it up", errBoom, true, "UP 2/3", 500 * time.Millisecond, 0},
		{"fail 2 of 3 keeps it up", errBoom, true, "UP 1/3", 500 * time.Millisecond, 0},
		{"fail 3 of 3 marks it down", errBoom, false, "DOWN", 5 * time.Second, 1},
		{"fail while down", errBoom, false, "DOWN", 5 * time.Second, 1},
		{"pass 1 of 2 keeps it down", nil, false, "DOWN 1/2", 500 * time.Millisecond, 1},
		{"fail while rising falls back", errBoom, false, "DOWN", 5 * time.Second, 1},
		{"pass 1 of 2 again", nil, false, "DOWN 1/2", 500 * time.Millisecond, 1},
		{"pass 2 of 2 marks it up", nil, true, "UP", 2 * time.Second, 2},
		{"pass while up", nil, true, "UP", 2 * time.Second, 2},
		{"fail 1 of 3 after recovery", errBoom, true, "UP 2/3", 500 * time.Millisecond, 2},
		{"one pass restores full health", nil, true, "UP", 2 * time.Second, 2},
		{"fail 1 of 3 once more", errBoom, true, "UP 2/3", 500 * time.Millisecond, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			chk.results <- s.err
			clk.fire(t)
			clk.waitTimer(t, s.next)
			if got := m.Up(); got != s.up {
				t.Errorf("Up() = %v, want %v", got, s.up)
			}
			if got := m.Status(); got != s.status {
				t.Errorf("Status() = %q, want %q", got, s.status)
			}
			if got := len(rec.list()); got != s.events {
				t.Errorf("onChange calls = %d (%q), want %d", got, rec.list(), s.events)
			}
			if last := m.Last(); last.OK != (s.err == nil) || !errors.Is(last.Err, s.err) || !last.At.Equal(clk.Now()) {
				t.Errorf("Last() = %+v, want OK %v, Err %v, At %v", last, s.err == nil, s.err, clk.Now())
			}
		})
	}
	want := []string{"down: 3 failed checks in a row, last: boom", "up: 2 passed checks in a row"}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("onChange calls = %q, want %q", got, want)
	}
	// 13 checks; every failure but the one while fully DOWN lowered the
	// health.
	checks, failures, downs := m.Counters()
	if checks != 13 || failures != 6 || downs != 1 {
		t.Errorf("Counters() = %d, %d, %d, want 13, 6, 1", checks, failures, downs)
	}
}

// TestMonitorCounts checks for several rise and fall values that exactly
// Fall failures take an UP server down and exactly Rise passes bring it
// back.
func TestMonitorCounts(t *testing.T) {
	for _, rf := range [][2]int{{1, 1}, {2, 3}, {3, 2}, {1, 5}, {5, 1}} {
		rise, fall := rf[0], rf[1]
		t.Run(fmt.Sprintf("rise %d fall %d", rise, fall), func(t *testing.T) {
			clk := newFakeClock()
			chk := newScripted()
			rec := &recorder{}
			m := NewMonitor(Config{Interval: time.Second, Rise: rise, Fall: fall}, chk, clk, rec.onChange)
			chk.results <- nil
			run(t, m)
			clk.waitTimer(t, time.Second)
			step := func(err error, wantUp bool, wantEvents int) {
				t.Helper()
				chk.results <- err
				clk.fire(t)
				clk.waitTimer(t, time.Second)
				if m.Up() != wantUp || len(rec.list()) != wantEvents {
					t.Fatalf("after check %d: Up() = %v with %d onChange calls, want %v with %d",
						chk.calls.Load(), m.Up(), len(rec.list()), wantUp, wantEvents)
				}
			}
			for range fall - 1 {
				step(errBoom, true, 0)
			}
			step(errBoom, false, 1)
			for range rise - 1 {
				step(nil, false, 1)
			}
			step(nil, true, 2)
		})
	}
}

// TestMonitorTimeout: a checker that blocks sees the deadline of Timeout
// and its failure says so.
func TestMonitorTimeout(t *testing.T) {
	clk := newFakeClock()
	var left atomic.Int64
	chk := CheckFunc(func(ctx context.Context) error {
		dl, ok := ctx.Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		left.Store(int64(time.Until(dl)))
		<-ctx.Done()
		return ctx.Err()
	})
	m := NewMonitor(Config{Interval: time.Hour, Timeout: 50 * time.Millisecond}, chk, clk, nil)
	start := time.Now()
	run(t, m)
	clk.waitTimer(t, time.Hour)
	if el := time.Since(start); el < 50*time.Millisecond || el > 2*time.Second {
		t.Errorf("check took %v, want about 50ms", el)
	}
	if l := time.Duration(left.Load()); l <= 0 || l > 50*time.Millisecond {
		t.Errorf("deadline seen by the checker %v away, want (0, 50ms]", l)
	}
	last := m.Last()
	if last.OK || !errors.Is(last.Err, context.DeadlineExceeded) || !strings.Contains(last.Err.Error(), "timed out after 50ms") {
		t.Errorf("Last() = %+v, want a failure wrapping DeadlineExceeded saying \"timed out after 50ms\"", last)
	}
}

// TestMonitorObserve: ErrorLimit consecutive passive errors count as one
// failed check and bring the next check forward to FastInterval; a nil
// result in between resets the count.
func TestMonitorObserve(t *testing.T) {
	clk := newFakeClock()
	chk := newScripted()
	rec := &recorder{}
	cfg := Config{Interval: 10 * time.Second, FastInterval: time.Second, DownInterval: 30 * time.Second, Rise: 2, Fall: 2, ErrorLimit: 3}
	m := NewMonitor(cfg, chk, clk, rec.onChange)
	chk.results <- nil
	run(t, m)
	clk.waitTimer(t, 10*time.Second)

	m.Observe(errBoom)
	m.Observe(errBoom)
	m.Observe(nil) // resets
	m.Observe(errBoom)
	m.Observe(errBoom)
	if _, failures, _ := m.Counters(); failures != 0 || m.Status() != "UP" {
		t.Fatalf("after 2+2 errors split by a success: failures = %d, Status() = %q, want 0, UP", failures, m.Status())
	}
	clk.waitTimer(t, 10*time.Second)
	m.Observe(errBoom) // third in a row
	if _, failures, _ := m.Counters(); failures != 1 || m.Status() != "UP 1/2" || !m.Up() {
		t.Fatalf("after 3 errors: failures = %d, Status() = %q, Up() = %v, want 1, UP 1/2, true", failures, m.Status(), m.Up())
	}
	clk.waitTimer(t, time.Second) // brought forward from 10s

	// Three more: the second simulated failure with fall 2 marks it down.
	clk.Advance(300 * time.Millisecond)
	for range 3 {
		m.Observe(errBoom)
	}
	if m.Up() {
		t.Fatalf("after 6 errors with error limit 3, fall 2: Up() = true, want false")
	}
	clk.waitTimer(t, 700*time.Millisecond) // already sooner than FastInterval: kept
	got := rec.list()
	if len(got) != 1 || !strings.HasPrefix(got[0], "down: 2 failed checks in a row, last: 3 consecutive errors on live traffic, last: boom") {
		t.Errorf("onChange calls = %q, want one down naming the live traffic errors", got)
	}
	if checks, _, _ := m.Counters(); checks != 1 {
		t.Errorf("checks = %d, want 1 (passive errors are not checks)", checks)
	}

	// The check then runs at the fast interval and comes back up.
	chk.results <- nil
	clk.fire(t)
	clk.waitTimer(t, time.Second)
	chk.results <- nil
	clk.fire(t)
	clk.waitTimer(t, 10*time.Second)
	if !m.Up() || len(rec.list()) != 2 {
		t.Errorf("after 2 passes: Up() = %v, onChange calls = %q, want true and a second call", m.Up(), rec.list())
	}
}

// TestMonitorObserveConcurrent: concurrent errors are neither lost nor
// counted twice.
func TestMonitorObserveConcurrent(t *testing.T) {
	m := NewMonitor(Config{Rise: 1, Fall: 1000, ErrorLimit: 10}, nil, newFakeClock(), nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				m.Observe(errBoom)
				_ = m.Up()
			}
		})
	}
	wg.Wait()
	if _, failures, _ := m.Counters(); failures != 200 {
		t.Errorf("failures after 2000 errors with error limit 10 = %d, want 200", failures)
	}
}

// TestMonitorPassiveOnly: without a Checker, Observe and Force drive the
// state and Run just waits.
func TestMonitorPassiveOnly(t *testing.T) {
	clk := newFakeClock()
	rec := &recorder{}
	m := NewMonitor(Config{Fall: 2, ErrorLimit: 2}, nil, clk, rec.onChange)
	stop := run(t, m)
	for i := range 3 {
		m.Observe(fmt.Errorf("connection refused %d", i))
	}
	if !m.Up() {
		t.Fatalf("after 3 errors with error limit 2, fall 2: Up() = false, want true")
	}
	m.Observe(errBoom)
	if m.Up() {
		t.Fatalf("after 4 errors with error limit 2, fall 2: Up() = true, want false")
	}
	m.Observe(nil)
	if m.Up() {
		t.Errorf("a success on live traffic brought it up; only checks or Force may")
	}
	m.Force(true)
	want := []string{"down: 2 failed checks in a row, last: 2 consecutive errors on live traffic, last: boom", "up: forced up by operator"}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("onChange calls = %q, want %q", got, want)
	}
	if p := clk.pending(); len(p) != 0 {
		t.Errorf("pending timers = %v, want none without a Checker", p)
	}
	stop()
	if last := m.Last(); last != (Result{}) {
		t.Errorf("Last() = %+v, want the zero Result", last)
	}
}

// TestMonitorForce: the state changes at once, onChange fires only on a
// change, and checks continue from the forced state.
func TestMonitorForce(t *testing.T) {
	clk := newFakeClock()
	chk := newScripted()
	rec := &recorder{}
	cfg := Config{Interval: 2 * time.Second, FastInterval: time.Second, DownInterval: 4 * time.Second}
	m := NewMonitor(cfg, chk, clk, rec.onChange)
	chk.results <- nil
	run(t, m)
	clk.waitTimer(t, 2*time.Second)

	m.Force(true) // already up
	m.Force(false)
	m.Force(false)
	if m.Up() || m.Status() != "DOWN" {
		t.Fatalf("after Force(false): Up() = %v, Status() = %q, want false, DOWN", m.Up(), m.Status())
	}
	if got := rec.list(); len(got) != 1 || got[0] != "down: forced down by operator" {
		t.Fatalf("onChange calls = %q, want one down", got)
	}
	if _, _, downs := m.Counters(); downs != 1 {
		t.Errorf("down transitions = %d, want 1", downs)
	}
	// Rise (2) passes bring it back.
	chk.results <- nil
	clk.fire(t)
	clk.waitTimer(t, time.Second)
	if m.Up() {
		t.Fatalf("after 1 pass: Up() = true, want false")
	}
	chk.results <- nil
	clk.fire(t)
	clk.waitTimer(t, 2*time.Second)
	if !m.Up() {
		t.Fatalf("after 2 passes: Up() = false, want true")
	}
	// A forced up survives until Fall (3) failures.
	m.Force(false)
	m.Force(true)
	for i := range 3 {
		chk.results <- errBoom
		clk.fire(t)
		want := time.Second
		if i == 2 {
			want = 4 * time.Second
		}
		clk.waitTimer(t, want)
		if m.Up() != (i < 2) {
			t.Fatalf("after %d failures: Up() = %v, want %v", i+1, m.Up(), i < 2)
		}
	}
	want := []string{
		"down: forced down by operator",
		"up: 2 passed checks in a row",
		"down: forced down by operator",
		"up: forced up by operator",
		"down: 3 failed checks in a row, last: boom",
	}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("onChange calls = %q, want %q", got, want)
	}
}

// TestMonitorSetEnabled: disabled, no check runs and the state is frozen;
// enabled again, checks resume one interval later.
func TestMonitorSetEnabled(t *testing.T) {
	clk := newFakeClock()
	chk := newScripted()
	cfg := Config{Interval: 2 * time.Second, FastInterval: time.Second, ErrorLimit: 1}
	m := NewMonitor(cfg, chk, clk, nil)
	chk.results <- errBoom
	run(t, m)
	clk.waitTimer(t, time.Second)
	if m.Status() != "UP 2/3" {
		t.Fatalf("Status() = %q, want UP 2/3", m.Status())
	}

	m.SetEnabled(false)
	deadline := time.Now().Add(5 * time.Second)
	for len(clk.pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pending timers = %v after SetEnabled(false), want none", clk.pending())
		}
		time.Sleep(time.Millisecond)
	}
	clk.Advance(time.Hour)
	m.Observe(errBoom)
	if n := chk.calls.Load(); n != 1 {
		t.Errorf("checks while disabled: calls = %d, want 1", n)
	}
	if m.Status() != "UP 2/3" {
		t.Errorf("Status() while disabled = %q, want UP 2/3 (frozen)", m.Status())
	}

	m.SetEnabled(true)
	m.SetEnabled(true)
	clk.waitTimer(t, time.Second)
	chk.results <- nil
	clk.fire(t)
	clk.waitTimer(t, 2*time.Second)
	if n := chk.calls.Load(); n != 2 || m.Status() != "UP" {
		t.Errorf("after SetEnabled(true) and one interval: calls = %d, Status() = %q, want 2, UP", n, m.Status())
	}
}

// TestMonitorDisableDuringCheck: a result that arrives after checks were
// disabled is dropped.
func TestMonitorDisableDuringCheck(t *testing.T) {
	clk := newFakeClock()
	entered := make(chan struct{})
	release := make(chan struct{})
	chk := CheckFunc(func(ctx context.Context) error {
		close(entered)
		<-release
		return errBoom
	})
	m := NewMonitor(Config{Interval: time.Second, Fall: 1}, chk, clk, nil)
	run(t, m)
	<-entered
	m.SetEnabled(false)
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if checks, _, _ := m.Counters(); checks == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the check did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	if !m.Up() || m.Last() != (Result{}) {
		t.Errorf("Up() = %v, Last() = %+v, want true and no result", m.Up(), m.Last())
	}
}

// TestMonitorRunStops: cancel stops Run, even during a check, leaves no
// goroutine behind and does not count the interrupted check as a failure.
func TestMonitorRunStops(t *testing.T) {
	before := runtime.NumGoroutine()
	clk := newFakeClock()
	entered := make(chan struct{})
	chk := CheckFunc(func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})
	m := NewMonitor(Config{Interval: time.Second, Fall: 1}, chk, clk, nil)
	stop := run(t, m)
	<-entered
	stop()
	checks, failures, _ := m.Counters()
	if checks != 0 || failures != 0 || !m.Up() {
		t.Errorf("after cancel during a check: checks %d, failures %d, Up() %v, want 0, 0, true", checks, failures, m.Up())
	}

	// Cancel while waiting for the next check.
	m2 := NewMonitor(Config{Interval: time.Second}, CheckFunc(func(context.Context) error { return nil }), clk, nil)
	stop2 := run(t, m2)
	clk.waitTimer(t, time.Second)
	stop2()
	if p := clk.pending(); len(p) != 0 {
		t.Errorf("pending timers after cancel = %v, want none (stopped)", p)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines = %d, want at most %d as before Run", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorOnChangeOrder: transitions from many goroutines reach
// onChange one at a time, alternating, and the last one matches Up().
func TestMonitorOnChangeOrder(t *testing.T) {
	var (
		mu     sync.Mutex
		events []bool
		inside atomic.Int32
	)
	m := NewMonitor(Config{Fall: 1, ErrorLimit: 1}, nil, newFakeClock(), func(up bool, _ string) {
		if inside.Add(1) != 1 {
			t.Errorf("onChange called concurrently")
		}
		mu.Lock()
		events = append(events, up)
		mu.Unlock()
		inside.Add(-1)
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				switch (g + i) % 3 {
				case 0:
					m.Force(true)
				case 1:
					m.Force(false)
				default:
					m.Observe(errBoom)
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(events) == 0 {
		t.Fatal("no onChange call")
	}
	for i, up := range events {
		if want := i%2 == 1; up != want {
			t.Fatalf("onChange call %d: up = %v, want %v (calls must alternate, starting with down)", i, up, want)
		}
	}
	if last := events[len(events)-1]; last != m.Up() {
		t.Errorf("last onChange up = %v, Up() = %v, want equal", last, m.Up())
	}
	if _, _, downs := m.Counters(); downs != uint64((len(events)+1)/2) {
		t.Errorf("down transitions = %d, want %d", downs, (len(events)+1)/2)
	}
}

// TestMonitorOnChangeReentrant: onChange may call the Monitor, even to
// cause another transition; that one is delivered after it returns.
func TestMonitorOnChangeReentrant(t *testing.T) {
	var m *Monitor
	var got []string
	m = NewMonitor(Config{}, nil, newFakeClock(), func(up bool, reason string) {
		got = append(got, fmt.Sprintf("%v %s (Up() = %v)", up, reason, m.Up()))
		if !up {
			m.Force(true)
		}
	})
	m.Force(false)
	want := []string{"false forced down by operator (Up() = false)", "true forced up by operator (Up() = true)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("onChange calls = %q, want %q", got, want)
	}
}

// TestMonitorOnChangePanic: a panicking onChange does not stop later
// transitions from being delivered.
func TestMonitorOnChangePanic(t *testing.T) {
	calls := 0
	m := NewMonitor(Config{}, nil, newFakeClock(), func(up bool, _ string) {
		calls++
		if calls == 1 {
			panic("first")
		}
	})
	func() {
		defer func() { recover() }()
		m.Force(false)
	}()
	m.Force(true)
	if calls != 2 {
		t.Errorf("onChange calls = %d, want 2", calls)
	}
}

// closingChecker counts Close calls.
type closingChecker struct {
	CheckFunc
	closed atomic.Int32
}

func (c *closingChecker) Close() error {
	c.closed.Add(1)
	return nil
}

// TestMonitorClosesChecker: Run closes a Checker that is an io.Closer when
// it returns, so a reload that replaces Monitors leaks no connection.
func TestMonitorClosesChecker(t *testing.T) {
	clk := newFakeClock()
	c := &closingChecker{CheckFunc: func(context.Context) error { return nil }}
	m := NewMonitor(Config{Interval: time.Second}, c, clk, nil)
	stop := run(t, m)
	clk.waitTimer(t, time.Second)
	if n := c.closed.Load(); n != 0 {
		t.Fatalf("Close calls while running = %d, want 0", n)
	}
	stop()
	if n := c.closed.Load(); n != 1 {
		t.Errorf("Close calls after Run returned = %d, want 1", n)
	}
}

func TestStartDown(t *testing.T) {
	var changes []bool
	ok := CheckFunc(func(context.Context) error { return nil })
	m := NewMonitor(Config{Interval: time.Second, Rise: 2, Fall: 3, StartDown: true}, ok, nil, func(up bool, _ string) { changes = append(changes, up) })
	if m.Up() {
		t.Fatalf("Up() = true at start, want false with StartDown")
	}
	if got := m.Status(); !strings.HasPrefix(got, "DOWN") {
		t.Errorf("Status() = %q, want DOWN …", got)
	}
	m.check(context.Background())
	if !m.Up() || len(changes) != 1 || !changes[0] {
		t.Errorf("after one passed check: Up() = %v, changes %v; want UP after one pass", m.Up(), changes)
	}
}
