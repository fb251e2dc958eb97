//go:build !race

// The race detector shuffles the scheduler's queue on purpose.

package proxy

import (
	"runtime"
	"sync"
	"testing"
)

// TestPollerWakesInOrder makes sockets readable one after another while
// their readers wait, and checks that the readers run in that order: the
// first request of a batch is served first. The runtime's own poller would
// run them last first.
func TestPollerWakesInOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 16
	readers := make([]*pollConn, n)
	writers := make([]*pollConn, n)
	for i := range n {
		writers[i], readers[i] = pollPair(t)
	}
	// A socket that becomes readable first but has no reader waiting
	// must not upset the order of the others.
	busyW, _ := pollPair(t)
	for attempt := range 3 {
		var mu sync.Mutex
		var order []int
		var wg, waiting sync.WaitGroup
		for i, r := range readers {
			wg.Add(1)
			waiting.Add(1)
			go func() {
				defer wg.Done()
				waiting.Done()
				if _, err := r.Read(make([]byte, 1)); err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}()
		}
		waiting.Wait()
		runtime.Gosched() // let each reader reach its wait
		busyW.Write([]byte("x"))
		for _, w := range writers {
			w.Write([]byte("x"))
		}
		wg.Wait()
		inOrder := true
		for i, got := range order {
			if got != i {
				inOrder = false
			}
		}
		if inOrder {
			return
		}
		t.Logf("attempt %d: readers ran in the order %v", attempt, order)
	}
	t.Error("readers of sockets made readable in order did not run in that order")
}
