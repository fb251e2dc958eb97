package vrrp

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// Two routers in one process over loopback UDP, on the system clock: the
// transport carries real adverts, and a resigning master hands over.
func TestLocalModeInProcess(t *testing.T) {
	const ivl = 20 * time.Millisecond
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	ta, err := ListenUDP(lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := ListenUDP(lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ta.SetPeers([]netip.AddrPort{tb.LocalAddr()})
	tb.SetPeers([]netip.AddrPort{ta.LocalAddr()})

	type holder struct {
		mu   sync.Mutex
		held bool
	}
	mk := func(tr *UDPTransport, prio uint8, h *holder) *Router {
		v := FuncVIPs{
			Up:   func() error { h.mu.Lock(); h.held = true; h.mu.Unlock(); return nil },
			Down: func() error { h.mu.Lock(); h.held = false; h.mu.Unlock(); return nil },
		}
		r, err := New(Config{VRID: 51, Priority: prio, AdvertInterval: ivl, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, tr, v, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var ha, hb holder
	a, b := mk(ta, 150, &ha), mk(tb, 100, &hb)
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	go func() { doneB <- b.Run(ctxB) }()
	eventually(t, 2*time.Second, "a master, b backup", func() bool { return a.State() == Master && b.State() == Backup })
	ha.mu.Lock()
	held := ha.held
	ha.mu.Unlock()
	if !held {
		t.Fatal("a is master but Up was not called")
	}
	eventually(t, time.Second, "b hears a", func() bool { return b.Status().AdvertsReceived >= 3 })
	if s := b.Status(); s.Master != ta.LocalAddr() || s.Dropped != 0 {
		t.Fatalf("b.Status() master %v dropped %d, want %v and 0", s.Master, s.Dropped, ta.LocalAddr())
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("a.Run() = %v", err)
	}
	eventually(t, time.Second, "b master after a resigned", func() bool { return b.State() == Master })
	stopB()
	<-doneB
}

// TestLocalModeKill: two router processes on one machine, no root; the
// master serves the shared front address. kill -9 the master: the other
// binds the address within Master_Down_Interval.
func TestLocalModeKill(t *testing.T) {
	testenv.Short(t)
	front := testenv.FreeAddr(t, "tcp")
	udp1, udp2 := testenv.FreeAddr(t, "udp"), testenv.FreeAddr(t, "udp")
	spec := func(name, listen, peer string, prio int) helperSpec {
		yes := true
		return helperSpec{Name: name, Serve: front, VRRP: config.VRRP{
			Mode: "local", VirtualRouterID: 51, Priority: prio, Preempt: &yes,
			AdvertInterval: config.Duration(100 * time.Millisecond),
			Local:          &config.VRRPLocal{Address: front, Listen: listen, Peers: []string{peer}},
		}}
	}
	lb1 := startProc(t, "", "lb1", envHelper, spec("lb1", udp1, udp2, 150))
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := startProc(t, "", "lb2", envHelper, spec("lb2", udp2, udp1, 100))
	waitState(t, lb2, "backup", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	cl := startProc(t, "", "client", envClient, clientSpec{Addr: front, Duration: 2 * time.Second, Every: 10 * time.Millisecond})
	eventually(t, 2*time.Second, "client served by lb1", func() bool {
		return strings.HasSuffix(strings.Join(cl.output(), "\n"), " lb1")
	})
	t0 := time.Now()
	lb1.kill(syscall.SIGKILL)
	waitState(t, lb2, "master", 2*time.Second)
	cl.wait(5 * time.Second)
	took, _ := lb2.stateSince("master", t0)
	r := analyse(t, cl.output(), t0, "lb1")
	t.Logf("local mode, kill -9 at 100ms adverts: backup master after %v; client: first answer from %s after %v, %d/%d attempts failed",
		took.Sub(t0).Round(time.Millisecond), r.newName, r.firstAfter.Round(time.Millisecond), r.fails, r.attempts)
	// Master_Down_Interval: 3 × 100ms + 156/256 × 100ms = 361ms after the
	// last advert heard, so at most that after the kill.
	if d := took.Sub(t0); d > 361*time.Millisecond+50*time.Millisecond {
		t.Errorf("takeover after %v, want within Master_Down_Interval (361ms)", d)
	}
	if r.newName != "lb2" || r.failsAfter != 0 {
		t.Errorf("client: new server %q, %d failures after it answered; want lb2, 0", r.newName, r.failsAfter)
	}
}
