package admin

import (
	"math"
	"sync"
	"time"

	"fulcrum/internal/lb"
)

// shareWindow is how many of the latest samples a server's share of its
// backend's traffic is computed over.
const shareWindow = 10

// rates turns cumulative request counters into per-second rates, keeping
// a short history per frontend, backend and server for sparklines.
type rates struct {
	size int

	mu     sync.Mutex // guards the fields below
	last   time.Time
	series map[string]*series
}

// series is one counter's recent history.
type series struct {
	prev uint64    // counter at the last sample
	ring []float64 // rates, oldest first once full
	next int       // where the next rate goes
	full bool
}

func newRates(size int) *rates { return &rates{size: size, series: map[string]*series{}} }

func frontendKey(f string) string  { return "f\x00" + f }
func backendKey(b string) string   { return "b\x00" + b }
func serverKey(b, s string) string { return "s\x00" + b + "\x00" + s }

// sample records counters taken at now. A counter that went down (a server
// deleted and added again) restarts from zero.
func (r *rates) sample(now time.Time, st lb.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dt := now.Sub(r.last).Seconds()
	first := r.last.IsZero()
	if !first && dt <= 0 {
		return
	}
	r.last = now
	seen := make(map[string]bool, len(r.series))
	add := func(key string, n uint64) {
		seen[key] = true
		s := r.series[key]
		if s == nil {
			s = &series{prev: n, ring: make([]float64, r.size)}
			r.series[key] = s
			if first {
				return
			}
			// New since the last sample: its requests so far came in
			// the last interval at most.
			s.prev = 0
		}
		d := n - s.prev
		if n < s.prev {
			d = n
		}
		s.prev = n
		// Hundredths are plenty, and keep the page's JSON short.
		s.ring[s.next] = math.Round(float64(d)/dt*100) / 100
		s.next++
		if s.next == len(s.ring) {
			s.next, s.full = 0, true
		}
	}
	for _, f := range st.Frontends {
		add(frontendKey(f.Name), f.Counts.Requests)
	}
	for _, b := range st.Backends {
		add(backendKey(b.Name), b.Counts.Requests)
		for _, s := range b.Servers {
			add(serverKey(b.Name, s.Name), s.Counts.Requests)
		}
	}
	for k := range r.series {
		if !seen[k] {
			delete(r.series, k)
		}
	}
}

// rate returns the latest rate of key (0 when not sampled yet).
func (r *rates) rate(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series[key]
	if s == nil || (s.next == 0 && !s.full) {
		return 0
	}
	return s.ring[(s.next-1+len(s.ring))%len(s.ring)]
}

// history returns key's rates, oldest first (empty when not sampled yet).
func (r *rates) history(key string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series[key]
	if s == nil {
		return []float64{}
	}
	if !s.full {
		return append([]float64{}, s.ring[:s.next]...)
	}
	return append(append([]float64{}, s.ring[s.next:]...), s.ring[:s.next]...)
}

// recent sums key's latest n rates.
func (r *rates) recent(key string, n int) float64 {
	h := r.history(key)
	if len(h) > n {
		h = h[len(h)-n:]
	}
	var sum float64
	for _, v := range h {
		sum += v
	}
	return sum
}
