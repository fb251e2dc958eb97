package balance

// first fills servers in index order (src/lb_fas.c): the first usable
// server below its MaxConn takes the connection. Servers below their cap
// wait in a heap keyed by index; servers at their cap in another, keyed
// by in-flight/MaxConn, used only when every usable server is full.
type first struct {
	counted
}

const (
	firstOpen int8 = 0
	firstFull int8 = 1
)

var _ Balancer = (*first)(nil)

func newFirst(servers []Server) *first {
	b := &first{}
	b.init(servers, b.requeue)
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
	b.took(s)
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
