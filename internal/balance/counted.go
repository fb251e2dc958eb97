package balance

import "sync"

// counted is the state that leastconn and first share: per-server weight,
// cap, usability and in-flight count, the heaps the servers wait in, and
// the changes that only requeue a server. place, set by the owner, puts
// server i where its state says (the owner's ordering).
type counted struct {
	mu sync.Mutex // guards the fields below

	weight   []int
	maxConn  []int
	usable   []bool
	inflight []int
	f        forest
	place    func(i int32)
}

// init fills the table with servers, all usable, and queues them.
func (b *counted) init(servers []Server, place func(int32)) {
	b.place = place
	b.f.grow(len(servers))
	for i, s := range servers {
		b.weight = append(b.weight, s.Weight)
		b.maxConn = append(b.maxConn, s.MaxConn)
		b.usable = append(b.usable, true)
		b.inflight = append(b.inflight, 0)
		b.place(int32(i))
	}
}

// took counts a connection given to server s (the lock held).
func (b *counted) took(s int32) {
	b.inflight[s]++
	b.place(s)
}

// Release ends one of server i's connections.
func (b *counted) Release(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[i] > 0 {
		b.inflight[i]--
	}
	b.place(int32(i))
}

// SetWeight changes server i's weight (0..256, clamped).
func (b *counted) SetWeight(i, weight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.weight[i] = clampWeight(weight)
	b.place(int32(i))
}

// SetUsable marks server i eligible or not.
func (b *counted) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.usable[i] = usable
	b.place(int32(i))
}

// Add appends a server that is not usable yet.
func (b *counted) Add(s Server) int {
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
