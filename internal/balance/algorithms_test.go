package balance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// name turns indexes into the names the tests print: s1 is index 0, as in
// HAProxy configurations.
func names(seq []int) string {
	out := ""
	for _, s := range seq {
		out += fmt.Sprintf(" s%d", s+1)
	}
	return out[1:]
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    string
	}{
		// Observed on haproxy 2.6, nbthread 1 (/work/shared/notes/HAPROXY.md).
		{[]int{3, 2, 1}, "s1 s2 s1 s3 s1 s2 s1 s2 s1 s3 s1 s2"},
		{[]int{1}, "s1 s1 s1"},
		{[]int{1, 1}, "s1 s2 s1 s2"},
		{[]int{1, 1, 1}, "s1 s2 s3 s1 s2 s3"},
		{[]int{0, 1, 0}, "s2 s2 s2"},
		{[]int{256, 256}, "s1 s2 s1 s2"},
		// Observed on haproxy 2.6.12: the heavier server first.
		{[]int{1, 2}, "s2 s2 s1 s2 s2 s1"},
		{[]int{1, 1, 1, 1}, "s1 s2 s3 s4 s1 s2 s3 s4"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			b := mustNew(t, RoundRobin, servers(tt.weights...))
			n := len(strings.Fields(tt.want))
			if got := names(picks(b, n)); got != tt.want {
				t.Errorf("Pick() sequence = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRoundRobinCycles: in every run of Σweights requests each server gets
// its weight, give or take one (the 16× effective weights carry
// remainders across runs). The same holds after runtime changes once a
// window of 16×Σweights has passed.
func TestRoundRobinCycles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := range 80 {
		n := 1 + r.IntN(8)
		weights := make([]int, n)
		sum := 0
		for i := range weights {
			weights[i] = r.IntN(257)
			sum += weights[i]
		}
		if sum == 0 {
			continue
		}
		b := mustNew(t, RoundRobin, servers(weights...))
		if k%2 == 1 {
			// Runtime history: a server down and back, a weight change.
			picks(b, r.IntN(3*sum))
			b.SetUsable(0, false)
			picks(b, r.IntN(sum))
			b.SetUsable(0, true)
			old := weights[n-1]
			weights[n-1] = r.IntN(257)
			sum += weights[n-1] - old
			if sum == 0 {
				continue
			}
			b.SetWeight(n-1, weights[n-1])
			picks(b, 2*16*sum) // let a window pass
		}
		for blk := range 16 {
			c := counts(picks(b, sum), n)
			for i, w := range weights {
				if d := c[i] - w; d > 1 || d < -1 {
					t.Fatalf("weights %v, run %d of %d requests: s%d got %d, want %d ± 1", weights, blk, sum, i+1, c[i], w)
				}
			}
		}
	}
}

func TestRoundRobinRuntime(t *testing.T) {
	// HAPROXY.md: after `set server b/s1 weight 3` on a 1,1 backend, every
	// 4 requests hold exactly three s1 and one s2.
	b := mustNew(t, RoundRobin, servers(1, 1))
	picks(b, 7)
	b.SetWeight(0, 3)
	picks(b, 2*16*4)
	for blk := range 16 {
		if c := counts(picks(b, 4), 2); c[0] != 3 || c[1] != 1 {
			t.Fatalf("block %d after weight 1→3: counts %v, want [3 1]", blk, c)
		}
	}
	// A server coming back is placed at a future position, not first
	// (observed on haproxy 2.6.12 with `disable server`, `enable server`).
	b = mustNew(t, RoundRobin, servers(1, 1, 1, 1))
	b.SetUsable(0, false)
	got := names(picks(b, 5))
	b.SetUsable(0, true)
	got += " | " + names(picks(b, 8))
	if want := "s2 s3 s4 s2 s3 | s4 s2 s3 s1 s4 s2 s3 s1"; got != want {
		t.Errorf("s1 down for 5 requests then up: Pick() sequence = %s, want %s", got, want)
	}
}

func TestStaticRR(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		change  func(Balancer)
		want    string
	}{
		{"3 2 1", []int{3, 2, 1}, nil, "s1 s1 s2 s1 s2 s3 s1 s1 s2 s1 s2 s3"},
		{"gcd divides", []int{6, 4, 2}, nil, "s1 s1 s2 s1 s2 s3 s1 s1 s2 s1 s2 s3"},
		{"equal", []int{5, 5, 5}, nil, "s1 s2 s3 s1 s2 s3"},
		// Observed on haproxy 2.6.12.
		{"weight 0", []int{0, 2, 1}, nil, "s2 s2 s3 s2 s2 s3"},
		{"s1 down", []int{3, 2, 1}, func(b Balancer) { b.SetUsable(0, false) }, "s2 s2 s3 s2 s2 s3"},
		{"s1 weight 0", []int{3, 2, 1}, func(b Balancer) { b.SetWeight(0, 0) }, "s2 s2 s3 s2 s2 s3"},
		{"s1 down and up", []int{3, 2, 1}, func(b Balancer) { b.SetUsable(0, false); b.SetUsable(0, true) }, "s1 s1 s2 s1 s2 s3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, StaticRR, servers(tt.weights...))
			if tt.change != nil {
				tt.change(b)
			}
			n := len(strings.Fields(tt.want))
			if got := names(picks(b, n)); got != tt.want {
				t.Errorf("Pick() sequence = %s, want %s", got, tt.want)
			}
		})
	}
	// HAProxy refuses other runtime weights on static algorithms (only 0%
	// or 100%); fulcrum rebuilds the map with the new ratios.
	b := mustNew(t, StaticRR, servers(3, 2, 1))
	picks(b, 4)
	b.SetWeight(2, 3)
	b.SetWeight(1, 5)
	picks(b, 3)
	for blk := range 5 {
		if c := counts(picks(b, 11), 3); !slices.Equal(c, []int{3, 5, 3}) {
			t.Fatalf("run %d of 11 after weights 3,2,1 → 3,5,3: counts %v, want [3 5 3]", blk, c)
		}
	}
}

func TestLeastConn(t *testing.T) {
	b := mustNew(t, LeastConn, servers(2, 1, 1))
	// Held connections: in-flight counts follow weights 2:1:1.
	var held []int
	for range 40 {
		held = append(held, b.Pick(nil, -1))
	}
	if c := counts(held, 3); c[0] != 20 || c[1] != 10 || c[2] != 10 {
		t.Fatalf("40 held picks over weights 2,1,1: counts %v, want [20 10 10]", c)
	}
	// Releasing two of s2 makes it the least loaded.
	b.Release(1)
	b.Release(1)
	for k, want := range []int{1, 1} {
		if got := b.Pick(nil, -1); got != want {
			t.Fatalf("Pick() #%d after releasing two of s2 = s%d, want s%d", k, got+1, want+1)
		}
	}
	// Ties go round robin.
	b = mustNew(t, LeastConn, servers(1, 1, 1))
	if got := names(picks(b, 6)); got != "s1 s2 s3 s1 s2 s3" {
		t.Errorf("sequential picks = %s, want s1 s2 s3 s1 s2 s3", got)
	}
	// Avoid takes the next least loaded.
	if got := b.Pick(nil, 0); got != 1 {
		t.Errorf("Pick(avoid=s1) = s%d, want s2", got+1)
	}
}

func TestFirst(t *testing.T) {
	b := mustNew(t, First, []Server{{Weight: 1, MaxConn: 2}, {Weight: 1, MaxConn: 1}, {Weight: 1, MaxConn: 3}})
	var held []int
	for range 6 {
		held = append(held, b.Pick(nil, -1))
	}
	if got := names(held); got != "s1 s1 s2 s3 s3 s3" {
		t.Fatalf("6 held picks = %s, want s1 s1 s2 s3 s3 s3", got)
	}
	b.Release(0)
	if got := b.Pick(nil, -1); got != 0 {
		t.Fatalf("Pick() after a release on s1 = s%d, want s1", got+1)
	}
	// All full: the least loaded relative to MaxConn.
	b.Release(2)
	b.Release(2)
	b.Pick(nil, -1) // s3 again, 2 of 3
	b.Pick(nil, -1) // s3 full, 3 of 3
	if got := b.Pick(nil, -1); got != 0 && got != 1 && got != 2 {
		t.Fatalf("Pick() with all full = %d, want a usable server", got)
	}
	// Down and weight 0 servers are skipped; MaxConn 0 never fills.
	b = mustNew(t, First, []Server{{Weight: 1}, {Weight: 0}, {Weight: 1}})
	b.SetUsable(0, false)
	for range 10 {
		if got := b.Pick(nil, -1); got != 2 {
			t.Fatalf("Pick() = s%d, want s3 (s1 down, s2 weight 0)", got+1)
		}
	}
	if got := b.Pick(nil, 2); got != 2 {
		t.Fatalf("Pick(avoid=s3) with only s3 usable = s%d, want s3", got+1)
	}
	b.SetUsable(0, true)
	if got := b.Pick(nil, 0); got != 2 {
		t.Fatalf("Pick(avoid=s1) = s%d, want s3", got+1)
	}
}

func TestRandom(t *testing.T) {
	// Held connections spread in proportion to weight.
	b := newRandom(servers(1, 3, 0), 42)
	var held []int
	for range 4000 {
		held = append(held, b.Pick(nil, -1))
	}
	c := counts(held, 3)
	if c[2] != 0 || c[0] < 800 || c[0] > 1200 || c[1] < 2800 || c[1] > 3200 {
		t.Fatalf("4000 held picks over weights 1,3,0: counts %v, want about [1000 3000 0]", c)
	}
	// Two draws keep the load even: the in-flight/weight spread stays small.
	lo, hi := float64(c[0])/1, float64(c[1])/3
	if d := hi - lo; d > 50 || d < -50 {
		t.Errorf("in-flight per weight s1 %.0f, s2 %.0f: want within 50", lo, hi)
	}
	// The same seed gives the same choices.
	b1, b2 := newRandom(servers(5, 5, 5), 7), newRandom(servers(5, 5, 5), 7)
	if p1, p2 := picks(b1, 50), picks(b2, 50); !slices.Equal(p1, p2) {
		t.Errorf("same seed, different sequences: %v vs %v", p1, p2)
	}
}

// TestStaticRRAvoid compares Pick's O(1) avoid jump with HAProxy's walk
// over the map (map_get_server_rr), written out plainly here.
func TestStaticRRAvoid(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + r.IntN(5)
		w := make([]int, n)
		for i := range w {
			w[i] = r.IntN(9)
		}
		b := newStaticRR(servers(w...))
		slots, rr := slices.Clone(b.slots), 0
		walk := func(avoid int) int {
			tot := len(slots)
			if tot == 0 {
				return -1
			}
			if rr >= tot {
				rr = 0
			}
			idx, avoided, avoidedIdx := rr, -1, 0
			for {
				srv := int(slots[idx])
				idx++
				avoided, avoidedIdx = srv, idx
				if srv != avoid {
					rr = idx
					return srv
				}
				if idx == tot {
					idx = 0
				}
				if idx == rr {
					break
				}
			}
			rr = avoidedIdx
			return avoided
		}
		for k := range 100 {
			avoid := r.IntN(n+1) - 1
			if got, want := b.Pick(nil, avoid), walk(avoid); got != want {
				t.Fatalf("weights %v, pick %d: Pick(avoid=%d) = %d, want %d (map walk)", w, k, avoid, got, want)
			}
		}
	}
}

func TestNextOther(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		owners := make([]int32, r.IntN(12))
		for i := range owners {
			owners[i] = int32(r.IntN(3))
		}
		got := nextOther(nil, owners)
		for o := range owners {
			want := int32(-1)
			for k := 1; k < len(owners); k++ {
				if j := (o + k) % len(owners); owners[j] != owners[o] {
					want = int32(j)
					break
				}
			}
			if got[o] != want {
				t.Fatalf("nextOther(%v)[%d] = %d, want %d", owners, o, got[o], want)
			}
		}
	}
}
