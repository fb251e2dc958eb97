package edge

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/config"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLimiterTokenBucket(t *testing.T) {
	type step struct {
		at        time.Duration // since t0
		ok        bool
		retryLess time.Duration // when !ok: retryAfter must be in (0, retryLess]
	}
	tests := []struct {
		name  string
		cfg   config.RateLimit
		steps []step
	}{
		{"burst then refused", config.RateLimit{Rate: 1, Burst: 3}, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, time.Second},
		}},
		{"refills at rate", config.RateLimit{Rate: 2, Burst: 1}, []step{
			{0, true, 0}, {100 * time.Millisecond, false, 400 * time.Millisecond},
			{500 * time.Millisecond, true, 0}, {500 * time.Millisecond, false, 500 * time.Millisecond},
		}},
		{"refill capped at burst", config.RateLimit{Rate: 10, Burst: 2}, []step{
			{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, false, 100 * time.Millisecond},
		}},
		{"slow rate retry after", config.RateLimit{Rate: 0.1, Burst: 1}, []step{
			{0, true, 0}, {time.Second, false, 9 * time.Second}, {10 * time.Second, true, 0},
		}},
		{"clock going back is harmless", config.RateLimit{Rate: 1, Burst: 1}, []step{
			{10 * time.Second, true, 0}, {5 * time.Second, false, time.Second}, {11 * time.Second, true, 0},
		}},
		{"default burst is the rate", config.RateLimit{Rate: 3}, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, 334 * time.Millisecond},
		}},
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.cfg)
			for i, s := range tt.steps {
				ok, retry := l.Allow(ip, t0.Add(s.at))
				if ok != s.ok {
					t.Fatalf("step %d at %v: Allow() = %v, want %v", i, s.at, ok, s.ok)
				}
				if ok && retry != 0 {
					t.Errorf("step %d: retryAfter = %v on success, want 0", i, retry)
				}
				if !ok && (retry <= 0 || retry > s.retryLess) {
					t.Errorf("step %d: retryAfter = %v, want in (0, %v]", i, retry, s.retryLess)
				}
			}
		})
	}
}

func TestLimiterPerClient(t *testing.T) {
	l := NewLimiter(config.RateLimit{Rate: 1, Burst: 2, IPv6Prefix: 64})
	flood := netip.MustParseAddr("203.0.113.66")
	for range 2 {
		l.Allow(flood, t0)
	}
	if ok, _ := l.Allow(flood, t0); ok {
		t.Fatal("flooding client: Allow() = true after its burst, want false")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:203.0.113.66"), t0); ok {
		t.Error("same client as IPv4-mapped IPv6: Allow() = true, want false")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("198.51.100.2"), t0); !ok {
		t.Error("other client: Allow() = false, want true")
	}
	// One IPv6 host owns its /64: rotating addresses inside it does not help.
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	l.Allow(a, t0)
	l.Allow(a, t0)
	if ok, _ := l.Allow(b, t0); ok {
		t.Error("same /64: Allow() = true, want false")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:3::1"), t0); !ok {
		t.Error("other /64: Allow() = false, want true")
	}
}

func TestLimiterConns(t *testing.T) {
	l := NewLimiter(config.RateLimit{MaxConnsPerClient: 2})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	steps := []struct {
		op   string
		ip   netip.Addr
		want bool
	}{
		{"acquire", a, true}, {"acquire", a, true}, {"acquire", a, false},
		{"acquire", b, true},
		{"release", a, true}, {"acquire", a, true}, {"acquire", a, false},
		{"release", a, true}, {"release", a, true}, {"release", a, true}, // one release too many is harmless
		{"acquire", a, true}, {"acquire", a, true}, {"acquire", a, false},
	}
	for i, s := range steps {
		switch s.op {
		case "acquire":
			if got := l.Acquire(s.ip); got != s.want {
				t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, s.ip, got, s.want)
			}
		case "release":
			l.Release(s.ip)
		}
	}
	if got := l.Conns(a); got != 2 {
		t.Errorf("Conns(%s) = %d, want 2", a, got)
	}
	// Without a rate, Allow always allows.
	if ok, _ := l.Allow(a, t0); !ok {
		t.Error("Allow() = false without a rate, want true")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(config.RateLimit{MaxConnsPerClient: 10, Rate: 1e9, Burst: 1000, TableSize: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				if l.Acquire(ip) {
					l.Allow(ip, time.Now())
					l.Release(ip)
				}
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n > 1000 {
		t.Errorf("Len() = %d, want at most 1000", n)
	}
}

// A flood from a million distinct addresses cannot grow the table past its
// size, and a heavy hitter that keeps coming back stays remembered and
// limited throughout.
func TestLimiterMemoryBound(t *testing.T) {
	const size, distinct = 10000, 1000000
	l := NewLimiter(config.RateLimit{Rate: 1, Burst: 10, MaxConnsPerClient: 1, TableSize: size})
	heavy := netip.MustParseAddr("198.51.100.200")
	allowed := 0
	for i := range distinct {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(ip, t0)
		if i%100 == 0 {
			if ok, _ := l.Allow(heavy, t0); ok {
				allowed++
			}
		}
		if i%100000 == 0 {
			if n := l.Len(); n > size {
				t.Fatalf("after %d addresses Len() = %d, want at most %d", i, n, size)
			}
		}
	}
	if n := l.Len(); n > size {
		t.Errorf("Len() = %d, want at most %d", n, size)
	}
	if allowed != 10 {
		t.Errorf("heavy hitter allowed %d times among %d tries at one instant, want its burst 10", allowed, distinct/100)
	}
	// A client holding a connection keeps its count even under the flood.
	if !l.Acquire(heavy) {
		t.Fatal("Acquire(heavy) = false, want true")
	}
	for i := range 50000 {
		l.Allow(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
	}
	if l.Acquire(heavy) {
		t.Error("second Acquire(heavy) after a flood = true, want false (max 1)")
	}
}

func TestLimiterSmallTable(t *testing.T) {
	l := NewLimiter(config.RateLimit{Rate: 1, Burst: 1, TableSize: 1})
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), t0)
	}
	if n := l.Len(); n != 1 {
		t.Errorf("Len() = %d, want 1", n)
	}
}

func TestLimiterAllocations(t *testing.T) {
	l := NewLimiter(config.RateLimit{Rate: 100, Burst: 100, MaxConnsPerClient: 10})
	ip := netip.MustParseAddr("2001:db8::7")
	l.Allow(ip, t0)
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.Allow(ip, now)
		l.Acquire(ip)
		l.Release(ip)
	}); n != 0 {
		t.Errorf("Allow+Acquire+Release allocate %v times, want 0", n)
	}
	var nl *Limiter
	if ok, _ := nl.Allow(ip, t0); !ok || !nl.Acquire(ip) || nl.Len() != 0 {
		t.Error("nil Limiter limited, want allow everything")
	}
	nl.Release(ip)
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter(config.RateLimit{Rate: 1e9, Burst: 1000, TableSize: 100000})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		now := time.Now()
		for pb.Next() {
			i++
			l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
		}
	})
}

// BenchmarkLimiterTableMemory fills a 100,000-entry table with a flood of
// 1,000,000 distinct addresses and reports the heap it holds per entry.
func BenchmarkLimiterTableMemory(b *testing.B) {
	const size = 100000
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := NewLimiter(config.RateLimit{Rate: 10, MaxConnsPerClient: 10, TableSize: size})
		for i := range 1000000 {
			l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if l.Len() > size {
			b.Fatalf("Len() = %d, want at most %d", l.Len(), size)
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(l.Len())
		runtime.KeepAlive(l)
	}
	b.ReportMetric(perEntry, "B/entry")
}
