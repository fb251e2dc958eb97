package balance

import (
	"testing"
)

// FuzzOps drives a balancer with a byte-coded series of Pick, Release,
// SetWeight, SetUsable and Add, and checks what must always hold: Pick
// returns -1 exactly when no usable server with weight > 0 exists, never
// returns a server that is down or at weight 0, and honours avoid when
// another server could take the request.
//
// Input: byte 0 picks the algorithm, byte 1 the number of servers (0..7),
// then one weight byte per server, then ops of two bytes each.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 3, 3, 2, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 2, 1, 255, 2, 0, 3, 1, 0, 0, 0, 1, 4, 1, 0, 1, 0, 0})
	f.Add([]byte{1, 3, 6, 4, 2, 2, 1, 0, 0, 3, 1, 0, 0})
	f.Add([]byte{2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1})
	f.Add([]byte{3, 3, 1, 0, 1, 0, 2, 0, 2, 1, 0, 0, 0})
	f.Add([]byte{4, 4, 9, 9, 9, 9, 0, 0, 3, 2, 0, 1, 0, 2})
	f.Add([]byte{6, 2, 0, 0, 2, 1, 0, 0, 4, 7, 3, 2, 0, 0})
	f.Fuzz(runOps)
}

func runOps(t *testing.T, data []byte) {
	if len(data) < 2 {
		return
	}
	algos := Algorithms()
	algo := algos[int(data[0])%len(algos)]
	n := int(data[1]) % 8
	data = data[2:]
	if len(data) < n {
		return
	}
	weight := make([]int, n)
	usable := make([]bool, n)
	srvs := make([]Server, n)
	for i := range n {
		weight[i] = int(data[i]) % 258 // 256 and 257 (clamped away at Add only)
		if weight[i] > MaxWeight {
			weight[i] = MaxWeight
		}
		usable[i] = true
		srvs[i] = Server{Weight: weight[i], MaxConn: int(data[i]) % 3}
	}
	data = data[n:]
	b, err := New(algo, srvs)
	if err != nil {
		t.Fatal(err)
	}
	eligible := func() int {
		c := 0
		for i := range weight {
			if usable[i] && weight[i] > 0 {
				c++
			}
		}
		return c
	}
	var held []int
	// Long inputs add nothing but time: a ring change is O(points).
	data = data[:min(len(data), 2048)]
	for len(data) >= 2 {
		op, arg := data[0], int(data[1])
		data = data[2:]
		switch op % 5 {
		case 0: // Pick, with avoid when arg says so
			avoid := -1
			if len(weight) > 0 && arg%2 == 1 {
				avoid = (arg / 2) % len(weight)
			}
			got := b.Pick([]byte{byte(arg)}, avoid)
			if got < 0 {
				if c := eligible(); c > 0 {
					t.Fatalf("%s: Pick() = -1 with %d usable servers (weights %v, usable %v)", algo, c, weight, usable)
				}
				continue
			}
			if got >= len(weight) || !usable[got] || weight[got] == 0 {
				t.Fatalf("%s: Pick() = s%d, which is not usable (weights %v, usable %v)", algo, got, weight, usable)
			}
			if got == avoid && eligible() > 1 {
				t.Fatalf("%s: Pick(avoid=s%d) = s%d with other usable servers (weights %v, usable %v)", algo, avoid, got, weight, usable)
			}
			held = append(held, got)
		case 1: // Release the oldest in flight
			if len(held) > 0 {
				b.Release(held[0])
				held = held[1:]
			}
		case 2:
			if len(weight) > 0 {
				i := arg % len(weight)
				w := []int{0, 1, 2, 3, 16, 255, 256, arg}[arg%8]
				b.SetWeight(i, w)
				weight[i] = clampWeight(w)
			}
		case 3:
			if len(weight) > 0 {
				i := arg % len(weight)
				usable[i] = arg&0x80 == 0
				b.SetUsable(i, usable[i])
			}
		case 4:
			if len(weight) < 16 {
				w := arg % 300 // above 256 is clamped
				if i := b.Add(Server{Weight: w, MaxConn: arg % 3}); i != len(weight) {
					t.Fatalf("%s: Add() = %d, want %d", algo, i, len(weight))
				}
				weight = append(weight, clampWeight(w))
				usable = append(usable, false)
			}
		}
	}
}
