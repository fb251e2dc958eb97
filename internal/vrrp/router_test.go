package vrrp

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	vip  = netip.MustParseAddr("192.0.2.50")
	vip6 = netip.MustParseAddr("2001:db8::50")
)

// unit is one router driven synchronously through its handle* methods.
type unit struct {
	t   *testing.T
	r   *Router
	tr  *fakeTransport
	v   *fakeVIPs
	clk *fakeClock
}

func newUnit(t *testing.T, self string, cfg Config) *unit {
	t.Helper()
	return newUnitClock(t, self, cfg, newFakeClock())
}

func newUnitClock(t *testing.T, self string, cfg Config, clk *fakeClock) *unit {
	t.Helper()
	if cfg.VRID == 0 {
		cfg.VRID = 51
	}
	if cfg.AdvertInterval == 0 {
		cfg.AdvertInterval = time.Second
	}
	if cfg.Addrs == nil {
		cfg.Addrs = []netip.Addr{vip}
	}
	u := &unit{t: t, tr: newFakeTransport(self), v: &fakeVIPs{}, clk: clk}
	r, err := New(cfg, u.tr, u.v, clk, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	u.r = r
	return u
}

func (u *unit) start() { u.r.start(u.clk.Now()) }

// advance moves time forward in steps of 1ms, firing timers on the way.
func (u *unit) advance(d time.Duration) {
	end := u.clk.Now().Add(d)
	for u.clk.Now().Before(end) {
		step := min(end.Sub(u.clk.Now()), u.r.nextDeadline().Sub(u.clk.Now()))
		if step <= 0 {
			step = 0
		}
		u.clk.Advance(step)
		u.r.handleTimers(u.clk.Now())
		if step == 0 {
			u.clk.Advance(time.Nanosecond)
		}
	}
}

// recv delivers an advert from src.
func (u *unit) recv(src string, prio uint8, ivl time.Duration) {
	u.recvPacket(advertPacket(u.t, src, 51, prio, ivl, 255))
}

func (u *unit) recvPacket(p Packet) { u.r.handlePacket(p, u.clk.Now()) }

func (u *unit) wantState(want State) {
	u.t.Helper()
	if got := u.r.State(); got != want {
		u.t.Fatalf("State() = %v, want %v", got, want)
	}
	if held := u.v.Held(); held != (want == Master) {
		u.t.Fatalf("in state %v, VIPs held = %v", want, held)
	}
}

func advertPacket(t *testing.T, src string, vrid, prio uint8, ivl time.Duration, ttl int) Packet {
	t.Helper()
	cs, err := Centiseconds(ivl)
	if err != nil {
		t.Fatal(err)
	}
	s := netip.MustParseAddr(src)
	b, err := (&Advert{VRID: vrid, Priority: prio, Interval: cs, Addrs: []netip.Addr{vip}}).Marshal(s, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	return Packet{Src: netip.AddrPortFrom(s, 0), Dst: GroupIPv4, TTL: ttl, Data: b}
}

func TestStartupBackupThenMasterAfterMasterDownInterval(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100, AdvertInterval: time.Second})
	u.start()
	u.wantState(Backup)
	// Master_Down_Interval = 3 × 1s + (256−100) × 1s / 256 = 3.609375s.
	mdi := 3*time.Second + 156*time.Second/256
	u.advance(mdi - time.Millisecond)
	u.wantState(Backup)
	if got := u.tr.Sent(); len(got) != 0 {
		t.Fatalf("backup sent %v, want nothing", got)
	}
	u.advance(time.Millisecond)
	u.wantState(Master)
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{100}) {
		t.Fatalf("sent on takeover = %v, want [100]", got)
	}
	// Master advertises every Advertisement_Interval.
	u.advance(3 * time.Second)
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{100, 100, 100}) {
		t.Fatalf("sent in 3s as master = %v, want 3 adverts", got)
	}
	if s := u.r.Status(); s.Transitions != 2 || s.Master != u.tr.self {
		t.Fatalf("Status() = transitions %d master %v, want 2, %v", s.Transitions, s.Master, u.tr.self)
	}
}

func TestOwnerBecomesMasterAtOnce(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 255})
	u.start()
	u.wantState(Master)
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{255}) {
		t.Fatalf("sent = %v, want [255]", got)
	}
}

func TestBackupLearnsMasterAdvertInterval(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100, AdvertInterval: 100 * time.Millisecond})
	u.start()
	u.recv("192.0.2.12", 200, 500*time.Millisecond)
	// Learned: 3 × 500ms + 156 × 500ms / 256 = 1.8046875s, not the 0.36s
	// our own 100ms interval would give.
	want := 1500*time.Millisecond + 156*500*time.Millisecond/256
	if got := u.r.masterDownInterval(); got != want {
		t.Fatalf("masterDownInterval() = %v, want %v", got, want)
	}
	if s := u.r.Status(); s.MasterAdvertInterval != 500*time.Millisecond || s.Master.Addr().String() != "192.0.2.12" || s.MasterPriority != 200 {
		t.Fatalf("Status() = interval %v master %v prio %d, want 500ms 192.0.2.12 200", s.MasterAdvertInterval, s.Master, s.MasterPriority)
	}
	u.advance(want - time.Millisecond)
	u.wantState(Backup)
	u.advance(time.Millisecond)
	u.wantState(Master)
}

func TestBackupStaysWhileMasterAdvertises(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100})
	u.start()
	for range 20 {
		u.advance(time.Second)
		u.recv("192.0.2.12", 150, time.Second)
	}
	u.wantState(Backup)
}

func TestPriorityZeroHandoverAfterSkewTime(t *testing.T) {
	for _, prio := range []uint8{1, 100, 254} {
		u := newUnit(t, "192.0.2.11", Config{Priority: prio})
		u.start()
		u.recv("192.0.2.12", 150, time.Second)
		u.advance(500 * time.Millisecond)
		u.recv("192.0.2.12", 0, time.Second)
		skew := time.Duration(256-int(prio)) * time.Second / 256
		u.advance(skew - time.Millisecond)
		if u.r.State() != Backup {
			t.Fatalf("priority %d: master before Skew_Time %v", prio, skew)
		}
		u.advance(time.Millisecond)
		if u.r.State() != Master {
			t.Fatalf("priority %d: State() = %v %v after priority 0, want master after Skew_Time", prio, u.r.State(), skew)
		}
	}
}

func TestMasterStepsDownToHigherPriority(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100, AdvertInterval: 200 * time.Millisecond})
	u.start()
	u.advance(time.Second)
	u.wantState(Master)
	u.recv("192.0.2.12", 101, time.Second)
	u.wantState(Backup)
	if u.v.releas < 2 { // once at startup, once stepping down
		t.Fatalf("Release() calls = %d, want 2", u.v.releas)
	}
	// RFC 9568: Master_Down_Timer runs with the new master's interval.
	if got, want := u.r.downAt.Sub(u.clk.Now()), 3*time.Second+156*time.Second/256; got != want {
		t.Fatalf("master down timer = %v, want %v", got, want)
	}
}

func TestMasterTieBreakOnPrimaryAddress(t *testing.T) {
	tests := []struct {
		peer string
		want State
	}{
		{"192.0.2.12", Backup}, // higher address wins
		{"192.0.2.10", Master}, // lower address loses
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			u := newUnit(t, "192.0.2.11", Config{Priority: 100})
			u.start()
			u.advance(4 * time.Second)
			u.wantState(Master)
			u.tr.Sent()
			u.recv(tt.peer, 100, time.Second)
			u.wantState(tt.want)
			if tt.want == Master {
				if got := u.tr.Sent(); !slices.Equal(got, []uint8{100}) {
					t.Fatalf("sent after losing peer's advert = %v, want an immediate [100]", got)
				}
				if u.v.announces != 1 {
					t.Fatalf("Announce() calls = %d, want 1", u.v.announces)
				}
				// Again one interval later, after the other's own
				// announcements.
				u.advance(time.Second)
				if u.v.announces != 2 {
					t.Fatalf("Announce() calls = %d one interval later, want 2", u.v.announces)
				}
			}
		})
	}
}

// A master that keeps hearing a lower-priority master (which cannot hear
// it) answers each advert but announces at most once a second.
func TestMasterAssertThrottled(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 150, AdvertInterval: 100 * time.Millisecond})
	u.start()
	u.advance(time.Second)
	u.wantState(Master)
	u.tr.Sent()
	for range 20 { // two seconds of the other's adverts
		u.recv("192.0.2.12", 100, 100*time.Millisecond)
		u.clk.Advance(100 * time.Millisecond)
		u.r.handleTimers(u.clk.Now())
	}
	// At once and one interval later, twice: 4; the 5s repeat is not due.
	if u.v.announces != 4 {
		t.Fatalf("Announce() calls = %d in 2s, want 4", u.v.announces)
	}
	// One answer per advert heard, plus the periodic one each interval.
	if got := len(u.tr.Sent()); got != 40 {
		t.Fatalf("adverts sent = %d, want 40", got)
	}
}

// The owner preempts even with NoPreempt (RFC 5798 section 6.1).
func TestOwnerPreemptsDespiteNoPreempt(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 255, NoPreempt: true, Track: []Track{{Name: "web", Weight: 10}}})
	u.r.SetFault("web", true)
	u.start()
	u.wantState(Backup)
	u.r.SetFault("web", false)
	u.r.handleFaults(u.clk.Now())
	for range 5 {
		u.recv("192.0.2.12", 100, time.Second)
		u.advance(time.Second)
	}
	u.wantState(Master)
}

func TestMasterAnswersPriorityZeroAtOnce(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100})
	u.start()
	u.advance(4 * time.Second)
	u.tr.Sent()
	u.recv("192.0.2.12", 0, time.Second)
	u.wantState(Master)
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{100}) {
		t.Fatalf("sent = %v, want [100]", got)
	}
}

func TestPreempt(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		steps  int // adverts from the lower master, one a second
		wantAt State
	}{
		{"on", Config{Priority: 200}, 10, Master},
		{"off", Config{Priority: 200, NoPreempt: true}, 10, Backup},
		{"delay not elapsed", Config{Priority: 200, PreemptDelay: 30 * time.Second}, 10, Backup},
		{"delay elapsed", Config{Priority: 200, PreemptDelay: 5 * time.Second}, 12, Master},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnit(t, "192.0.2.11", tt.cfg)
			u.start()
			for range tt.steps {
				u.recv("192.0.2.12", 100, time.Second)
				u.advance(time.Second)
			}
			if got := u.r.State(); got != tt.wantAt {
				t.Fatalf("State() = %v, want %v", got, tt.wantAt)
			}
		})
	}
}

func TestPreemptTakesMasterDownInterval(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 200})
	u.start()
	mdi := u.r.masterDownInterval()
	for u.clk.Now().Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) < mdi-time.Second {
		u.recv("192.0.2.12", 100, time.Second)
		u.advance(time.Second)
	}
	u.wantState(Backup)
	u.advance(time.Second)
	u.wantState(Master)
}

func TestTracking(t *testing.T) {
	cfg := Config{Priority: 150, Track: []Track{{Name: "web", Weight: 60}, {Name: "api"}}}
	u := newUnit(t, "192.0.2.11", cfg)
	u.start()
	u.advance(4 * time.Second)
	u.wantState(Master)
	u.tr.Sent()

	steps := []struct {
		name string
		bad  bool
		want uint8
	}{
		{"web", true, 90},
		{"api", true, 1}, // weight 0 drops to the lowest priority
		{"web", false, 1},
		{"api", false, 150},
	}
	for _, s := range steps {
		u.r.SetFault(s.name, s.bad)
		<-u.r.kick
		u.r.handleFaults(u.clk.Now())
		if got := u.r.Status().EffectivePriority; got != s.want {
			t.Fatalf("SetFault(%q, %v): EffectivePriority = %d, want %d", s.name, s.bad, got, s.want)
		}
	}
	// Each change was advertised at once.
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{90, 1, 150}) {
		t.Fatalf("sent = %v, want [90 1 150]", got)
	}
	u.r.SetFault("nosuch", true)
	if got := u.r.Status().EffectivePriority; got != 150 {
		t.Fatalf("untracked fault changed the priority to %d", got)
	}
}

func TestTrackingOwnerLosesOwnership(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 255, Track: []Track{{Name: "web", Weight: 1}}})
	u.r.SetFault("web", true)
	u.start()
	if got := u.r.Status().EffectivePriority; got != 254 {
		t.Fatalf("EffectivePriority = %d, want 254", got)
	}
	u.wantState(Backup)
}

// A faulty master's lowered priority lets a preempting peer take over.
func TestTrackingHandsOverToHealthyPeer(t *testing.T) {
	clk := newFakeClock()
	n := newNet(t, clk,
		newUnitClock(t, "192.0.2.11", Config{Priority: 150, AdvertInterval: 100 * time.Millisecond, Track: []Track{{Name: "web"}}}, clk),
		newUnitClock(t, "192.0.2.12", Config{Priority: 100, AdvertInterval: 100 * time.Millisecond}, clk))
	n.run(2 * time.Second)
	n.wantMasters(0)
	n.u[0].r.SetFault("web", true)
	n.u[0].r.handleFaults(clk.Now())
	n.run(time.Second)
	n.wantMasters(1)
	n.u[0].r.SetFault("web", false)
	n.u[0].r.handleFaults(clk.Now())
	n.run(time.Second)
	n.wantMasters(0)
}

func TestReceiveChecks(t *testing.T) {
	good := func() Packet { return advertPacket(t, "192.0.2.12", 51, 200, time.Second, 255) }
	tests := []struct {
		name    string
		p       func() Packet
		dropped uint64
		other   uint64
	}{
		{"accepted", good, 0, 0},
		{"ttl 254", func() Packet { p := good(); p.TTL = 254; return p }, 1, 0},
		{"ttl unknown (local mode)", func() Packet { p := good(); p.TTL = -1; return p }, 0, 0},
		{"other vrid", func() Packet { return advertPacket(t, "192.0.2.12", 52, 200, time.Second, 255) }, 0, 1},
		{"bad checksum", func() Packet { p := good(); p.Data[7] ^= 1; return p }, 1, 0},
		{"wrong source for the checksum", func() Packet { p := good(); p.Src = netip.MustParseAddrPort("192.0.2.13:0"); return p }, 1, 0},
		{"truncated", func() Packet { p := good(); p.Data = p.Data[:6]; return p }, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnit(t, "192.0.2.11", Config{Priority: 100})
			u.start()
			u.recvPacket(tt.p())
			s := u.r.Status()
			if s.Dropped != tt.dropped || s.OtherVRID != tt.other {
				t.Fatalf("Status() dropped %d other %d, want %d %d", s.Dropped, s.OtherVRID, tt.dropped, tt.other)
			}
			accepted := tt.dropped == 0 && tt.other == 0
			if got := s.AdvertsReceived == 1; got != accepted {
				t.Fatalf("AdvertsReceived = %d, want accepted %v", s.AdvertsReceived, accepted)
			}
		})
	}
}

func TestOwnAdvertIgnored(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100})
	u.start()
	u.advance(4 * time.Second)
	u.recv("192.0.2.11", 200, time.Second)
	u.wantState(Master)
}

func TestShutdownResigns(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100})
	u.start()
	u.advance(4 * time.Second)
	u.tr.Sent()
	u.r.shutdown()
	u.wantState(Initialize)
	if got := u.tr.Sent(); !slices.Equal(got, []uint8{0}) {
		t.Fatalf("sent on shutdown = %v, want [0]", got)
	}
}

func TestSecondAnnouncement(t *testing.T) {
	u := newUnit(t, "192.0.2.11", Config{Priority: 100, AdvertInterval: 100 * time.Millisecond})
	u.start()
	u.advance(time.Second)
	u.wantState(Master)
	u.advance(garpRepeatDelay - time.Second)
	if u.v.announces != 0 {
		t.Fatalf("Announce() before the delay")
	}
	u.advance(time.Second)
	if u.v.announces != 1 {
		t.Fatalf("Announce() calls = %d after %v, want 1", u.v.announces, garpRepeatDelay)
	}
}

func TestOnChange(t *testing.T) {
	var got []string
	cfg := Config{Priority: 100, OnChange: func(from, to State) { got = append(got, from.String()+">"+to.String()) }}
	u := newUnit(t, "192.0.2.11", cfg)
	u.start()
	u.advance(4 * time.Second)
	u.r.shutdown()
	want := []string{"initialize>backup", "backup>master", "master>initialize"}
	if !slices.Equal(got, want) {
		t.Fatalf("OnChange calls = %v, want %v", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	tr, v := newFakeTransport("192.0.2.11"), &fakeVIPs{}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"vrid 0", Config{Priority: 100, Addrs: []netip.Addr{vip}}},
		{"priority 0", Config{VRID: 1, Addrs: []netip.Addr{vip}}},
		{"no address", Config{VRID: 1, Priority: 100}},
		{"interval too long", Config{VRID: 1, Priority: 100, AdvertInterval: time.Minute, Addrs: []netip.Addr{vip}}},
		{"mixed families", Config{VRID: 1, Priority: 100, Addrs: []netip.Addr{vip, netip.MustParseAddr("2001:db8::1")}}},
		{"duplicate track", Config{VRID: 1, Priority: 100, Addrs: []netip.Addr{vip}, Track: []Track{{Name: "a"}, {Name: "a"}}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg, tr, v, nil, nil); err == nil {
			t.Errorf("New(%s) = nil error, want one", tt.name)
		}
	}
}

// net links units: what one sends, the others receive, while up.
type fakeNet struct {
	t   *testing.T
	clk *fakeClock
	u   []*unit
	up  bool
}

func newNet(t *testing.T, clk *fakeClock, us ...*unit) *fakeNet {
	n := &fakeNet{t: t, clk: clk, u: us, up: true}
	for _, u := range us {
		u.start()
	}
	return n
}

// run advances the shared clock in 1ms steps, delivering adverts.
func (n *fakeNet) run(d time.Duration) {
	for end := n.clk.Now().Add(d); n.clk.Now().Before(end); {
		n.clk.Advance(time.Millisecond)
		for _, u := range n.u {
			u.r.handleTimers(n.clk.Now())
		}
		n.deliver()
	}
}

func (n *fakeNet) deliver() {
	for again := true; again; {
		again = false
		for i, u := range n.u {
			u.tr.mu.Lock()
			sent := u.tr.sent
			u.tr.sent = nil
			u.tr.mu.Unlock()
			if !n.up {
				continue
			}
			for _, a := range sent {
				again = true
				b, err := a.Marshal(u.tr.self.Addr(), GroupIPv4)
				if err != nil {
					n.t.Fatal(err)
				}
				for j, o := range n.u {
					if j != i {
						o.recvPacket(Packet{Src: u.tr.self, Dst: GroupIPv4, TTL: 255, Data: b})
					}
				}
			}
		}
	}
}

func (n *fakeNet) masters() []int {
	var m []int
	for i, u := range n.u {
		if u.r.State() == Master {
			m = append(m, i)
		}
	}
	return m
}

func (n *fakeNet) wantMasters(want ...int) {
	n.t.Helper()
	if got := n.masters(); !slices.Equal(got, want) {
		n.t.Fatalf("masters = %v, want %v", got, want)
	}
}

func TestSplitBrainRecovery(t *testing.T) {
	const ivl = 100 * time.Millisecond
	for _, prios := range [][2]uint8{{150, 100}, {100, 100}} {
		clk := newFakeClock()
		n := newNet(t, clk,
			newUnitClock(t, "192.0.2.11", Config{Priority: prios[0], AdvertInterval: ivl}, clk),
			newUnitClock(t, "192.0.2.12", Config{Priority: prios[1], AdvertInterval: ivl}, clk))
		n.run(time.Second)
		want := 0
		if prios[0] == prios[1] {
			want = 1 // the higher address
		}
		n.wantMasters(want)
		n.up = false
		n.run(time.Second)
		n.wantMasters(0, 1)
		n.up = true
		n.run(3 * ivl)
		n.wantMasters(want)
		if n.u[1-want].v.Held() {
			t.Fatalf("priorities %v: the backup still holds the VIPs", prios)
		}
	}
}

func TestFailoverAndFailback(t *testing.T) {
	const ivl = 100 * time.Millisecond
	clk := newFakeClock()
	a := newUnitClock(t, "192.0.2.11", Config{Priority: 150, AdvertInterval: ivl}, clk)
	b := newUnitClock(t, "192.0.2.12", Config{Priority: 100, AdvertInterval: ivl}, clk)
	n := newNet(t, clk, a, b)
	n.run(time.Second)
	n.wantMasters(0)
	// a resigns: b takes over after Skew_Time of priority 100.
	a.r.shutdown()
	n.deliver()
	skew := 156 * ivl / 256
	n.run(skew - time.Millisecond)
	n.wantMasters()
	n.run(2 * time.Millisecond)
	n.wantMasters(1)
	// a comes back and preempts after Master_Down_Interval.
	a.start()
	n.run(3*ivl + 106*ivl/256 + 2*time.Millisecond)
	n.wantMasters(0)
}

// Run end to end with the fake clock: startup, takeover, resignation.
func TestRun(t *testing.T) {
	clk := newFakeClock()
	tr, v := newFakeTransport("192.0.2.11"), &fakeVIPs{}
	changes := make(chan State, 4)
	r, err := New(Config{VRID: 51, Priority: 100, AdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{vip},
		OnChange: func(_, to State) { changes <- to }}, tr, v, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	if s := <-changes; s != Backup {
		t.Fatalf("first change to %v, want backup", s)
	}
	// The loop arms its timer after start; wait until it has, then jump
	// past Master_Down_Interval.
	for s := State(0); s != Master; {
		clk.Advance(time.Second)
		select {
		case s = <-changes:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !v.Held() {
		t.Fatal("master does not hold the VIPs")
	}
	tr.Sent()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if got := tr.Sent(); !slices.Equal(got, []uint8{0}) {
		t.Fatalf("sent on cancel = %v, want [0]", got)
	}
	if v.Held() || r.State() != Initialize {
		t.Fatalf("after Run: held %v state %v, want released, initialize", v.Held(), r.State())
	}
}

func TestStateJSON(t *testing.T) {
	b, err := json.Marshal(Status{State: Master})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"State":"master"`) {
		t.Fatalf("json.Marshal(Status) = %s, want State \"master\"", b)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil || s.State != Master {
		t.Fatalf("json.Unmarshal() = %v, %v; want master", s.State, err)
	}
}
