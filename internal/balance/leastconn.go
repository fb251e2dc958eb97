package balance

import "sync"

// leastConn sends to the usable server with the fewest in-flight
// connections relative to its weight (src/lb_fwlc.c). Servers wait in a
// heap keyed like HAProxy's tree: 0 when idle, else (inflight+1)/weight
// scaled; a server is requeued only when its key changes, and equal keys
// leave first-in first-out, which makes ties go round robin.
type leastConn struct {
	mu sync.Mutex // guards the fields below

	weight   []int
	usable   []bool
	inflight []int
	f        forest // heap 0: usable servers with weight > 0
}

var _ Balancer = (*leastConn)(nil)

// lcScale keeps (inflight+1)/weight apart for every weight 1..256.
const lcScale = 1 << 24

func newLeastConn(servers []Server) *leastConn {
	b := &leastConn{}
	b.f.grow(len(servers))
	for i, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.usable = append(b.usable, true)
		b.inflight = append(b.inflight, 0)
		b.requeue(int32(i))
	}
	return b
}

func (b *leastConn) key(i int32) uint64 {
	n := b.inflight[i]
	if n <= 0 {
		return 0
	}
	return uint64(n+1) * lcScale / uint64(b.weight[i])
}

// requeue puts server i where its state says: out of the heap when not
// usable, else at its key (moved only when the key changed).
func (b *leastConn) requeue(i int32) {
	if !b.usable[i] || b.weight[i] == 0 {
		b.f.remove(i)
		return
	}
	k := b.key(i)
	if b.f.in(i) == 0 && b.f.nodes[i].key == k {
		return
	}
	b.f.remove(i)
	b.f.push(0, i, k)
}

// Pick is fwlc_get_next_server: the first server of the heap, or the
// second if the first is to be avoided.
func (b *leastConn) Pick(_ []byte, avoid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.f.min(0)
	if s < 0 {
		return -1
	}
	if int(s) == avoid {
		if s2 := b.f.second(0); s2 >= 0 {
			s = s2
		}
	}
	b.inflight[s]++
	b.requeue(s)
	return int(s)
}

// Release ends one of server i's connections.
func (b *leastConn) Release(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[i] > 0 {
		b.inflight[i]--
	}
	b.requeue(int32(i))
}

// SetWeight changes server i's weight (0..256, clamped).
func (b *leastConn) SetWeight(i, weight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight[i] = clampWeight(weight)
	b.requeue(int32(i))
}

// SetUsable marks server i eligible or not.
func (b *leastConn) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.usable[i] = usable
	b.requeue(int32(i))
}

// Add appends a server that is not usable yet.
func (b *leastConn) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight = append(b.weight, s.Weight)
	b.usable = append(b.usable, false)
	b.inflight = append(b.inflight, 0)
	b.f.grow(len(b.weight))
	return len(b.weight) - 1
}
