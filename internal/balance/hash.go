package balance

import (
	"slices"
	"sync"
)

// pointsPerWeight is the number of ring points per unit of weight, as
// HAProxy gives each server weight×BE_WEIGHT_SCALE nodes (lb_chash.c).
const pointsPerWeight = weightScale

// hashRing is consistent hashing for source and uri: each usable server
// with weight w owns 16·w pseudo-random points on a 64-bit ring, and a key
// goes to the owner of the first point at or after the key's hash. The
// points of a server depend only on its index, so two load balancers with
// the same server list send a key to the same server, and removing a
// server moves only the keys that were on its points.
type hashRing struct {
	mu sync.Mutex // guards the fields below

	weight []int
	usable []bool
	ring   []ringPoint // sorted by hash, then server
	other  []int32     // other[p]: the next point owned by another server (see nextOther)
	// Scratch space reused by change and reindex.
	spare, own []ringPoint
	owners     []int32
}

type ringPoint struct {
	hash uint64
	srv  int32
}

var _ Balancer = (*hashRing)(nil)

func newHashRing(servers []Server) *hashRing {
	b := &hashRing{}
	for _, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.usable = append(b.usable, true)
	}
	b.rebuild()
	return b
}

// rebuild computes the ring from scratch: O(P log P) for P points. New
// uses it; runtime changes go through change.
func (b *hashRing) rebuild() {
	b.ring = b.ring[:0]
	for i := range b.weight {
		b.ring = b.appendPoints(b.ring, int32(i))
	}
	slices.SortFunc(b.ring, cmpPoint)
	b.reindex()
}

// change brings server i's points on the ring in line with its weight
// and state: O(P) (one pass to drop them, one merge to put them back),
// plus O(w log w) to sort its own 16·w points.
func (b *hashRing) change(i int32) {
	kept := b.spare[:0]
	for _, rp := range b.ring {
		if rp.srv != i {
			kept = append(kept, rp)
		}
	}
	base := kept
	own := b.appendPoints(b.own[:0], i)
	slices.SortFunc(own, cmpPoint)
	b.own = own
	// Merge into the old ring's storage: kept and own are elsewhere.
	merged := b.ring[:0]
	for len(kept) > 0 && len(own) > 0 {
		if cmpPoint(kept[0], own[0]) <= 0 {
			merged, kept = append(merged, kept[0]), kept[1:]
		} else {
			merged, own = append(merged, own[0]), own[1:]
		}
	}
	b.ring = append(append(merged, kept...), own...)
	b.spare = base[:0]
	b.reindex()
}

// appendPoints appends server i's points if it is usable: 16·weight
// points whose hashes depend only on i and the point number, so a
// weight change adds or drops points at the end of the same series.
func (b *hashRing) appendPoints(dst []ringPoint, i int32) []ringPoint {
	if !b.usable[i] {
		return dst
	}
	for j := range b.weight[i] * pointsPerWeight {
		dst = append(dst, ringPoint{hash: mix64(uint64(i)<<32 | uint64(j)), srv: i})
	}
	return dst
}

func cmpPoint(a, b ringPoint) int {
	switch {
	case a.hash < b.hash:
		return -1
	case a.hash > b.hash:
		return 1
	}
	return int(a.srv - b.srv)
}

// reindex recomputes other after the ring changed.
func (b *hashRing) reindex() {
	b.owners = b.owners[:0]
	for _, rp := range b.ring {
		b.owners = append(b.owners, rp.srv)
	}
	b.other = nextOther(b.other, b.owners)
}

// HashKey is the 64-bit hash fulcrum places keys with: FNV-1a followed by
// a finalizer that spreads short keys (an IPv4 address) over the ring.
// It is stable across processes and versions so that a pair of load
// balancers agrees.
func HashKey(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Pick returns the owner of the first point at or after key's hash, or
// when that is avoid, the owner of the next point that is not avoid's.
func (b *hashRing) Pick(key []byte, avoid int) int {
	h := HashKey(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.ring)
	if n == 0 {
		return -1
	}
	p, _ := slices.BinarySearchFunc(b.ring, h, func(rp ringPoint, h uint64) int {
		switch {
		case rp.hash < h:
			return -1
		case rp.hash > h:
			return 1
		}
		return 0
	})
	if p == n {
		p = 0
	}
	s := b.ring[p].srv
	if int(s) == avoid {
		if o := b.other[p]; o >= 0 {
			s = b.ring[o].srv
		}
	}
	return int(s)
}

// Release does nothing: hashing ignores in-flight work.
func (b *hashRing) Release(int) {}

// SetWeight changes server i's weight (0..256, clamped) and its number of
// points; keys move only to or from server i.
func (b *hashRing) SetWeight(i, weight int) {
	weight = clampWeight(weight)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.weight[i] == weight {
		return
	}
	b.weight[i] = weight
	b.change(int32(i))
}

// SetUsable adds server i's points to the ring or takes them off.
func (b *hashRing) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usable[i] == usable {
		return
	}
	b.usable[i] = usable
	b.change(int32(i))
}

// Add appends a server that is not usable yet (no points until then).
func (b *hashRing) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight = append(b.weight, s.Weight)
	b.usable = append(b.usable, false)
	return len(b.weight) - 1
}
