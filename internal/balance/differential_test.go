package balance

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"fulcrum/internal/testenv"
)

// A scenario is a backend's initial weights and runtime events, each
// applied after a number of requests, to be replayed on haproxy and on a
// Balancer.
type scenario struct {
	algo    string
	weights []int
	dead    []bool // servers that refuse connections: their requests are redispatched
	steps   []step
	spare   int // servers added at runtime
}

// step sends n requests, then applies ev (if any).
type step struct {
	n  int
	ev *event
}

type event struct {
	kind string // weight, maint, ready, disable, enable, drain, add
	srv  int
	w    int
}

func (e event) String() string {
	switch e.kind {
	case "weight", "add":
		return fmt.Sprintf("%s s%d %d", e.kind, e.srv, e.w)
	}
	return fmt.Sprintf("%s s%d", e.kind, e.srv)
}

// admin is the haproxy runtime command for the event.
func (e event) admin(addr string) (line, okPrefix string) {
	switch e.kind {
	case "weight":
		return fmt.Sprintf("set server b/s%d weight %d", e.srv, e.w), ""
	case "maint", "ready", "drain":
		return fmt.Sprintf("set server b/s%d state %s", e.srv, e.kind), ""
	case "disable", "enable":
		return fmt.Sprintf("%s server b/s%d", e.kind, e.srv), ""
	case "add":
		return fmt.Sprintf("add server b/s%d %s weight %d", e.srv, addr, e.w), "New server registered"
	}
	panic("unknown event " + e.kind)
}

// adminState tracks HAProxy's forced maint and drain flags per server, to
// derive what fulcrum's runtime would pass to SetUsable. In HAProxy 2.6,
// disable and `state maint` set maint and clear drain, `state drain` does
// the reverse, enable and `state ready` clear both (srv_adm_set_*).
type adminState struct{ maint, drain []bool }

func (a *adminState) apply(e event) {
	switch e.kind {
	case "maint", "disable":
		a.maint[e.srv], a.drain[e.srv] = true, false
	case "drain":
		a.maint[e.srv], a.drain[e.srv] = false, true
	case "ready", "enable":
		a.maint[e.srv], a.drain[e.srv] = false, false
	case "add":
		a.maint = append(a.maint, true) // added servers start in maint
		a.drain = append(a.drain, false)
	}
}

func (a *adminState) usable(i int) bool { return !a.maint[i] && !a.drain[i] }

// genWeight favours the edges: 0, 256 and small weights whose sequences
// are short and easy to read.
func genWeight(r *rand.Rand) int {
	switch p := r.IntN(10); {
	case p == 0:
		return 0
	case p == 1:
		return 256
	case p < 5:
		return 1 + r.IntN(5)
	default:
		return 1 + r.IntN(256)
	}
}

// cycle is one round over the usable weights (at least a few requests).
func cycle(weights []int, a *adminState) int {
	sum := 0
	for i, w := range weights {
		if a.usable(i) {
			sum += w
		}
	}
	return max(sum, 4)
}

// genScenario builds a seeded scenario for algo with n servers: two full
// cycles, then events each followed by up to two cycles, and two full
// cycles after the last event. static-rr only gets what HAProxy accepts
// for it: weight 0 or the initial weight, and no added servers.
func genScenario(seed uint64, algo string, n, nEvents int) scenario {
	r := rand.New(rand.NewPCG(seed, 0x62616c616e6365))
	sc := scenario{algo: algo}
	for range n {
		sc.weights = append(sc.weights, genWeight(r))
		sc.dead = append(sc.dead, n > 1 && r.IntN(6) == 0)
	}
	if onlyDead(sc.dead, sc.weights, &adminState{maint: make([]bool, n), drain: make([]bool, n)}, event{}) {
		sc.dead = make([]bool, n)
	}
	initial := slices.Clone(sc.weights)
	weights := slices.Clone(sc.weights)
	a := &adminState{maint: make([]bool, n), drain: make([]bool, n)}
	sc.steps = append(sc.steps, step{n: 2 * cycle(weights, a)})
	kinds := []string{"weight", "weight", "maint", "ready", "disable", "enable", "drain"}
	if algo == RoundRobin {
		kinds = append(kinds, "add")
	}
	for range nEvents {
		e := event{kind: kinds[r.IntN(len(kinds))], srv: r.IntN(len(weights))}
		if onlyDead(sc.dead, weights, a, e) {
			// haproxy would retry the dead server after a 1 s turn-around
			// for every request: slow, and no new information.
			continue
		}
		switch e.kind {
		case "weight":
			e.w = genWeight(r)
			if algo == StaticRR {
				e.w = []int{0, initial[e.srv]}[r.IntN(2)]
			}
			weights[e.srv] = e.w
		case "add":
			e.srv, e.w = len(weights), genWeight(r)
			weights = append(weights, e.w)
			initial = append(initial, e.w)
			sc.spare++
		}
		a.apply(e)
		sc.steps[len(sc.steps)-1].ev = &e
		sc.steps = append(sc.steps, step{n: 1 + r.IntN(2*cycle(weights, a))})
		if e.kind == "add" && r.IntN(4) > 0 {
			// Usually bring the new server in right away.
			e2 := event{kind: []string{"enable", "ready"}[r.IntN(2)], srv: e.srv}
			a.apply(e2)
			sc.steps[len(sc.steps)-1].ev = &e2
			sc.steps = append(sc.steps, step{n: 1 + r.IntN(2*cycle(weights, a))})
		}
	}
	sc.steps[len(sc.steps)-1].n = 2 * cycle(weights, a)
	return sc
}

// onlyDead reports whether after event e every usable server with a
// weight would be a dead one.
func onlyDead(dead []bool, weights []int, a *adminState, e event) bool {
	if e.kind == "add" {
		return false // added servers start in maint
	}
	w := slices.Clone(weights)
	b := &adminState{maint: slices.Clone(a.maint), drain: slices.Clone(a.drain)}
	b.apply(e)
	if e.kind == "weight" {
		w[e.srv] = e.w
	}
	live, deadUp := false, false
	for i := range w {
		if w[i] == 0 || !b.usable(i) {
			continue
		}
		if i < len(dead) && dead[i] {
			deadUp = true
		} else {
			live = true
		}
	}
	return deadUp && !live
}

func (sc scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s weights %v", sc.algo, sc.weights)
	for i, d := range sc.dead {
		if d {
			fmt.Fprintf(&b, ", s%d dead", i)
		}
	}
	b.WriteString(":")
	for _, s := range sc.steps {
		fmt.Fprintf(&b, " %d req", s.n)
		if s.ev != nil {
			fmt.Fprintf(&b, ", %v;", *s.ev)
		}
	}
	return b.String()
}

// replay runs sc on haproxy and on New(sc.algo) and fails at the first
// request where they disagree.
func replay(t *testing.T, sc scenario) {
	h := startHAProxy(t, sc.algo, sc.weights, sc.dead, sc.spare)
	servers := make([]Server, len(sc.weights))
	for i, w := range sc.weights {
		servers[i].Weight = w
	}
	b, err := New(sc.algo, servers)
	if err != nil {
		t.Fatal(err)
	}
	a := &adminState{maint: make([]bool, len(sc.weights)), drain: make([]bool, len(sc.weights))}
	var got, want []int // fulcrum, haproxy
	spare := 0
	var done []string
	for _, s := range sc.steps {
		for range s.n {
			want = append(want, h.get())
			g := b.Pick(nil, -1)
			if g >= 0 {
				b.Release(g)
			}
			if g >= 0 && g < len(sc.dead) && sc.dead[g] {
				// Connection refused: haproxy redispatches the retry,
				// avoiding the server that failed; if that lands on a
				// dead server too, the client gets a 503.
				g = b.Pick(nil, g)
				if g >= 0 {
					b.Release(g)
				}
				if g >= 0 && g < len(sc.dead) && sc.dead[g] {
					g = -1
				}
			}
			got = append(got, g)
			if k := len(got) - 1; got[k] != want[k] {
				lo := max(0, k-12)
				t.Fatalf("request %d: Pick() = s%d, want s%d (haproxy)\nscenario: %v\nevents so far: %v\nfulcrum from request %d: %v\nhaproxy from request %d: %v",
					k, got[k], want[k], sc, done, lo, got[lo:], lo, want[lo:])
			}
		}
		if s.ev == nil {
			continue
		}
		e := *s.ev
		addr := ""
		if e.kind == "add" {
			addr = h.spare[spare]
			spare++
		}
		h.admin(e.admin(addr))
		a.apply(e)
		switch e.kind {
		case "weight":
			b.SetWeight(e.srv, e.w)
		case "add":
			if i := b.Add(Server{Weight: e.w}); i != e.srv {
				t.Fatalf("Add() = %d, want %d", i, e.srv)
			}
		default:
			b.SetUsable(e.srv, a.usable(e.srv))
		}
		done = append(done, fmt.Sprintf("%v after request %d", e, len(got)-1))
	}
	t.Logf("%d requests matched: %v", len(got), sc)
}

// differentialSizes are the backend sizes of the generated scenarios:
// every size from 1 to 5, then larger backends. FULCRUM_BALANCE_SEEDS=N
// adds N more generated backends of 1 to 12 servers for a longer soak.
func differentialSizes() []int {
	sizes := []int{1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 2, 3, 8, 16, 40}
	extra, _ := strconv.Atoi(os.Getenv("FULCRUM_BALANCE_SEEDS"))
	for k := range extra {
		sizes = append(sizes, 1+k%12)
	}
	return sizes
}

// eventCounts is how many runtime events the scenarios of size k get: a
// run without events, one with a few and one with many.
func eventCounts(k int) []int { return []int{0, 3 + k%4, 12 + k%5} }

// handScenarios are edge cases written out: all weights 0, all servers
// down and back, weight 0 and 256, a server drained then re-weighted.
func handScenarios(algo string) []scenario {
	ev := func(n int, kind string, srv, w int) step {
		return step{n: n, ev: &event{kind: kind, srv: srv, w: w}}
	}
	end := step{n: 40}
	scs := []scenario{
		{weights: []int{0}, steps: []step{{n: 5}}},
		{weights: []int{0, 3, 0}, steps: []step{ev(3, "weight", 1, 0), ev(3, "weight", 1, 3), end}},
		{weights: []int{256, 256, 256}, steps: []step{{n: 2 * 768}}},
		{weights: []int{1, 256}, steps: []step{ev(300, "disable", 1, 0), ev(5, "disable", 0, 0), ev(3, "enable", 1, 0), ev(600, "enable", 0, 0), {n: 2 * 257}}},
		{weights: []int{3, 2, 1}, steps: []step{ev(7, "drain", 0, 0), ev(4, "weight", 0, 0), ev(4, "ready", 0, 0), ev(4, "weight", 0, 3), {n: 24}}},
		{weights: []int{5, 0, 5}, steps: []step{ev(11, "maint", 2, 0), ev(3, "maint", 0, 0), ev(2, "ready", 2, 0), ev(1, "ready", 0, 0), {n: 40}}},
		// Redispatch (avoid): one dead server, two, and a dead one alone.
		{weights: []int{3, 2, 1, 2}, dead: []bool{false, false, false, true}, steps: []step{{n: 2 * 8 * 16}}},
		// (With s1 disabled, haproxy retries s0 after a 1 s turn-around.)
		{weights: []int{1, 1}, dead: []bool{true, false}, steps: []step{ev(9, "disable", 1, 0), ev(2, "enable", 1, 0), {n: 20}}},
		{weights: []int{5, 5, 5, 1}, dead: []bool{true, true, false, false}, steps: []step{ev(33, "weight", 2, 0), ev(17, "weight", 3, 0), {n: 40}}},
	}
	if algo == RoundRobin {
		scs = append(scs,
			scenario{weights: []int{0, 0, 0}, steps: []step{ev(3, "weight", 1, 2), end}},
			scenario{weights: []int{1, 1}, steps: []step{ev(3, "weight", 0, 3), {n: 2 * 4 * 16}}},
			scenario{weights: []int{2, 2}, steps: []step{ev(5, "weight", 0, 0), ev(5, "weight", 1, 256), ev(5, "weight", 0, 1), {n: 2 * 257}}},
			scenario{weights: []int{4}, spare: 2, steps: []step{ev(3, "add", 1, 4), ev(2, "enable", 1, 0), ev(9, "add", 2, 0), ev(1, "ready", 2, 0), ev(4, "weight", 2, 8), {n: 2 * 16}}},
		)
	}
	for i := range scs {
		scs[i].algo = algo
	}
	return scs
}

// TestHAProxyRoundRobin replays weight sets and runtime events on haproxy
// 2.6 (`balance roundrobin`) and on New("roundrobin"), and requires the
// same server for every request.
func TestHAProxyRoundRobin(t *testing.T) {
	testenv.Short(t)
	testenv.Program(t, "haproxy")
	for k, sc := range handScenarios(RoundRobin) {
		t.Run(fmt.Sprintf("hand%d", k), func(t *testing.T) {
			t.Parallel()
			replay(t, sc)
		})
	}
	for k, n := range differentialSizes() {
		for _, nEvents := range eventCounts(k) {
			seed := uint64(1000*k + nEvents)
			sc := genScenario(seed, RoundRobin, n, nEvents)
			t.Run(fmt.Sprintf("n%d/events%d/seed%d", n, nEvents, seed), func(t *testing.T) {
				t.Parallel()
				replay(t, sc)
			})
		}
	}
}

// TestHAProxyStaticRR does the same for `balance static-rr`.
func TestHAProxyStaticRR(t *testing.T) {
	testenv.Short(t)
	testenv.Program(t, "haproxy")
	for k, sc := range handScenarios(StaticRR) {
		t.Run(fmt.Sprintf("hand%d", k), func(t *testing.T) {
			t.Parallel()
			replay(t, sc)
		})
	}
	for k, n := range differentialSizes() {
		for _, nEvents := range eventCounts(k) {
			seed := uint64(1000*k + nEvents + 7)
			sc := genScenario(seed, StaticRR, n, nEvents)
			t.Run(fmt.Sprintf("n%d/events%d/seed%d", n, nEvents, seed), func(t *testing.T) {
				t.Parallel()
				replay(t, sc)
			})
		}
	}
}
