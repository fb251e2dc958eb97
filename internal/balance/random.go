package balance

import (
	"math/rand/v2"
	"slices"
	"sync"
)

// randomTwo is power of two random choices (HAProxy's `balance random`,
// draws 2): two servers are drawn with probability proportional to weight
// and the one with fewer in-flight connections per unit of weight wins.
type randomTwo struct {
	mu sync.Mutex // guards the fields below

	weight   []int
	usable   []bool
	inflight []int
	rng      *rand.PCG
	// ids and cum list the usable servers with weight > 0 and the running
	// sum of their weights, for drawing by binary search.
	ids []int32
	cum []uint64
	at  []int32 // at[i] is server i's place in ids, or -1
}

var _ Balancer = (*randomTwo)(nil)

// newRandom seeds from the runtime's random source when seed is 0.
func newRandom(servers []Server, seed uint64) *randomTwo {
	if seed == 0 {
		seed = rand.Uint64()
	}
	b := &randomTwo{rng: rand.NewPCG(seed, seed^0x5851f42d4c957f2d)}
	for _, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.usable = append(b.usable, true)
		b.inflight = append(b.inflight, 0)
	}
	b.rebuild()
	return b
}

func (b *randomTwo) rebuild() {
	b.ids, b.cum = b.ids[:0], b.cum[:0]
	b.at = slices.Grow(b.at[:0], len(b.weight))[:len(b.weight)]
	var sum uint64
	for i, w := range b.weight {
		b.at[i] = -1
		if !b.usable[i] || w == 0 {
			continue
		}
		sum += uint64(w)
		b.at[i] = int32(len(b.ids))
		b.ids = append(b.ids, int32(i))
		b.cum = append(b.cum, sum)
	}
}

// draw returns a server drawn by weight, never skip (a server index, or
// -1 for none) unless it is the only one.
func (b *randomTwo) draw(skip int) int32 {
	total := b.cum[len(b.cum)-1]
	var lo, skipW uint64
	if skip >= 0 && b.at[skip] >= 0 && len(b.ids) > 1 {
		p := b.at[skip]
		if p > 0 {
			lo = b.cum[p-1]
		}
		skipW = b.cum[p] - lo
	}
	r := b.rng.Uint64() % (total - skipW)
	if skipW > 0 && r >= lo {
		r += skipW // jump over skip's share
	}
	p, _ := slices.BinarySearch(b.cum, r+1)
	return b.ids[p]
}

// Pick draws two servers (neither of them avoid when another exists) and
// returns the less loaded relative to weight, the first drawn on a tie.
func (b *randomTwo) Pick(_ []byte, avoid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ids) == 0 {
		return -1
	}
	s1, s2 := b.draw(avoid), b.draw(avoid)
	// inflight/weight compared without division.
	if uint64(b.inflight[s2])*uint64(b.weight[s1]) < uint64(b.inflight[s1])*uint64(b.weight[s2]) {
		s1 = s2
	}
	b.inflight[s1]++
	return int(s1)
}

// Release ends one of server i's connections.
func (b *randomTwo) Release(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[i] > 0 {
		b.inflight[i]--
	}
}

// SetWeight changes server i's weight (0..256, clamped).
func (b *randomTwo) SetWeight(i, weight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight[i] = clampWeight(weight)
	b.rebuild()
}

// SetUsable marks server i eligible or not.
func (b *randomTwo) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.usable[i] = usable
	b.rebuild()
}

// Add appends a server that is not usable yet.
func (b *randomTwo) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight = append(b.weight, s.Weight)
	b.usable = append(b.usable, false)
	b.inflight = append(b.inflight, 0)
	b.rebuild()
	return len(b.weight) - 1
}
