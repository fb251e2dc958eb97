package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
)

func servers(weights ...int) []Server {
	s := make([]Server, len(weights))
	for i, w := range weights {
		s[i].Weight = w
	}
	return s
}

func mustNew(t testing.TB, algo string, s []Server) Balancer {
	t.Helper()
	b, err := New(algo, s)
	if err != nil {
		t.Fatalf("New(%q): %v", algo, err)
	}
	return b
}

// testKeys are distinct hash keys, one per request number, so that
// hashing algorithms see many clients.
var testKeys = func() [][]byte {
	keys := make([][]byte, 1<<17)
	for n := range keys {
		keys[n] = []byte("10." + strconv.Itoa(n>>16) + "." + strconv.Itoa(n>>8&255) + "." + strconv.Itoa(n&255))
	}
	return keys
}()

func keyFor(n int) []byte { return testKeys[n%len(testKeys)] }

// picks runs n sequential requests (Pick then Release) with varied keys.
func picks(b Balancer, n int) []int {
	out := make([]int, n)
	for k := range n {
		out[k] = b.Pick(keyFor(k), -1)
		if out[k] >= 0 {
			b.Release(out[k])
		}
	}
	return out
}

func counts(seq []int, n int) []int {
	c := make([]int, n)
	for _, s := range seq {
		if s >= 0 {
			c[s]++
		}
	}
	return c
}

func TestNew(t *testing.T) {
	for _, algo := range Algorithms() {
		if _, err := New(algo, servers(1, 2)); err != nil {
			t.Errorf("New(%q) = %v, want no error", algo, err)
		}
		if _, err := New(algo, nil); err != nil {
			t.Errorf("New(%q, nil) = %v, want no error", algo, err)
		}
	}
	tests := []struct {
		name    string
		algo    string
		servers []Server
		unknown bool
	}{
		{"unknown algorithm", "leastconnections", servers(1), true},
		{"empty algorithm", "", servers(1), true},
		{"negative weight", RoundRobin, servers(1, -1), false},
		{"weight above 256", StaticRR, servers(257), false},
		{"negative maxconn", First, []Server{{Weight: 1, MaxConn: -1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.algo, tt.servers)
			if err == nil || b != nil {
				t.Fatalf("New(%q, %v) = %v, nil; want an error", tt.algo, tt.servers, b)
			}
			if got := errors.Is(err, ErrUnknownAlgorithm); got != tt.unknown {
				t.Errorf("errors.Is(%v, ErrUnknownAlgorithm) = %v, want %v", err, got, tt.unknown)
			}
		})
	}
}

// TestNoServer covers every way to have no usable server: Pick = -1.
func TestNoServer(t *testing.T) {
	cases := []struct {
		name  string
		setup func() []Server
		after func(Balancer)
	}{
		{"no servers", func() []Server { return nil }, func(Balancer) {}},
		{"all weight 0", func() []Server { return servers(0, 0, 0) }, func(Balancer) {}},
		{"all down", func() []Server { return servers(1, 2, 3) }, func(b Balancer) {
			for i := range 3 {
				b.SetUsable(i, false)
			}
		}},
		{"all set to weight 0", func() []Server { return servers(5, 256) }, func(b Balancer) {
			b.SetWeight(0, 0)
			b.SetWeight(1, 0)
		}},
		{"added but never enabled", func() []Server { return nil }, func(b Balancer) { b.Add(Server{Weight: 10}) }},
		{"weight 0 up, others down", func() []Server { return servers(0, 1) }, func(b Balancer) { b.SetUsable(1, false) }},
	}
	for _, algo := range Algorithms() {
		for _, c := range cases {
			t.Run(algo+"/"+c.name, func(t *testing.T) {
				b := mustNew(t, algo, c.setup())
				b.Pick(nil, -1) // a Pick before the change must not leave state behind
				c.after(b)
				for k := range 20 {
					if got := b.Pick(keyFor(k), -1); got != -1 {
						t.Fatalf("Pick() = s%d, want -1 (no usable server)", got)
					}
				}
			})
		}
	}
}

// TestNeverPicksUnusable: weight 0 and down servers get nothing, and the
// others all get traffic.
func TestNeverPicksUnusable(t *testing.T) {
	for _, algo := range Algorithms() {
		t.Run(algo, func(t *testing.T) {
			b := mustNew(t, algo, servers(3, 0, 5, 7, 2))
			b.SetUsable(3, false)
			b.SetWeight(4, 0)
			c := counts(picks(b, 2000), 5)
			for _, i := range []int{1, 3, 4} {
				if c[i] != 0 {
					t.Errorf("s%d got %d picks, want 0 (weight 0 or down)", i, c[i])
				}
			}
			if algo == First {
				return // first fills s0 only
			}
			for _, i := range []int{0, 2} {
				if c[i] == 0 {
					t.Errorf("s%d got no pick, want some", i)
				}
			}
			b.SetUsable(3, true)
			b.SetWeight(4, 1)
			b.SetUsable(0, false)
			b.SetUsable(2, false)
			c = counts(picks(b, 2000), 5)
			if c[0]+c[1]+c[2] != 0 || c[3] == 0 {
				t.Errorf("after s3 up, s4 weight 1, s0 and s2 down: counts %v, want only s3 and s4", c)
			}
		})
	}
}

func TestAvoid(t *testing.T) {
	for _, algo := range Algorithms() {
		t.Run(algo, func(t *testing.T) {
			b := mustNew(t, algo, servers(1, 256, 3))
			for k := range 500 {
				avoid := k % 3
				got := b.Pick(keyFor(k), avoid)
				if got == avoid || got < 0 {
					t.Fatalf("Pick(avoid=%d) = %d, want another server", avoid, got)
				}
				b.Release(got)
			}
			// The avoided server when it is the only one left.
			b.SetUsable(0, false)
			b.SetUsable(2, false)
			for k := range 10 {
				if got := b.Pick(keyFor(k), 1); got != 1 {
					t.Fatalf("Pick(avoid=1) with only s1 usable = %d, want 1", got)
				}
				b.Release(1)
			}
			// Avoiding a server that is down changes nothing.
			if got := b.Pick(nil, 0); got != 1 {
				t.Fatalf("Pick(avoid=0) with s0 down = %d, want 1", got)
			}
			b.Release(1)
		})
	}
}

func TestAdd(t *testing.T) {
	for _, algo := range Algorithms() {
		t.Run(algo, func(t *testing.T) {
			b := mustNew(t, algo, servers(1, 1))
			if i := b.Add(Server{Weight: 4}); i != 2 {
				t.Fatalf("Add() = %d, want 2", i)
			}
			if c := counts(picks(b, 500), 3); c[2] != 0 {
				t.Fatalf("s2 got %d picks before SetUsable(2, true), want 0 (added servers start in maint)", c[2])
			}
			b.SetUsable(0, false)
			b.SetUsable(1, false)
			b.SetUsable(2, true)
			if c := counts(picks(b, 100), 3); c[2] != 100 {
				t.Fatalf("counts = %v with only the added s2 usable, want all 100 on s2", c)
			}
			if i := b.Add(Server{Weight: 400, MaxConn: -3}); i != 3 {
				t.Fatalf("Add() = %d, want 3", i)
			}
			b.SetUsable(3, true)
			b.SetUsable(2, false)
			if c := counts(picks(b, 100), 4); c[3] != 100 {
				t.Fatalf("counts = %v with only s3 (weight clamped to 256) usable, want all on s3", c)
			}
		})
	}
}

// TestWeightRatio: over many requests each algorithm but first shares
// traffic in proportion to weight.
func TestWeightRatio(t *testing.T) {
	weights := []int{1, 4, 16, 64, 0}
	const n = 85 * 400
	for _, algo := range Algorithms() {
		if algo == First {
			continue
		}
		t.Run(algo, func(t *testing.T) {
			b := mustNew(t, algo, servers(weights...))
			c := counts(picks(b, n), len(weights))
			for i, w := range weights {
				want := float64(n) * float64(w) / 85
				tol := 0.0
				switch algo {
				case Source, URI, Random, LeastConn:
					tol = 0.25*want + 30 // statistical, and leastconn idles all to key 0
				}
				if algo == LeastConn {
					// Sequential requests leave every server idle: leastconn
					// then round-robins regardless of weight, as HAProxy.
					want, tol = float64(n)/4, 1
					if w == 0 {
						want = 0
					}
				}
				if d := float64(c[i]) - want; d > tol || d < -tol {
					t.Errorf("s%d (weight %d) got %d picks, want %.0f ± %.0f", i, w, c[i], want, tol)
				}
			}
		})
	}
}

// TestConcurrent hammers every algorithm from several goroutines (run it
// with -race) and checks the in-flight accounting comes back to rest.
func TestConcurrent(t *testing.T) {
	for _, algo := range Algorithms() {
		t.Run(algo, func(t *testing.T) {
			b := mustNew(t, algo, []Server{{Weight: 1, MaxConn: 2}, {Weight: 5, MaxConn: 3}, {Weight: 256}})
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 1))
					var held []int
					for k := range 2000 {
						if i := b.Pick(keyFor(k), r.IntN(4)-1); i >= 0 {
							held = append(held, i)
						}
						if len(held) > 8 || r.IntN(2) == 0 && len(held) > 0 {
							b.Release(held[0])
							held = held[1:]
						}
					}
					for _, i := range held {
						b.Release(i)
					}
				})
			}
			wg.Go(func() {
				r := rand.New(rand.NewPCG(99, 1))
				for range 300 {
					i := r.IntN(3)
					b.SetWeight(i, r.IntN(257))
					b.SetUsable(i, r.IntN(3) > 0)
				}
				for range 5 {
					b.SetUsable(b.Add(Server{Weight: 3, MaxConn: 1}), true)
				}
			})
			wg.Wait()
			for i := range 8 {
				b.SetUsable(i, true)
				b.SetWeight(i, 1)
			}
			// All released: every server is idle again.
			if algo == LeastConn {
				c := counts(picks(b, 800), 8)
				for i, n := range c {
					if n != 100 {
						t.Errorf("leastconn after the storm: s%d got %d of 800 sequential picks, want 100 (all idle)", i, n)
					}
				}
			}
			if algo == First {
				if got := picks(b, 1)[0]; got != 0 {
					t.Errorf("first after the storm: Pick() = s%d, want s0 (all idle)", got)
				}
			}
		})
	}
}

func TestAlgorithmsListed(t *testing.T) {
	want := []string{"roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random"}
	if got := Algorithms(); !slices.Equal(got, want) {
		t.Errorf("Algorithms() = %v, want %v", got, want)
	}
}

func ExampleNew() {
	b, err := New("roundrobin", []Server{{Weight: 3}, {Weight: 2}, {Weight: 1}})
	if err != nil {
		panic(err)
	}
	for range 6 {
		i := b.Pick(nil, -1)
		fmt.Print("s", i+1, " ")
		b.Release(i)
	}
	fmt.Println()
	// Output: s1 s2 s1 s3 s1 s2
}
