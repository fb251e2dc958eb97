package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// State is a VRRP router state (RFC 5798 section 6.4).
type State int

// The states of RFC 5798 section 6.4. Initialize is also the state before
// Run and after it returns.
const (
	Initialize State = iota
	Backup
	Master
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "initialize"
	case Backup:
		return "backup"
	case Master:
		return "master"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText implements encoding.TextMarshaler, so that a Status reads
// "state": "master" in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	for _, c := range []State{Initialize, Backup, Master} {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("vrrp: unknown state %q", b)
}

// OwnerPriority is the priority of the router that owns the virtual
// addresses: it becomes master at once (RFC 5798 section 6.1).
const OwnerPriority = 255

// garpRepeatDelay is when a new master announces its addresses a second
// time, as keepalived does (garp_master_delay 5s), for switches and hosts
// that missed the first burst.
const garpRepeatDelay = 5 * time.Second

// Config is one virtual router of this instance.
type Config struct {
	// VRID is the Virtual Router Identifier, 1..255.
	VRID uint8
	// Priority is 1..254, or OwnerPriority (255) for the address owner.
	Priority uint8
	// AdvertInterval is how often a master advertises (default 1s),
	// truncated to centiseconds; 10ms..40.95s.
	AdvertInterval time.Duration
	// Addrs are the virtual addresses listed in adverts, all of one family.
	// In local mode, the IP of the shared front address.
	Addrs []netip.Addr
	// NoPreempt keeps a lower-priority master in place when this router
	// could take over. The zero value preempts, as RFC 5798 section 6.1
	// recommends.
	NoPreempt bool
	// PreemptDelay is how long a lower-priority master must have been heard
	// before this router preempts it (0: at once, which still means after
	// Master_Down_Interval). It lets a restarted load balancer warm up.
	PreemptDelay time.Duration
	// Track lists the conditions SetFault may report.
	Track []Track
	// OnChange, if set, is called from Run's goroutine after every state
	// change, after the VIPs have been acquired or released. It must not
	// block for long: adverts wait for it.
	OnChange func(from, to State)
}

// Track is a condition that lowers this router's priority while it is bad,
// such as "every server of backend web is down".
type Track struct {
	Name string
	// Weight is subtracted from the priority while the condition is bad.
	// 0 drops the priority to 1, the lowest, so that any healthy peer takes
	// over. A reduced priority is kept in 1..254.
	Weight int
}

// Transport carries adverts between the routers of one virtual router.
type Transport interface {
	// Send sends a to every peer: the multicast group or each unicast
	// peer, computing the checksum for each destination.
	Send(a *Advert) error
	// Receive blocks until a packet arrives; it returns an error once the
	// transport is closed.
	Receive() (Packet, error)
	// LocalAddr is this router's primary address: the source of its
	// adverts and the tie-breaker between equal priorities. Its port is 0
	// except in local mode.
	LocalAddr() netip.AddrPort
	// Close releases the sockets and unblocks Receive.
	Close() error
}

// Packet is a received VRRP payload and what the network layer said of it.
type Packet struct {
	Src netip.AddrPort
	Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit, -1 when the transport cannot
	// tell (local mode, where loopback traffic cannot have been routed).
	TTL  int
	Data []byte
}

// VIPs holds the virtual addresses while the router is master.
type VIPs interface {
	// Acquire makes this instance answer for the addresses and announces
	// them (gratuitous ARP, unsolicited neighbour advertisements).
	Acquire() error
	// Announce repeats the announcement.
	Announce() error
	// Release stops answering for the addresses. Releasing addresses not
	// held is not an error.
	Release() error
}

// Status is a snapshot of a Router for metrics and the status page.
type Status struct {
	State State
	VRID  uint8
	// Priority is the configured priority, EffectivePriority the one
	// advertised, lowered by failed tracks.
	Priority          uint8
	EffectivePriority uint8
	Faults            []string
	// Master is the address of the current master (this router's own when
	// master, invalid when unknown), MasterPriority its last priority.
	Master         netip.AddrPort
	MasterPriority uint8
	// AdvertInterval is this router's; MasterAdvertInterval the one learned
	// from the master (RFC 5798 section 6.1, Master_Adver_Interval).
	AdvertInterval       time.Duration
	MasterAdvertInterval time.Duration
	Transitions          uint64
	LastChange           time.Time
	AdvertsSent          uint64
	AdvertsReceived      uint64
	// Dropped counts packets discarded: wrong TTL, malformed or bad
	// checksum, wrong family or interval. Adverts of other VRIDs are not
	// errors and are counted in OtherVRID.
	Dropped   uint64
	OtherVRID uint64
	// AddrMismatch counts adverts whose addresses differ from ours (RFC
	// 5798 section 7.1 allows acting on them; they are logged once).
	AddrMismatch uint64
	SendErrors   uint64
}

// Router runs one virtual router: the state machine of RFC 5798 section 6.4
// with the corrections of RFC 9568.
type Router struct {
	cfg  Config
	t    Transport
	v    VIPs
	clk  Clock
	log  *slog.Logger
	self netip.AddrPort
	kick chan struct{}

	// Loop state, owned by the goroutine in Run (or a test driving the
	// handle* methods directly).
	state        State
	prio         uint8         // effective priority
	masterIvl    time.Duration // Master_Adver_Interval
	downAt       time.Time     // Master_Down_Timer, in Backup
	advertAt     time.Time     // Adver_Timer, in Master
	garpAt       time.Time     // second announcement, in Master
	announceAt   time.Time     // announcement after a lower master steps down
	lowerSince   time.Time     // first lower-priority advert, for PreemptDelay
	lastAssert   time.Time     // last announcement against a lower master
	sendFailing  bool          // the last send failed (logged once)
	loggedAddrs  bool
	loggedFamily bool

	// mu guards the fields below, shared with SetFault and Status.
	mu     sync.Mutex
	faults map[string]bool
	status Status
}

// New returns a Router for cfg that sends and receives with t and holds the
// addresses with v. Run closes t when it returns. A nil clk means the system
// clock, a nil log discards.
func New(cfg Config, t Transport, v VIPs, clk Clock, log *slog.Logger) (*Router, error) {
	if cfg.VRID == 0 {
		return nil, fmt.Errorf("vrrp: virtual router id 0: must be 1..255")
	}
	if cfg.Priority == 0 {
		return nil, fmt.Errorf("vrrp: priority 0: must be 1..255")
	}
	if cfg.AdvertInterval == 0 {
		cfg.AdvertInterval = time.Second
	}
	cs, err := Centiseconds(cfg.AdvertInterval)
	if err != nil {
		return nil, err
	}
	cfg.AdvertInterval = time.Duration(cs) * 10 * time.Millisecond
	if len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("vrrp: %w", ErrNoAddresses)
	}
	if _, err := (&Advert{VRID: cfg.VRID, Addrs: cfg.Addrs}).MarshalBinary(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, tr := range cfg.Track {
		if tr.Name == "" || seen[tr.Name] {
			return nil, fmt.Errorf("vrrp: track %q: names must be unique and not empty", tr.Name)
		}
		if tr.Weight < 0 || tr.Weight > 254 {
			return nil, fmt.Errorf("vrrp: track %q: weight %d: must be 0..254", tr.Name, tr.Weight)
		}
		seen[tr.Name] = true
	}
	if t == nil || v == nil {
		return nil, errors.New("vrrp: a transport and a VIP handler are required")
	}
	if clk == nil {
		clk = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		cfg:    cfg,
		t:      t,
		v:      v,
		clk:    clk,
		log:    log.With("vrid", cfg.VRID),
		self:   t.LocalAddr(),
		kick:   make(chan struct{}, 1),
		faults: map[string]bool{},
		prio:   cfg.Priority,
	}
	r.masterIvl = cfg.AdvertInterval
	r.status = Status{
		VRID:                 cfg.VRID,
		Priority:             cfg.Priority,
		EffectivePriority:    cfg.Priority,
		AdvertInterval:       cfg.AdvertInterval,
		MasterAdvertInterval: cfg.AdvertInterval,
	}
	return r, nil
}

// State returns the current state.
func (r *Router) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.State
}

// Status returns a snapshot of the router's state and counters.
func (r *Router) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Faults = slices.Clone(s.Faults)
	return s
}

// SetFault reports whether the tracked condition name is bad; while it is,
// the router advertises a lower priority (see Track). Names not listed in
// Config.Track are ignored, so a caller may report every backend. Safe for
// concurrent use.
func (r *Router) SetFault(name string, bad bool) {
	if !slices.ContainsFunc(r.cfg.Track, func(t Track) bool { return t.Name == name }) {
		return
	}
	r.mu.Lock()
	changed := r.faults[name] != bad
	r.faults[name] = bad
	r.mu.Unlock()
	if changed {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Run elects until ctx is done, then resigns: a master sends a priority 0
// advert so that a backup takes over after only Skew_Time (RFC 5798
// section 6.4.3), and releases the addresses. It returns nil after ctx is
// done, or the transport's error if it fails. Run closes the transport, so
// a Router runs once.
func (r *Router) Run(ctx context.Context) error {
	defer r.t.Close()
	recv := make(chan Packet, 16)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			p, err := r.t.Receive()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case recv <- p:
			case <-done:
				return
			}
		}
	}()

	r.start(r.clk.Now())
	timer := r.clk.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(max(r.nextDeadline().Sub(r.clk.Now()), 0))
		select {
		case <-ctx.Done():
			r.shutdown()
			return nil
		case err := <-recvErr:
			r.shutdown()
			return fmt.Errorf("vrrp: receive: %w", err)
		case p := <-recv:
			r.handlePacket(p, r.clk.Now())
		case <-timer.C():
			r.handleTimers(r.clk.Now())
		case <-r.kick:
			r.handleFaults(r.clk.Now())
		}
	}
}

// start is the Startup event of RFC 5798 section 6.4.1.
func (r *Router) start(now time.Time) {
	// A previous run killed without resigning may have left the
	// addresses behind; a backup must not hold them.
	if err := r.v.Release(); err != nil {
		r.log.Warn("releasing virtual addresses at startup", "err", err)
	}
	r.handleFaults(now)
	if r.prio == OwnerPriority {
		r.becomeMaster(now, "address owner (priority 255)")
		return
	}
	r.becomeBackup(now, r.cfg.AdvertInterval, "startup")
}

// shutdown is the Shutdown event of RFC 5798 sections 6.4.2 and 6.4.3.
func (r *Router) shutdown() {
	if r.state == Master {
		r.send(0)
		if err := r.v.Release(); err != nil {
			r.log.Error("releasing virtual addresses", "err", err)
		}
	}
	r.setState(Initialize, "shutdown")
	r.downAt, r.advertAt, r.garpAt, r.announceAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

// nextDeadline is the earliest running timer, or an hour away when none is.
func (r *Router) nextDeadline() time.Time {
	next := r.clk.Now().Add(time.Hour)
	for _, t := range []time.Time{r.downAt, r.advertAt, r.garpAt, r.announceAt} {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	return next
}

// skewTime is Skew_Time of RFC 5798 section 6.1:
// ((256 − Priority) × Master_Adver_Interval) / 256.
func (r *Router) skewTime() time.Duration {
	return time.Duration(256-int(r.prio)) * r.masterIvl / 256
}

// masterDownInterval is Master_Down_Interval of RFC 5798 section 6.1.
func (r *Router) masterDownInterval() time.Duration {
	return 3*r.masterIvl + r.skewTime()
}

func (r *Router) becomeMaster(now time.Time, reason string) {
	r.downAt, r.lowerSince = time.Time{}, time.Time{}
	// RFC 5798 section 6.4.1/6.4.2: advertise first, then announce.
	r.send(r.prio)
	r.advertAt = now.Add(r.cfg.AdvertInterval)
	r.garpAt = now.Add(garpRepeatDelay)
	if err := r.v.Acquire(); err != nil {
		r.log.Error("acquiring virtual addresses", "err", err)
	}
	r.mu.Lock()
	r.status.Master = r.self
	r.status.MasterPriority = r.prio
	r.status.MasterAdvertInterval = r.cfg.AdvertInterval
	r.mu.Unlock()
	r.setState(Master, reason)
}

func (r *Router) becomeBackup(now time.Time, masterIvl time.Duration, reason string) {
	was := r.state
	r.advertAt, r.garpAt, r.announceAt = time.Time{}, time.Time{}, time.Time{}
	r.masterIvl = masterIvl
	// RFC 9568 section 6.4.3 says what RFC 5798 left out: a master stepping
	// down starts Master_Down_Timer (Active_Down_Timer there) too.
	r.downAt = now.Add(r.masterDownInterval())
	if was == Master {
		if err := r.v.Release(); err != nil {
			r.log.Error("releasing virtual addresses", "err", err)
		}
	}
	r.mu.Lock()
	r.status.MasterAdvertInterval = masterIvl
	r.mu.Unlock()
	r.setState(Backup, reason)
}

func (r *Router) setState(s State, reason string) {
	from := r.state
	if from == s {
		return
	}
	r.state = s
	now := r.clk.Now()
	r.mu.Lock()
	r.status.State = s
	r.status.Transitions++
	r.status.LastChange = now
	if s != Master && from == Master {
		r.status.Master = netip.AddrPort{}
	}
	r.mu.Unlock()
	r.log.Info("vrrp state changed", "from", from, "to", s, "reason", reason, "priority", r.prio)
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(from, s)
	}
}

func (r *Router) send(prio uint8) {
	cs, _ := Centiseconds(r.cfg.AdvertInterval) // validated by New
	a := &Advert{VRID: r.cfg.VRID, Priority: prio, Interval: cs, Addrs: r.cfg.Addrs}
	err := r.t.Send(a)
	r.mu.Lock()
	if err != nil {
		r.status.SendErrors++
	} else {
		r.status.AdvertsSent++
	}
	r.mu.Unlock()
	// A cut link fails every send: say so once, and once when it heals.
	switch {
	case err != nil && !r.sendFailing:
		r.log.Warn("sending adverts fails", "err", err)
	case err == nil && r.sendFailing:
		r.log.Info("sending adverts again")
	}
	r.sendFailing = err != nil
}

func (r *Router) drop(reason string, p Packet, err error) {
	r.mu.Lock()
	r.status.Dropped++
	r.mu.Unlock()
	r.log.Debug("advert dropped", "reason", reason, "src", p.Src, "err", err)
}

// handlePacket is the receipt of an ADVERTISEMENT (RFC 5798 sections 7.1,
// 6.4.2 and 6.4.3).
func (r *Router) handlePacket(p Packet, now time.Time) {
	if p.Src == r.self {
		return // our own multicast, looped back
	}
	// Section 7.1: a packet that may have been routed is not from our link.
	if p.TTL >= 0 && p.TTL != 255 {
		r.drop("ttl", p, fmt.Errorf("ttl %d, want 255", p.TTL))
		return
	}
	a, err := ParseAdvert(p.Data, p.Src.Addr(), p.Dst)
	if err != nil {
		r.drop("malformed", p, err)
		return
	}
	if a.VRID != r.cfg.VRID {
		r.mu.Lock()
		r.status.OtherVRID++
		r.mu.Unlock()
		return
	}
	if a.IsIPv6() != r.cfg.Addrs[0].Is6() {
		if !r.loggedFamily {
			r.loggedFamily = true
			r.log.Warn("advert of the other address family for our VRID", "src", p.Src)
		}
		r.drop("family", p, nil)
		return
	}
	if a.Interval == 0 {
		r.drop("interval", p, ErrInterval)
		return
	}
	r.mu.Lock()
	r.status.AdvertsReceived++
	mismatch := !slices.Equal(a.Addrs, r.cfg.Addrs)
	if mismatch {
		r.status.AddrMismatch++
	}
	r.mu.Unlock()
	if mismatch && !r.loggedAddrs {
		r.loggedAddrs = true
		r.log.Warn("advert lists other virtual addresses than ours", "src", p.Src, "theirs", a.Addrs, "ours", r.cfg.Addrs)
	}

	switch r.state {
	case Backup:
		r.backupRx(a, p.Src, now)
	case Master:
		r.masterRx(a, p.Src, now)
	}
}

// backupRx is RFC 5798 section 6.4.2, receipt of an advert in Backup.
func (r *Router) backupRx(a *Advert, src netip.AddrPort, now time.Time) {
	if a.Priority == 0 {
		// The master resigned: take over after Skew_Time only.
		r.downAt = now.Add(r.skewTime())
		r.log.Debug("master resigned", "src", src, "takeover_in", r.skewTime())
		return
	}
	// RFC 5798 section 6.1: the address owner preempts whatever NoPreempt
	// says.
	accept := r.cfg.NoPreempt && r.prio != OwnerPriority || a.Priority >= r.prio
	if !accept && r.cfg.PreemptDelay > 0 {
		if r.lowerSince.IsZero() {
			r.lowerSince = now
			r.log.Info("lower-priority master; preempting after the delay", "master", src, "master_priority", a.Priority, "delay", r.cfg.PreemptDelay)
		}
		accept = now.Sub(r.lowerSince) < r.cfg.PreemptDelay
	}
	if !accept {
		// Preempt: let Master_Down_Timer run out.
		return
	}
	if a.Priority >= r.prio {
		r.lowerSince = time.Time{}
	}
	r.masterIvl = a.IntervalDuration()
	r.downAt = now.Add(r.masterDownInterval())
	r.mu.Lock()
	r.status.Master = src
	r.status.MasterPriority = a.Priority
	r.status.MasterAdvertInterval = r.masterIvl
	r.mu.Unlock()
}

// masterRx is RFC 5798 section 6.4.3, receipt of an advert in Master.
func (r *Router) masterRx(a *Advert, src netip.AddrPort, now time.Time) {
	switch {
	case a.Priority == 0:
		// Another master resigned: assert ourselves at once.
		r.send(r.prio)
		r.advertAt = now.Add(r.cfg.AdvertInterval)
	case a.Priority > r.prio || a.Priority == r.prio && src.Compare(r.self) > 0:
		r.becomeBackup(now, a.IntervalDuration(), fmt.Sprintf("advert from %v with priority %d", src, a.Priority))
		r.mu.Lock()
		r.status.Master = src
		r.status.MasterPriority = a.Priority
		r.mu.Unlock()
	default:
		// Two masters (a healed split brain, or a peer that has just
		// taken over): the RFC discards the advert. We also advertise at
		// once, so the other steps down within one round trip, and
		// announce now and again one interval later, so that hosts on the
		// link follow us even if the other's announcements, sent just
		// after its advert, reach them after ours. A peer that does not
		// step down (it cannot hear us) is answered with adverts only,
		// and announced against once a second.
		r.send(r.prio)
		r.advertAt = now.Add(r.cfg.AdvertInterval)
		if now.Sub(r.lastAssert) < time.Second {
			return
		}
		r.lastAssert = now
		r.announceAt = now.Add(r.cfg.AdvertInterval)
		r.log.Info("advert from a lower-priority master", "src", src, "priority", a.Priority)
		if err := r.v.Announce(); err != nil {
			r.log.Warn("announcing virtual addresses", "err", err)
		}
	}
}

// handleTimers fires the timers that are due.
func (r *Router) handleTimers(now time.Time) {
	switch r.state {
	case Backup:
		if !r.downAt.IsZero() && !now.Before(r.downAt) {
			r.becomeMaster(now, "master down timer expired")
		}
	case Master:
		if !r.advertAt.IsZero() && !now.Before(r.advertAt) {
			r.send(r.prio)
			r.advertAt = r.advertAt.Add(r.cfg.AdvertInterval)
			if r.advertAt.Before(now) { // we fell behind: do not burst
				r.advertAt = now.Add(r.cfg.AdvertInterval)
			}
		}
		for _, at := range []*time.Time{&r.garpAt, &r.announceAt} {
			if !at.IsZero() && !now.Before(*at) {
				*at = time.Time{}
				if err := r.v.Announce(); err != nil {
					r.log.Warn("announcing virtual addresses", "err", err)
				}
			}
		}
	}
}

// handleFaults recomputes the effective priority from the tracked faults.
func (r *Router) handleFaults(now time.Time) {
	r.mu.Lock()
	p := int(r.cfg.Priority)
	var bad []string
	for _, t := range r.cfg.Track {
		if !r.faults[t.Name] {
			continue
		}
		bad = append(bad, t.Name)
		if t.Weight == 0 {
			p = 1
		} else {
			p -= t.Weight
		}
	}
	if len(bad) > 0 {
		p = min(max(p, 1), OwnerPriority-1)
	}
	old := r.prio
	r.prio = uint8(p)
	r.status.EffectivePriority = r.prio
	r.status.Faults = bad
	if r.state == Master {
		r.status.MasterPriority = r.prio
	}
	r.mu.Unlock()
	if old == r.prio {
		return
	}
	r.log.Info("vrrp priority changed", "from", old, "to", r.prio, "faults", bad)
	if r.state == Master {
		// Tell the backups now rather than at the next interval, so that a
		// preempting peer starts its Master_Down_Timer at once.
		r.send(r.prio)
		r.advertAt = now.Add(r.cfg.AdvertInterval)
	}
}
