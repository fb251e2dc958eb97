package vrrp

import (
	"errors"
	"net/netip"
	"sync"
	"time"
)

// fakeClock is a Clock moved only by Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), on: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.on && !t.at.After(c.now) {
			t.on = false
			select {
			case t.ch <- c.now:
			default:
			}
		}
	}
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
	at time.Time
	on bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.at, t.on = t.c.now.Add(d), true
	if d <= 0 {
		t.on = false
		t.ch <- t.c.now
	}
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.on = false
}

// fakeTransport records what a router sends and feeds it what tests push.
type fakeTransport struct {
	self netip.AddrPort
	mu   sync.Mutex
	sent []Advert
	in   chan Packet
	done chan struct{}
	once sync.Once
}

func newFakeTransport(self string) *fakeTransport {
	return &fakeTransport{
		self: netip.AddrPortFrom(netip.MustParseAddr(self), 0),
		in:   make(chan Packet, 64),
		done: make(chan struct{}),
	}
}

func (f *fakeTransport) Send(a *Advert) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *a
	f.sent = append(f.sent, c)
	return nil
}

func (f *fakeTransport) Receive() (Packet, error) {
	select {
	case p := <-f.in:
		return p, nil
	case <-f.done:
		return Packet{}, errors.New("closed")
	}
}

func (f *fakeTransport) LocalAddr() netip.AddrPort { return f.self }

func (f *fakeTransport) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

// Sent returns the priorities of the adverts sent so far, and forgets them.
func (f *fakeTransport) Sent() []uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ps []uint8
	for _, a := range f.sent {
		ps = append(ps, a.Priority)
	}
	f.sent = nil
	return ps
}

// fakeVIPs counts calls and tells whether the addresses are held.
type fakeVIPs struct {
	mu                          sync.Mutex
	held                        bool
	acquires, announces, releas int
}

func (v *fakeVIPs) Acquire() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.held = true
	v.acquires++
	return nil
}

func (v *fakeVIPs) Announce() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.announces++
	return nil
}

func (v *fakeVIPs) Release() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.held = false
	v.releas++
	return nil
}

func (v *fakeVIPs) Held() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.held
}
