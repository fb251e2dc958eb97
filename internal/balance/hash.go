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
	mu sync.Mutex
	// mu guards the fields below.
	weight []int
	usable []bool
	ring   []ringPoint // sorted by hash, then server
	other  []int32     // other[p]: the next point owned by another server (see nextOther)
	owners []int32     // scratch for rebuild
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

// rebuild recomputes the ring from scratch: O(P log P) for P points, at
// most 4096 per server. It runs on weight and state changes only.
func (b *hashRing) rebuild() {
	n := 0
	for i, w := range b.weight {
		if b.usable[i] {
			n += w * pointsPerWeight
		}
	}
	ring := make([]ringPoint, 0, n)
	for i, w := range b.weight {
		if !b.usable[i] {
			continue
		}
		for j := range w * pointsPerWeight {
			ring = append(ring, ringPoint{hash: mix64(uint64(i)<<32 | uint64(j)), srv: int32(i)})
		}
	}
	slices.SortFunc(ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.srv - b.srv)
	})
	b.ring = ring
	b.owners = b.owners[:0]
	for _, rp := range ring {
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
	b.rebuild()
}

// SetUsable adds server i's points to the ring or takes them off.
func (b *hashRing) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usable[i] == usable {
		return
	}
	b.usable[i] = usable
	b.rebuild()
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
