package balance

// leastConn sends to the usable server with the fewest in-flight
// connections relative to its weight (src/lb_fwlc.c). Servers wait in a
// heap keyed like HAProxy's tree: 0 when idle, else (inflight+1)/weight
// scaled; a server is requeued only when its key changes, and equal keys
// leave first-in first-out, which makes ties go round robin.
type leastConn struct {
	counted
}

var _ Balancer = (*leastConn)(nil)

// lcScale keeps (inflight+1)/weight apart for every weight 1..256.
const lcScale = 1 << 24

func newLeastConn(servers []Server) *leastConn {
	b := &leastConn{}
	b.init(servers, b.requeue)
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
	b.took(s)
	return int(s)
}
