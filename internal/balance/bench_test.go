package balance

import (
	"fmt"
	"testing"
)

// benchServers gives n servers with varied weights, all usable.
func benchServers(n int) []Server {
	s := make([]Server, n)
	for i := range s {
		s[i] = Server{Weight: 1 + (i*37)%256, MaxConn: 1 + i%4}
	}
	return s
}

var benchKey = []byte("198.51.100.23")

// TestPickAllocs: Pick and Release allocate nothing, with 2 and 100
// servers, with avoid, and after servers were added at runtime.
func TestPickAllocs(t *testing.T) {
	for _, algo := range Algorithms() {
		for _, n := range []int{2, 100} {
			t.Run(fmt.Sprintf("%s/%d", algo, n), func(t *testing.T) {
				b := mustNew(t, algo, benchServers(n))
				for range 3 {
					b.SetUsable(b.Add(Server{Weight: 7, MaxConn: 2}), true)
				}
				var held [8]int
				k := 0
				allocs := testing.AllocsPerRun(2000, func() {
					// Keep a few in flight so leastconn, first and random
					// move servers around.
					if held[k%8] >= 0 {
						b.Release(held[k%8])
					}
					held[k%8] = b.Pick(benchKey, k%3-1)
					k++
				})
				if allocs != 0 {
					t.Errorf("Pick+Release: %v allocs/op, want 0", allocs)
				}
			})
		}
	}
}

// BenchmarkPick measures one Pick and its Release per op.
func BenchmarkPick(b *testing.B) {
	for _, algo := range Algorithms() {
		for _, n := range []int{2, 100} {
			b.Run(fmt.Sprintf("%s/%d", algo, n), func(b *testing.B) {
				bal, err := New(algo, benchServers(n))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					bal.Release(bal.Pick(benchKey, -1))
				}
			})
		}
	}
}
