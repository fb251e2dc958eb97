package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Checker performs one check of one server. It must return once ctx is done
// (ctx carries the check timeout as its deadline); a nil error means healthy.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f(ctx).
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Config of a Monitor. Zero or negative values get HAProxy's defaults.
type Config struct {
	// Interval between checks while the server is fully UP (HAProxy inter,
	// default 2s).
	Interval time.Duration
	// Timeout of one check (HAProxy timeout check, default Interval).
	Timeout time.Duration
	// FastInterval between checks while a state change is in progress, or
	// after ErrorLimit passive errors (HAProxy fastinter, default Interval).
	FastInterval time.Duration
	// DownInterval between checks while fully DOWN (HAProxy downinter,
	// default Interval).
	DownInterval time.Duration
	// Rise consecutive passed checks bring a DOWN server UP (default 2);
	// Fall consecutive failed checks take an UP server DOWN (default 3).
	Rise, Fall int
	// ErrorLimit consecutive passive errors count as one failed check and
	// bring the next check forward to FastInterval (HAProxy observe with
	// error-limit and on-error fail-check; default 10).
	ErrorLimit int
	// StartDown starts the server DOWN, one passed check from UP (HAProxy
	// 3.1's init-state down), for servers that must not get traffic before
	// a check has said they may, such as a database node of a given role.
	// By default a server starts fully UP.
	StartDown bool
}

// withDefaults fills in every zero or negative field.
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Interval
	}
	if c.FastInterval <= 0 {
		c.FastInterval = c.Interval
	}
	if c.DownInterval <= 0 {
		c.DownInterval = c.Interval
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	if c.Fall <= 0 {
		c.Fall = 3
	}
	if c.ErrorLimit <= 0 {
		c.ErrorLimit = 10
	}
	return c
}

// Result of the last check.
type Result struct {
	OK       bool
	Err      error // nil when OK
	Duration time.Duration
	At       time.Time // when the check started
}

// Monitor is one server's health state machine with HAProxy's semantics
// (src/check.c): a health counter runs from 0 to Rise+Fall-1 and the server
// is UP while it is at least Rise. A failed check decrements it, dropping to
// 0 (DOWN) when it falls below Rise; a passed check increments it, jumping to
// Rise+Fall-1 (fully UP) when it reaches Rise. So an UP server goes DOWN
// after Fall consecutive failures and a DOWN one comes back after Rise
// consecutive successes.
//
// A Monitor starts fully UP, like HAProxy's `init-state fully-up`: a server
// just added takes traffic, and one failed check does not remove it.
// (HAProxy's default starts at Rise, where the first failure marks it DOWN.)
//
// With a nil Checker the Monitor is passive only: its state changes through
// Observe and Force alone, so a server that went DOWN stays DOWN until
// Force(true).
type Monitor struct {
	cfg      Config
	checker  Checker
	clk      Clock
	onChange func(up bool, reason string)

	up          atomic.Bool  // health >= Rise; read on the hot path
	passiveErrs atomic.Int64 // consecutive passive errors

	checks, failures, downs atomic.Uint64

	// wake asks Run to look at its schedule again (enabled, hurry).
	wake chan struct{}

	mu         sync.Mutex // guards the fields below
	health     int        // 0..Rise+Fall-1
	enabled    bool
	hurry      bool // a passive failure asks for the next check within FastInterval
	fails      int  // consecutive failed checks, for reasons
	passes     int  // consecutive passed checks, for reasons
	last       Result
	pending    []transition // not yet given to onChange, oldest first
	delivering bool         // a goroutine is calling onChange for pending
}

type transition struct {
	up     bool
	reason string
}

// NewMonitor returns a Monitor of one server, UP, with checks enabled. c may
// be nil (passive only); clk nil means RealClock. onChange, if not nil, is
// called once per transition, in order, outside any lock of the Monitor; it
// may call the Monitor's methods. It may run on the goroutine of Run,
// Observe or Force, whichever made or found the transition pending.
func NewMonitor(cfg Config, c Checker, clk Clock, onChange func(up bool, reason string)) *Monitor {
	if clk == nil {
		clk = RealClock()
	}
	m := &Monitor{
		cfg:      cfg.withDefaults(),
		checker:  c,
		clk:      clk,
		onChange: onChange,
		wake:     make(chan struct{}, 1),
		enabled:  true,
	}
	m.health = m.full()
	m.up.Store(true)
	if m.cfg.StartDown {
		m.health = m.cfg.Rise - 1
		m.up.Store(false)
	}
	return m
}

func (m *Monitor) full() int { return m.cfg.Rise + m.cfg.Fall - 1 }

// Run checks the server on schedule until ctx is done. The first check runs
// at once. It does nothing but wait when the Monitor has no Checker. Call it
// once per Monitor: the Monitor owns its Checker, and Run closes it on
// return when it is an io.Closer (a MySQL checker's connection).
func (m *Monitor) Run(ctx context.Context) {
	if m.checker == nil {
		<-ctx.Done()
		return
	}
	if c, ok := m.checker.(io.Closer); ok {
		defer c.Close()
	}
	var (
		next    = m.clk.Now() // when the next check is due
		timer   Timer         // armed for timerAt, or nil
		timerAt time.Time
	)
	disarm := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
	}
	defer disarm()
	for {
		if !m.isEnabled() {
			disarm()
			select {
			case <-ctx.Done():
				return
			case <-m.wake:
			}
			if m.isEnabled() {
				next = m.clk.Now().Add(m.interval())
			}
			continue
		}
		if d := next.Sub(m.clk.Now()); d > 0 {
			if timer == nil || !timerAt.Equal(next) {
				disarm()
				timer, timerAt = m.clk.NewTimer(d), next
			}
			select {
			case <-ctx.Done():
				return
			case <-m.wake:
				next = m.hurried(next)
				continue
			case <-timer.C():
				timer = nil
			}
		}
		if !m.isEnabled() {
			continue
		}
		m.check(ctx)
		if ctx.Err() != nil {
			return
		}
		next = m.clk.Now().Add(m.interval())
	}
}

func (m *Monitor) isEnabled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enabled
}

// interval is HAProxy's srv_getinter: inter when fully UP, downinter when
// fully DOWN, fastinter in between. It also ends a hurry: the check it
// asked for has run.
func (m *Monitor) interval() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hurry = false
	switch m.health {
	case m.full():
		return m.cfg.Interval
	case 0:
		return m.cfg.DownInterval
	}
	return m.cfg.FastInterval
}

// hurried brings next forward to within FastInterval of now when a passive
// failure asked for it, like HAProxy's health_adjust requeueing the check
// task.
func (m *Monitor) hurried(next time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.hurry {
		return next
	}
	m.hurry = false
	if soon := m.clk.Now().Add(m.cfg.FastInterval); soon.Before(next) {
		return soon
	}
	return next
}

// check runs the Checker once and applies its result.
func (m *Monitor) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	start := m.clk.Now()
	err := m.checker.Check(cctx)
	dur := m.clk.Now().Sub(start)
	if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("timed out after %v: %w", m.cfg.Timeout, err)
	}
	cancel()
	if ctx.Err() != nil {
		return // Run is stopping; the failure is ours, not the server's
	}
	m.checks.Add(1)

	m.mu.Lock()
	if !m.enabled {
		m.mu.Unlock()
		return
	}
	m.last = Result{OK: err == nil, Err: err, Duration: dur, At: start}
	if err == nil {
		m.passiveErrs.Store(0) // HAProxy clears consecutive_errors on a passed check
		m.passLocked()
	} else {
		m.failLocked(err.Error())
	}
	m.mu.Unlock()
	m.deliver()
}

// passLocked applies one passed check.
func (m *Monitor) passLocked() {
	m.fails = 0
	m.passes++
	if m.health >= m.full() {
		return
	}
	wasUp := m.health >= m.cfg.Rise
	m.health++
	if m.health >= m.cfg.Rise {
		m.health = m.full()
	}
	if !wasUp && m.health >= m.cfg.Rise {
		m.setLocked(true, plural(m.passes, "passed check")+" in a row")
	}
}

// failLocked applies one failed check described by why.
func (m *Monitor) failLocked(why string) {
	m.passes = 0
	m.fails++
	if m.health == 0 {
		return
	}
	// HAProxy's chkfail counts only failures that lowered the health.
	m.failures.Add(1)
	wasUp := m.health >= m.cfg.Rise
	m.health--
	if m.health < m.cfg.Rise {
		m.health = 0
	}
	if wasUp && m.health < m.cfg.Rise {
		m.setLocked(false, plural(m.fails, "failed check")+" in a row, last: "+why)
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// setLocked records a transition to up and queues it for onChange.
func (m *Monitor) setLocked(up bool, reason string) {
	m.up.Store(up)
	if !up {
		m.downs.Add(1)
	}
	if m.onChange != nil {
		m.pending = append(m.pending, transition{up, reason})
	}
}

// deliver gives pending transitions to onChange, oldest first, unless
// another goroutine (or an outer call on this one) is already doing so.
func (m *Monitor) deliver() {
	m.mu.Lock()
	if m.delivering {
		m.mu.Unlock()
		return
	}
	m.delivering = true
	for len(m.pending) > 0 {
		t := m.pending[0]
		m.pending = m.pending[1:]
		m.mu.Unlock()
		m.notify(t)
		m.mu.Lock()
	}
	m.delivering = false
	m.mu.Unlock()
}

// notify calls onChange; should it panic, later transitions still get
// delivered.
func (m *Monitor) notify(t transition) {
	done := false
	defer func() {
		if !done {
			m.mu.Lock()
			m.delivering = false
			m.mu.Unlock()
		}
	}()
	m.onChange(t.up, t.reason)
	done = true
}

// Up reports whether the server may take traffic. It takes no lock.
func (m *Monitor) Up() bool { return m.up.Load() }

// Observe takes one passive result from live traffic: nil resets the count
// of consecutive errors; ErrorLimit consecutive errors count as one failed
// check and bring the next check forward to FastInterval (HAProxy observe +
// error-limit + on-error fail-check). Which errors count is the caller's
// choice (HAProxy layer4: connection failures; layer7: also invalid
// responses and 5xx other than 501 and 505). Ignored while checks are
// disabled.
func (m *Monitor) Observe(err error) {
	if err == nil {
		if m.passiveErrs.Load() != 0 {
			m.passiveErrs.Store(0)
		}
		return
	}
	// Every ErrorLimit-th error acts, so concurrent callers neither lose
	// nor double a failure (HAProxy resets the count to 0 instead).
	n := m.passiveErrs.Add(1)
	if n%int64(m.cfg.ErrorLimit) != 0 {
		return
	}
	n = int64(m.cfg.ErrorLimit)
	m.mu.Lock()
	if !m.enabled {
		m.mu.Unlock()
		return
	}
	m.failLocked(fmt.Sprintf("%d consecutive errors on live traffic, last: %v", n, err))
	m.hurry = true
	m.mu.Unlock()
	m.poke()
	m.deliver()
}

// poke wakes Run without blocking.
func (m *Monitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Last returns the result of the last check (the zero Result before the
// first one).
func (m *Monitor) Last() Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// SetEnabled turns checks on or off. Off, the state stays as it is: no
// check runs, a result in flight and passive errors are ignored. On again,
// the next check comes one interval later.
func (m *Monitor) SetEnabled(on bool) {
	m.mu.Lock()
	changed := m.enabled != on
	m.enabled = on
	m.mu.Unlock()
	m.passiveErrs.Store(0)
	if changed {
		m.poke()
	}
}

// Force sets the health state now, like HAProxy's `set server health
// up|down`: fully UP or fully DOWN, onChange told if the state changed.
// Checks continue from there, so Fall failures take a forced-up server down
// again and Rise successes bring a forced-down one back.
func (m *Monitor) Force(up bool) {
	m.mu.Lock()
	wasUp := m.health >= m.cfg.Rise
	if up {
		m.health = m.full()
	} else {
		m.health = 0
	}
	m.fails, m.passes = 0, 0
	m.passiveErrs.Store(0)
	if wasUp != up {
		reason := "forced down by operator"
		if up {
			reason = "forced up by operator"
		}
		m.setLocked(up, reason)
	}
	m.mu.Unlock()
	m.deliver()
}

// Counters returns the number of checks run, of failed checks that lowered
// the health (HAProxy's chkfail: failures while fully DOWN do not count;
// ErrorLimit passive errors count as one), and of UP to DOWN transitions
// whatever their cause (HAProxy's chkdown).
func (m *Monitor) Counters() (checks, failures, downTransitions uint64) {
	return m.checks.Load(), m.failures.Load(), m.downs.Load()
}

// Status describes the state as HAProxy's stats do: "UP", "DOWN", or during
// a change "UP 2/3" (going down: one failure seen, fall 3) or "DOWN 1/2"
// (going up: one success seen, rise 2).
func (m *Monitor) Status() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.health == m.full():
		return "UP"
	case m.health == 0:
		return "DOWN"
	case m.health >= m.cfg.Rise:
		return fmt.Sprintf("UP %d/%d", m.health-m.cfg.Rise+1, m.cfg.Fall)
	}
	return fmt.Sprintf("DOWN %d/%d", m.health, m.cfg.Rise)
}
