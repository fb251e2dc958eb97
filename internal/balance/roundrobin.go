package balance

import "sync"

// fwrr is HAProxy 2.6's fast weighted round robin (src/lb_fwrr.c) for one
// group of servers (fulcrum has no backup servers). Positions and weights
// are uint32 because HAProxy keeps them unsigned (npos, lpos, rweight,
// eweights) and mixes its int group fields into unsigned arithmetic: the
// same wrap-around and the same unsigned comparisons give the same
// sequence.
type fwrr struct {
	mu sync.Mutex // guards the fields below

	srv []fwrrServer
	f   forest // heaps: treeCurr, and t0/t1 which take turns as init and next

	init, next int8 // which of t0/t1 is "init" and which is "next"

	currPos    uint32 // curr_pos: position reached in the current window
	currWeight uint32 // curr_weight: total effective weight of the window
	nextWeight uint32 // next_weight: total effective weight of usable servers
	active     int    // srv_act: usable servers
}

// Heaps of fwrr.f. HAProxy keys curr by position and init/next by
// inverted weight (heaviest first).
const (
	treeCurr int8 = 0
	treeT0   int8 = 1
	treeT1   int8 = 2
)

// fwrrServer mirrors the fields of HAProxy's struct server that lb_fwrr.c
// uses. HAProxy separates the pending state (next_*) from the committed
// one (cur_*) and commits after the LB code has seen both; fulcrum's
// setters do the same.
type fwrrServer struct {
	nextEW, curEW uint32 // next_eweight, cur_eweight: weight×16
	nextUp, curUp bool   // not in maint/drain/down (next_admin, cur_admin)

	npos, lpos, rweight uint32
}

var _ Balancer = (*fwrr)(nil)

func newFWRR(servers []Server) *fwrr {
	b := &fwrr{init: treeT0, next: treeT1}
	b.f.grow(len(servers))
	b.srv = make([]fwrrServer, len(servers))
	for i, s := range servers {
		sv := &b.srv[i]
		sv.nextEW = uint32(s.Weight * weightScale)
		sv.nextUp = true
		sv.commit()
		if sv.currentlyUsable() {
			b.active++
			b.nextWeight += sv.curEW
		}
	}
	// fwrr_init_server_groups: usable servers wait in init, heaviest first.
	b.currPos, b.currWeight = b.nextWeight, b.nextWeight
	for i := range b.srv {
		if b.srv[i].currentlyUsable() {
			b.queueByWeight(b.init, int32(i))
		}
	}
	return b
}

func (s *fwrrServer) willBeUsable() bool    { return s.nextEW != 0 && s.nextUp }
func (s *fwrrServer) currentlyUsable() bool { return s.curEW != 0 && s.curUp }
func (s *fwrrServer) changed() bool         { return s.nextEW != s.curEW || s.nextUp != s.curUp }
func (s *fwrrServer) commit()               { s.curEW, s.curUp = s.nextEW, s.nextUp }

// Pick is fwrr_get_next_server without saturated servers (a server's
// maxconn is not an input of roundrobin here), so the only server ever
// set aside is the avoided one.
func (b *fwrr) Pick(_ []byte, avoid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == 0 {
		return -1
	}
	switched := false
	avoided, full := int32(-1), int32(-1)
	var srv int32
	for {
		// An empty window collects weights that changed since.
		if b.currWeight == 0 {
			b.currWeight = b.nextWeight
			b.currPos = b.nextWeight
		}
		for {
			srv = b.fromGroup()
			if srv >= 0 {
				break
			}
			if switched {
				if avoided >= 0 {
					srv = avoided
					goto take
				}
				goto requeue
			}
			switched = true
			b.switchTrees()
		}
		b.updatePosition(srv)
		b.f.remove(srv)
		b.currPos++
		if int(srv) != avoid || avoided >= 0 {
			break
		}
		avoided, full = srv, srv
	}
take:
	b.queue(srv)
requeue:
	if full >= 0 && full != srv {
		if switched {
			// The window changed: its place is lost, only its weight counts.
			b.queueByWeight(b.init, full)
		} else {
			b.queue(full)
		}
	}
	return int(srv)
}

// fromGroup is fwrr_get_server_from_group: the first server of curr if
// its position is due, else the heaviest server waiting in init, else the
// first of curr anyway (a hole in the positions), else -1.
func (b *fwrr) fromGroup() int32 {
	s1 := b.f.min(treeCurr)
	if s1 >= 0 {
		sv := &b.srv[s1]
		if sv.curEW != 0 && sv.npos <= b.currPos {
			return s1
		}
	}
	if s2 := b.f.min(b.init); s2 >= 0 {
		sv := &b.srv[s2]
		if sv.curEW != 0 {
			sv.npos, sv.rweight = 0, 0 // fwrr_get_srv_init
			return s2
		}
	}
	return s1
}

// switchTrees is fwrr_switch_trees: next becomes init and a new window
// as wide as the total weight starts.
func (b *fwrr) switchTrees() {
	b.init, b.next = b.next, b.init
	b.currWeight = b.nextWeight
	b.currPos = b.currWeight
}

// updatePosition is fwrr_update_position: advance npos by one step of
// total/eweight, carrying the remainder in rweight.
func (b *fwrr) updatePosition(i int32) {
	sv := &b.srv[i]
	ew := sv.curEW
	if ew == 0 {
		return
	}
	if sv.npos == 0 { // first time ever for this server
		sv.npos = b.currPos
	}
	sv.lpos = sv.npos
	sv.npos += b.nextWeight / ew
	sv.rweight += b.nextWeight % ew
	if sv.rweight >= ew {
		sv.rweight -= ew
		sv.npos++
	}
}

// queue is fwrr_queue_srv: into curr if npos fits in this window and the
// theoretical next one, into next otherwise, nowhere if not usable. The
// server must be in no heap.
func (b *fwrr) queue(i int32) {
	sv := &b.srv[i]
	switch {
	case !sv.willBeUsable():
		// fwrr_remove_from_tree
	case sv.nextEW == 0 || sv.npos >= 2*b.currWeight || sv.npos >= b.currWeight+b.nextWeight:
		sv.npos -= b.currWeight
		b.queueByWeight(b.next, i)
	default:
		// Position first, then heavier (and with more remainder) first,
		// in HAProxy's 32-bit key that may wrap with large weights.
		key := MaxWeight*sv.npos + (MaxWeight*weightScale+sv.rweight-sv.nextEW)/weightScale
		b.f.push(treeCurr, i, uint64(key))
	}
}

// queueByWeight is fwrr_queue_by_weight: heaviest first.
func (b *fwrr) queueByWeight(h int8, i int32) {
	b.f.push(h, i, uint64(MaxWeight*weightScale-b.srv[i].nextEW))
}

// getSrv is fwrr_get_srv: prepare npos of a server about to be moved.
func (b *fwrr) getSrv(i int32) {
	sv := &b.srv[i]
	switch b.f.in(i) {
	case b.init:
		sv.npos, sv.rweight = 0, 0
	case b.next:
		sv.npos += b.currWeight
	case noHeap:
		sv.npos = b.currPos
	}
}

// placeReturning puts a server that comes (back) into the group at a
// future position: curr_pos plus what remains of the window in steps of
// its weight (fwrr_set_server_status_up).
func (b *fwrr) placeReturning(i int32) {
	sv := &b.srv[i]
	b.getSrv(i)
	sv.npos = b.currPos + (b.nextWeight+b.currWeight-b.currPos)/sv.nextEW
	b.queue(i)
}

// setDown is fwrr_set_server_status_down.
func (b *fwrr) setDown(i int32) {
	sv := &b.srv[i]
	if !sv.changed() {
		return
	}
	if !sv.willBeUsable() && sv.currentlyUsable() {
		b.nextWeight -= sv.curEW
		b.active--
		b.f.remove(i)
	}
	sv.commit()
}

// setUp is fwrr_set_server_status_up.
func (b *fwrr) setUp(i int32) {
	sv := &b.srv[i]
	if !sv.changed() {
		return
	}
	if sv.willBeUsable() && !sv.currentlyUsable() {
		b.nextWeight += sv.nextEW
		b.active++
		b.placeReturning(i)
	}
	sv.commit()
}

// update is fwrr_update_server_weight, which HAProxy 2.6 calls for every
// weight or state change of a server (srv_update_status).
func (b *fwrr) update(i int32) {
	sv := &b.srv[i]
	if !sv.changed() {
		return
	}
	was, will := sv.currentlyUsable(), sv.willBeUsable()
	switch {
	case !was && !will:
		sv.commit()
		return
	case !was && will:
		b.setUp(i)
		return
	case was && !will:
		b.setDown(i)
		return
	}
	b.nextWeight = b.nextWeight - sv.curEW + sv.nextEW
	switch b.f.in(i) {
	case b.init:
		b.f.remove(i)
		b.queueByWeight(b.init, i)
	case noHeap:
		b.placeReturning(i)
	default:
		// In curr or next: if it has not used its places in this window,
		// bring its next position closer, by one new step from the last.
		b.getSrv(i)
		prev := sv.npos
		step := b.nextWeight / sv.nextEW
		sv.npos = sv.lpos + step
		sv.rweight = 0
		if sv.npos > prev {
			sv.npos = prev
		}
		if sv.npos < b.currPos+2 {
			sv.npos = b.currPos + step
		}
		b.f.remove(i)
		b.queue(i)
	}
	sv.commit()
}

// Release does nothing: round robin does not depend on in-flight work.
func (b *fwrr) Release(int) {}

// SetWeight changes server i's weight (0..256, clamped). 0 takes the
// server out of the rotation as HAProxy does (its eweight becomes 0).
func (b *fwrr) SetWeight(i, weight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.srv[i].nextEW = uint32(clampWeight(weight) * weightScale)
	b.update(int32(i))
}

// SetUsable marks server i eligible or not.
func (b *fwrr) SetUsable(i int, usable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.srv[i].nextUp = usable
	b.update(int32(i))
}

// Add appends a server that is not usable yet.
func (b *fwrr) Add(s Server) int {
	s = clampServer(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.srv = append(b.srv, fwrrServer{nextEW: uint32(s.Weight * weightScale)})
	b.srv[len(b.srv)-1].commit()
	b.f.grow(len(b.srv))
	return len(b.srv) - 1
}
