package edge

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"fulcrum/internal/config"
)

// Limiter keeps per-client state like an HAProxy stick table: a token
// bucket for the request rate and a count of open connections. The table
// holds at most table_size clients; when it is full the clock algorithm
// forgets a client that was not seen since the hand last passed. A new
// client starts without that second chance, so a flood of one-off
// addresses recycles its own entries while clients that come back (a heavy
// hitter among them) stay remembered and limited.
//
// IPv6 clients are grouped by ipv6_prefix (default /64). Methods on a nil
// Limiter allow everything.
type Limiter struct {
	rate     float64 // tokens per second; 0: no rate limit
	burst    float64
	maxConns int32 // 0: no cap
	v6bits   int
	seed     uint64
	shards   []shard
}

type shard struct {
	mu sync.Mutex
	// mu guards the fields below.
	index   map[netip.Addr]int32
	entries []entry
	max     int
	hand    int
	_       [40]byte // keep neighbouring shards' locks off one cache line
}

type entry struct {
	addr   netip.Addr
	tokens float64
	last   int64 // UnixNano of the last refill; 0: not yet
	conns  int32
	ref    bool // seen again since the clock hand passed
}

// NewLimiter makes a Limiter from a validated rate_limit section; zero
// fields take the documented defaults.
func NewLimiter(cfg config.RateLimit) *Limiter {
	size := cfg.TableSize
	if size <= 0 {
		size = 100000
	}
	burst := float64(cfg.Burst)
	if burst < 1 {
		burst = math.Max(1, math.Ceil(cfg.Rate))
	}
	v6 := cfg.IPv6Prefix
	if v6 <= 0 || v6 > 128 {
		v6 = 64
	}
	n := 1
	for n < 64 && n*2*16 <= size { // at least 16 entries a shard
		n *= 2
	}
	l := &Limiter{
		rate:     math.Max(0, cfg.Rate),
		burst:    burst,
		maxConns: int32(max(0, cfg.MaxConnsPerClient)),
		v6bits:   v6,
		seed:     rand.Uint64(),
		shards:   make([]shard, n),
	}
	for i := range l.shards {
		l.shards[i].max = size / n
		l.shards[i].index = make(map[netip.Addr]int32)
	}
	return l
}

// Allow takes one token from ip's bucket at time now. When the bucket is
// empty it returns false and how long until a token is back (round up to
// whole seconds for a Retry-After header, RFC 9110 section 10.2.3).
func (l *Limiter) Allow(ip netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.rate == 0 {
		return true, 0
	}
	k := l.key(ip)
	s := l.shard(k)
	s.mu.Lock()
	e := l.lookup(s, k, true)
	t := now.UnixNano()
	if e.last != 0 && t > e.last {
		e.tokens = math.Min(l.burst, e.tokens+float64(t-e.last)*l.rate/1e9)
	}
	if e.last == 0 || t > e.last {
		e.last = t
	}
	if e.tokens >= 1 {
		e.tokens--
		s.mu.Unlock()
		return true, 0
	}
	missing := 1 - e.tokens
	s.mu.Unlock()
	return false, time.Duration(math.Ceil(missing / l.rate * 1e9))
}

// Acquire counts one more open connection from ip; false means ip already
// has max_conns_per_client and the connection must be refused. Every true
// must be paired with a Release.
func (l *Limiter) Acquire(ip netip.Addr) bool {
	if l == nil || l.maxConns == 0 {
		return true
	}
	k := l.key(ip)
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := l.lookup(s, k, true)
	if e.conns >= l.maxConns {
		return false
	}
	e.conns++
	return true
}

// Release ends a connection counted by Acquire.
func (l *Limiter) Release(ip netip.Addr) {
	if l == nil || l.maxConns == 0 {
		return
	}
	k := l.key(ip)
	s := l.shard(k)
	s.mu.Lock()
	if e := l.lookup(s, k, false); e != nil && e.conns > 0 {
		e.conns--
	}
	s.mu.Unlock()
}

// Len is the number of clients remembered, at most table_size.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// Conns is the number of open connections counted for ip.
func (l *Limiter) Conns(ip netip.Addr) int {
	if l == nil {
		return 0
	}
	k := l.key(ip)
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := l.lookup(s, k, false); e != nil {
		return int(e.conns)
	}
	return 0
}

func (l *Limiter) key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() && l.v6bits < 128 {
		p, _ := ip.Prefix(l.v6bits)
		return p.Addr()
	}
	return ip
}

func (l *Limiter) shard(k netip.Addr) *shard {
	if len(l.shards) == 1 {
		return &l.shards[0]
	}
	b := k.As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:]) ^ l.seed
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return &l.shards[h&uint64(len(l.shards)-1)]
}

// lookup finds k's entry, creating it (and evicting another when the shard
// is full) if create is set. s.mu must be held.
func (l *Limiter) lookup(s *shard, k netip.Addr, create bool) *entry {
	if i, ok := s.index[k]; ok {
		e := &s.entries[i]
		e.ref = true
		return e
	}
	if !create {
		return nil
	}
	var i int
	if len(s.entries) < s.max {
		s.entries = append(s.entries, entry{})
		i = len(s.entries) - 1
	} else {
		i = s.victim()
		delete(s.index, s.entries[i].addr)
	}
	s.entries[i] = entry{addr: k, tokens: l.burst}
	s.index[k] = int32(i)
	return &s.entries[i]
}

// victim runs the clock hand to an entry to forget: one not seen again
// since the hand last passed and, if possible, without open connections.
func (s *shard) victim() int {
	n := len(s.entries)
	for step := 0; ; step++ {
		i := s.hand
		s.hand++
		if s.hand == n {
			s.hand = 0
		}
		e := &s.entries[i]
		if e.ref {
			e.ref = false
			continue
		}
		// After two sweeps every entry has open connections: forget one
		// anyway, so the table stays bounded (its Release becomes a no-op).
		if e.conns > 0 && step < 2*n {
			continue
		}
		return i
	}
}
