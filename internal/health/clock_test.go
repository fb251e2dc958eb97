package health

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer // pending, in creation order
}

type fakeTimer struct {
	clk  *fakeClock
	when time.Time
	c    chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clk: f, when: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	f := t.clk
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.timers {
		if p == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves time forward by d and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.timers[:0]
	for _, t := range f.timers {
		if t.when.After(f.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- f.now
	}
	f.timers = kept
}

// pending returns the time left on each pending timer, shortest first.
func (f *fakeClock) pending() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ds []time.Duration
	for _, t := range f.timers {
		ds = append(ds, t.when.Sub(f.now))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// waitTimer waits until exactly one timer is pending, with want left on it:
// the Monitor has finished its work and sleeps for want.
func (f *fakeClock) waitTimer(t *testing.T, want time.Duration) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := f.pending()
		if len(p) == 1 && p[0] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending timers = %v, want [%v]", p, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitAnyTimer waits until exactly one timer is pending and returns the
// time left on it.
func (f *fakeClock) waitAnyTimer(t *testing.T) time.Duration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p := f.pending(); len(p) == 1 {
			return p[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending timers = %v, want one", f.pending())
		}
		time.Sleep(time.Millisecond)
	}
}

// fire advances the clock to the single pending timer.
func (f *fakeClock) fire(t *testing.T) {
	t.Helper()
	p := f.pending()
	if len(p) != 1 {
		t.Fatalf("pending timers = %v, want one", p)
	}
	f.Advance(p[0])
}

func TestRealClockTimer(t *testing.T) {
	c := RealClock()
	start := c.Now()
	tm := c.NewTimer(10 * time.Millisecond)
	at := <-tm.C()
	if d := at.Sub(start); d < 10*time.Millisecond {
		t.Errorf("timer fired after %v, want at least 10ms", d)
	}
	if tm.Stop() {
		t.Errorf("Stop() of a fired timer = true, want false")
	}
	if !c.NewTimer(time.Hour).Stop() {
		t.Errorf("Stop() of a pending timer = false, want true")
	}
}
