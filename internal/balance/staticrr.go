package balance

import (
	"slices"
	"sync"
)

// staticRR is HAProxy's map-based static round robin (src/lb_map.c): a
// table with one slot per unit of effective weight, filled once per change
// by recalcMap and walked in order by Pick.
type staticRR struct {
	mu sync.Mutex // guards the fields below

	weight []int  // user weights
	usable []bool // not in maint/drain/down
	wscore []uint32
	// wmult is the greatest common divisor of every weight the backend
	// has had (lbprm.wmult): effective weight = weight / wmult. HAProxy
	// computes it once at start since only 0 or the initial weight may be
	// set later; fulcrum folds in each new weight, which keeps the ratios
	// exact and leaves wmult unchanged in HAProxy's cases.
	wmult int
	slots []int32 // lbprm.map.srv
	// other[o] is the first slot after o (cyclically) that holds another
	// server than slots[o], or -1 when one server holds every slot. It
	// makes avoid O(1) where HAProxy walks the map.
	other []int32
	rrIdx int // lbprm.map.rr_idx
}

var _ Balancer = (*staticRR)(nil)

func newStaticRR(servers []Server) *staticRR {
	b := &staticRR{}
	for _, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.usable = append(b.usable, true)
		b.wscore = append(b.wscore, 0)
		b.wmult = gcd(b.wmult, s.Weight)
	}
	b.recalcMap()
	return b
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (b *staticRR) eweight(i int) uint32 {
	if !b.usable[i] || b.wmult == 0 {
		return 0
	}
	return uint32((b.weight[i] + b.wmult - 1) / b.wmult)
}

// recalcMap is recalc_server_map: for each slot, every usable server gains
// its weight in score and the one with the highest score/total takes the
// slot (the first declared on equal scores) and pays the total back.
func (b *staticRR) recalcMap() {
	tot := uint32(0)
	for i := range b.weight {
		tot += b.eweight(i)
	}
	b.slots = b.slots[:0]
	if tot == 0 {
		return
	}
	for i := range b.wscore {
		b.wscore[i] = 0
	}
	for range tot {
		best, bestV := int32(-1), uint32(0)
		for i := range b.weight {
			ew := b.eweight(i)
			if ew == 0 {
				continue
			}
			if tot == 1 {
				best = int32(i)
				break
			}
			b.wscore[i] += ew
			v := (b.wscore[i] + tot) / tot // 0..3; the score may be "negative" in uint32 as in HAProxy
			if best < 0 || v > bestV {
				best, bestV = int32(i), v
			}
		}
		b.slots = append(b.slots, best)
		b.wscore[best] -= tot
	}
	b.other = nextOther(b.other, b.slots)
}

// nextOther fills other (reusing its storage) so that other[o] is the
// first index after o, wrapping around, whose owner differs from
// owners[o]; -1 everywhere when a single owner holds them all.
func nextOther(other, owners []int32) []int32 {
	n := len(owners)
	other = slices.Grow(other[:0], n)[:n]
	z := -1 // an index whose owner differs from the one before
	for o := 1; o < n; o++ {
		if owners[o] != owners[o-1] {
			z = o
			break
		}
	}
	if z < 0 {
		for o := range other {
			other[o] = -1
		}
		return other
	}
	// Backwards from z-1, each answer is the next index or the next
	// index's answer.
	for k := 1; k <= n; k++ {
		o := (z - k + n) % n
		next := (o + 1) % n
		if owners[next] != owners[o] {
			other[o] = int32(next)
		} else {
			other[o] = other[next]
		}
	}
	return other
}

// Pick is map_get_server_rr: the next slot, skipping slots of avoid
// unless it is the only server in the table. Where HAProxy walks the
// slots of avoid one by one, Pick jumps to the same slot in O(1).
func (b *staticRR) Pick(_ []byte, avoid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	tot := len(b.slots)
	if tot == 0 {
		return -1
	}
	if b.rrIdx < 0 || b.rrIdx >= tot {
		b.rrIdx = 0
	}
	idx := b.rrIdx
	srv := b.slots[idx]
	if int(srv) == avoid {
		o := b.other[idx]
		if o < 0 {
			// Only avoid is in the map: HAProxy returns it and, having
			// walked the whole map, leaves rr_idx where it was.
			return avoid
		}
		idx, srv = int(o), b.slots[o]
	}
	b.rrIdx = idx + 1
	return int(srv)
}

// Release does nothing: static round robin ignores in-flight work.
func (b *staticRR) Release(int) {}

// SetWeight changes server i's weight and rebuilds the table. HAProxy
// only accepts 0 or the initial weight here ("only accepts weights '0%'
// and '100%'"); those give HAProxy's sequence. Another weight rebuilds
// the table with the new ratios. The rebuild is O(total weight × servers).
func (b *staticRR) SetWeight(i, weight int) {
	weight = clampWeight(weight)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.weight[i] == weight {
		return
	}
	b.weight[i] = weight
	b.wmult = gcd(b.wmult, weight)
	b.recalcMap()
}

// SetUsable marks server i eligible or not and rebuilds the table.
func (b *staticRR) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usable[i] == usable {
		return
	}
	b.usable[i] = usable
	b.recalcMap()
}

// Add appends a server that is not usable yet. (HAProxy refuses `add
// server` on a static algorithm; fulcrum allows it.)
func (b *staticRR) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight = append(b.weight, s.Weight)
	b.usable = append(b.usable, false)
	b.wscore = append(b.wscore, 0)
	b.wmult = gcd(b.wmult, s.Weight)
	return len(b.weight) - 1
}
