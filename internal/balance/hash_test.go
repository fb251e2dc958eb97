package balance

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
)

// mapping returns the server of each of n keys.
func mapping(b Balancer, n int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = b.Pick(keyFor(k), -1)
		b.Release(out[k])
	}
	return out
}

// TestHashRemap: removing one of N servers moves only the keys it held,
// about 1/N of all keys; bringing it back restores the old mapping. A
// weight change moves keys only to or from the changed server.
func TestHashRemap(t *testing.T) {
	const keys = 30000
	for _, algo := range []string{Source, URI} {
		for _, n := range []int{2, 5, 10, 40} {
			t.Run(fmt.Sprintf("%s/%d servers", algo, n), func(t *testing.T) {
				w := make([]int, n)
				for i := range w {
					w[i] = 100
				}
				b := mustNew(t, algo, servers(w...))
				before := mapping(b, keys)
				gone := n / 2
				b.SetUsable(gone, false)
				after := mapping(b, keys)
				moved := 0
				for k := range before {
					if before[k] == after[k] {
						continue
					}
					moved++
					if before[k] != gone {
						t.Fatalf("key %d moved s%d → s%d though only s%d was removed", k, before[k], after[k], gone)
					}
				}
				frac, want := float64(moved)/keys, 1/float64(n)
				t.Logf("removing 1 of %d servers moved %.2f%% of %d keys (ideal %.2f%%)", n, 100*frac, keys, 100*want)
				if frac < 0.75*want || frac > 1.25*want {
					t.Errorf("removing 1 of %d servers moved %.4f of keys, want %.4f ± 25%%", n, frac, want)
				}
				b.SetUsable(gone, true)
				if back := mapping(b, keys); fmt.Sprint(back) != fmt.Sprint(before) {
					t.Errorf("after s%d came back, the mapping differs from the original", gone)
				}
				// Doubling one weight moves keys only onto that server,
				// about 1/(n+1) of them.
				b.SetWeight(0, 200)
				doubled := mapping(b, keys)
				moved = 0
				for k := range before {
					if before[k] != doubled[k] {
						moved++
						if doubled[k] != 0 {
							t.Fatalf("key %d moved s%d → s%d on a weight change of s0", k, before[k], doubled[k])
						}
					}
				}
				frac, want = float64(moved)/keys, float64(n-1)/float64(n)/float64(n+1)
				if frac < 0.75*want || frac > 1.25*want {
					t.Errorf("doubling s0's weight moved %.4f of keys, want %.4f ± 25%%", frac, want)
				}
			})
		}
	}
}

// TestHashDistribution: keys spread in proportion to weight.
func TestHashDistribution(t *testing.T) {
	weights := []int{1, 10, 50, 100, 256}
	b := mustNew(t, Source, servers(weights...))
	const keys = 100000
	c := counts(mapping(b, keys), len(weights))
	for i, w := range weights {
		want := float64(keys) * float64(w) / 417
		if d := float64(c[i]) - want; d > 0.15*want+50 || d < -0.15*want-50 {
			t.Errorf("s%d (weight %d) holds %d keys, want %.0f ± 15%%", i, w, c[i], want)
		}
	}
}

// TestHashStable: the mapping depends only on the key and the server
// list, so two load balancers (or two versions) agree.
func TestHashStable(t *testing.T) {
	if got, want := HashKey([]byte("192.0.2.1")), uint64(0xd307492fba64da08); got != want {
		t.Errorf("HashKey(192.0.2.1) = %#x, want %#x (changing it remaps every client)", got, want)
	}
	for _, key := range []string{"", "/", "/index.html?a=1", "\xc0\x00\x02\x01"} {
		h := fnv.New64a()
		h.Write([]byte(key))
		if got, want := HashKey([]byte(key)), mix64(h.Sum64()); got != want {
			t.Errorf("HashKey(%q) = %#x, want FNV-1a then splitmix64 = %#x", key, got, want)
		}
	}
	b1 := mustNew(t, Source, servers(3, 7, 1, 20))
	b2 := mustNew(t, URI, servers(3, 7, 1, 20))
	for k := range 2000 {
		if p1, p2 := b1.Pick(keyFor(k), -1), b2.Pick(keyFor(k), -1); p1 != p2 {
			t.Fatalf("key %q: one balancer picks s%d, another s%d", keyFor(k), p1, p2)
		}
	}
	// avoid moves a key to the next server on the ring, the same one each time.
	for k := range 200 {
		p := b1.Pick(keyFor(k), -1)
		a1, a2 := b1.Pick(keyFor(k), p), b1.Pick(keyFor(k), p)
		if a1 == p || a1 != a2 {
			t.Fatalf("key %q on s%d: Pick(avoid=s%d) = s%d then s%d, want the same other server", keyFor(k), p, p, a1, a2)
		}
	}
}

// TestHashHistoryFree: a ring changed at runtime equals a ring built from
// scratch in the same state, so two load balancers with different
// histories map keys alike.
func TestHashHistoryFree(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	b := newHashRing(servers(5, 0, 17, 256, 1))
	for k := range 300 {
		i := r.IntN(len(b.weight))
		switch r.IntN(3) {
		case 0:
			b.SetWeight(i, r.IntN(40))
		case 1:
			b.SetUsable(i, r.IntN(2) == 0)
		case 2:
			if len(b.weight) < 12 {
				b.Add(Server{Weight: r.IntN(20)})
			}
		}
		fresh := newHashRing(nil)
		fresh.weight, fresh.usable = slices.Clone(b.weight), slices.Clone(b.usable)
		fresh.rebuild()
		if !slices.Equal(b.ring, fresh.ring) || !slices.Equal(b.other, fresh.other) {
			t.Fatalf("after %d changes (weights %v, usable %v) the ring differs from one built from scratch", k+1, b.weight, b.usable)
		}
	}
}
