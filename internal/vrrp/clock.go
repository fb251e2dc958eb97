package vrrp

import "time"

// Clock is the time source of a Router, injected so that tests drive the
// state machine without sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer a Router uses.
type Timer interface {
	C() <-chan time.Time
	// Reset stops the timer and makes it fire after d.
	Reset(d time.Duration)
	Stop()
}

// SystemClock is the Clock of the running system.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer(d time.Duration) Timer { return &sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t *sysTimer) C() <-chan time.Time { return t.t.C }

// Reset relies on Go 1.23+ timer semantics: Reset discards a pending tick.
func (t *sysTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t *sysTimer) Stop()                 { t.t.Stop() }
