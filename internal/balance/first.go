package balance

import "sync"

// first fills servers in index order (src/lb_fas.c): the first usable
// server below its MaxConn takes the connection. Servers below their cap
// wait in a heap keyed by index; servers at their cap in another, keyed
// by in-flight/MaxConn, used only when every usable server is full.
type first struct {
	mu sync.Mutex // guards the fields below

	weight   []int
	maxConn  []int
	usable   []bool
	inflight []int
	f        forest // heaps firstOpen and firstFull
}

const (
	firstOpen int8 = 0
	firstFull int8 = 1
)

var _ Balancer = (*first)(nil)

func newFirst(servers []Server) *first {
	b := &first{}
	b.f.grow(len(servers))
	for i, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.maxConn = append(b.maxConn, s.MaxConn)
		b.usable = append(b.usable, true)
		b.inflight = append(b.inflight, 0)
		b.requeue(int32(i))
	}
	return b
}

func (b *first) requeue(i int32) {
	h, key := noHeap, uint64(i)
	switch {
	case !b.usable[i] || b.weight[i] == 0:
	case b.maxConn[i] == 0 || b.inflight[i] < b.maxConn[i]:
		h = firstOpen
	default:
		h = firstFull
		key = uint64(b.inflight[i]) << 32 / uint64(b.maxConn[i])
	}
	if b.f.in(i) == h && (h == noHeap || b.f.nodes[i].key == key) {
		return
	}
	b.f.remove(i)
	if h != noHeap {
		b.f.push(h, i, key)
	}
}

// Pick is fas_get_next_server: the lowest index among servers below their
// cap, skipping avoid when another exists.
func (b *first) Pick(_ []byte, avoid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.pickFrom(firstOpen, avoid)
	if s < 0 {
		s = b.pickFrom(firstFull, avoid)
	}
	if s < 0 {
		return -1
	}
	b.inflight[s]++
	b.requeue(s)
	return int(s)
}

// pickFrom returns the first server of heap h that is not avoid, or avoid
// if no other is there, or -1 if h is empty.
func (b *first) pickFrom(h int8, avoid int) int32 {
	s := b.f.min(h)
	if s >= 0 && int(s) == avoid {
		if s2 := b.f.second(h); s2 >= 0 {
			return s2
		}
		if h == firstOpen && b.f.min(firstFull) >= 0 {
			return -1 // a full server still beats the avoided one
		}
	}
	return s
}

// Release ends one of server i's connections.
func (b *first) Release(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[i] > 0 {
		b.inflight[i]--
	}
	b.requeue(int32(i))
}

// SetWeight changes server i's weight (0..256, clamped). Only 0 or not
// matters to first.
func (b *first) SetWeight(i, weight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight[i] = clampWeight(weight)
	b.requeue(int32(i))
}

// SetUsable marks server i eligible or not.
func (b *first) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.usable[i] = usable
	b.requeue(int32(i))
}

// Add appends a server that is not usable yet.
func (b *first) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight = append(b.weight, s.Weight)
	b.maxConn = append(b.maxConn, s.MaxConn)
	b.usable = append(b.usable, false)
	b.inflight = append(b.inflight, 0)
	b.f.grow(len(b.weight))
	return len(b.weight) - 1
}
