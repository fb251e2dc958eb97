package balance

// forest is a set of indexed binary min-heaps over one array of nodes,
// one node per server. A server is in at most one heap at a time, which
// is what HAProxy's trees need too (a server is in curr, init, next or in
// none). Nodes order by key, then by insertion sequence: equal keys come
// out first-in first-out, as duplicates do in HAProxy's ebtrees (a new
// duplicate is inserted as the rightmost leaf of its subtree). Every
// operation is O(log n) and none allocates once the node array holds all
// servers.
type forest struct {
	nodes []heapNode
	heaps [3][]int32
	seq   uint64
}

type heapNode struct {
	key  uint64
	seq  uint64
	heap int8 // index in forest.heaps, or noHeap
	pos  int32
}

const noHeap int8 = -1

// grow adds nodes up to n servers and makes room for all of them in
// every heap, so that push never allocates.
func (f *forest) grow(n int) {
	for len(f.nodes) < n {
		f.nodes = append(f.nodes, heapNode{heap: noHeap})
	}
	for h := range f.heaps {
		if cap(f.heaps[h]) < n {
			items := make([]int32, len(f.heaps[h]), max(n, 2*cap(f.heaps[h])))
			copy(items, f.heaps[h])
			f.heaps[h] = items
		}
	}
}

func (f *forest) less(a, b int32) bool {
	na, nb := &f.nodes[a], &f.nodes[b]
	return na.key < nb.key || (na.key == nb.key && na.seq < nb.seq)
}

// in returns the heap holding server i, or noHeap.
func (f *forest) in(i int32) int8 { return f.nodes[i].heap }

// push inserts server i, which must be in no heap, into heap h with key.
func (f *forest) push(h int8, i int32, key uint64) {
	f.seq++
	n := &f.nodes[i]
	n.key, n.seq, n.heap = key, f.seq, h
	n.pos = int32(len(f.heaps[h]))
	f.heaps[h] = append(f.heaps[h], i)
	f.up(h, int(n.pos))
}

// remove takes server i out of its heap; a server in none is left alone.
func (f *forest) remove(i int32) {
	n := &f.nodes[i]
	h := n.heap
	if h == noHeap {
		return
	}
	items := f.heaps[h]
	p, last := int(n.pos), len(items)-1
	n.heap = noHeap
	if p != last {
		items[p] = items[last]
		f.nodes[items[p]].pos = int32(p)
	}
	f.heaps[h] = items[:last]
	if p != last {
		if !f.down(h, p) {
			f.up(h, p)
		}
	}
}

// min returns the first server of heap h, or -1 when it is empty.
func (f *forest) min(h int8) int32 {
	if len(f.heaps[h]) == 0 {
		return -1
	}
	return f.heaps[h][0]
}

// second returns the server that would come out of heap h after the
// first, or -1 when h holds fewer than two.
func (f *forest) second(h int8) int32 {
	items := f.heaps[h]
	switch len(items) {
	case 0, 1:
		return -1
	case 2:
		return items[1]
	}
	if f.less(items[2], items[1]) {
		return items[2]
	}
	return items[1]
}

func (f *forest) up(h int8, p int) {
	items := f.heaps[h]
	for p > 0 {
		parent := (p - 1) / 2
		if !f.less(items[p], items[parent]) {
			break
		}
		f.swap(items, p, parent)
		p = parent
	}
}

// down sifts the item at p down and reports whether it moved.
func (f *forest) down(h int8, p int) bool {
	items := f.heaps[h]
	start := p
	for {
		c := 2*p + 1
		if c >= len(items) {
			break
		}
		if r := c + 1; r < len(items) && f.less(items[r], items[c]) {
			c = r
		}
		if !f.less(items[c], items[p]) {
			break
		}
		f.swap(items, p, c)
		p = c
	}
	return p != start
}

func (f *forest) swap(items []int32, a, b int) {
	items[a], items[b] = items[b], items[a]
	f.nodes[items[a]].pos = int32(a)
	f.nodes[items[b]].pos = int32(b)
}
