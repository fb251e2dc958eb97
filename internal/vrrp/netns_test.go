package vrrp

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/netns"
	"fulcrum/internal/testenv"
)

// lab is one network namespace per host on a bridge (internal/netns),
// numbered 192.0.2.11, .12, … (TEST-NET-1). Nothing is created in the
// machine's own namespace; Cleanup deletes all.
type lab struct {
	t   *testing.T
	net *netns.Net
}

const testVIP = "192.0.2.50"

func newLab(t *testing.T, hosts ...string) *lab {
	t.Helper()
	l := &lab{t: t, net: testenv.Hosts(t, hosts...)}
	for _, h := range hosts {
		// IPv6 from the documentation prefix (RFC 3849); netns hosts
		// skip duplicate address detection.
		l.run("ip", "-n", l.ns(h), "addr", "add", l.addr6(h)+"/64", "dev", "eth0", "nodad")
	}
	return l
}

func (l *lab) ns(host string) string { return l.net.NS(host) }

func (l *lab) addr(host string) string { return l.net.Addr(host).String() }

func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mac is the hardware address of host's eth0.
func (l *lab) mac(host string) string {
	f := strings.Fields(l.run("ip", "-n", l.ns(host), "-o", "link", "show", "dev", "eth0"))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	l.t.Fatalf("no MAC address on %s's eth0", host)
	return ""
}

// neighbour is the MAC address host has for addr, or "".
func (l *lab) neighbour(host, addr string) string {
	f := strings.Fields(l.run("ip", "-n", l.ns(host), "neigh", "show", addr, "dev", "eth0"))
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// link sets the switch port of host up or down: a cut cable.
func (l *lab) link(host string, up bool) {
	if err := l.net.SetLink(host, up); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) addr6(host string) string {
	return fmt.Sprintf("2001:db8::%d", l.net.Addr(host).As4()[3])
}

// holdsVIP reports whether the VIP is on host's eth0.
func (l *lab) holdsVIP(host string) bool { return l.holds(host, testVIP) }

// holds reports whether addr is on host's eth0.
func (l *lab) holds(host, addr string) bool {
	out, err := exec.Command("ip", "-n", l.ns(host), "-o", "addr", "show", "dev", "eth0").Output()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

func (l *lab) vrrpConfig(host string, prio int, mod func(*config.VRRP)) config.VRRP {
	c := config.VRRP{
		Interface:       "eth0",
		VirtualRouterID: 51,
		Priority:        prio,
		AdvertInterval:  config.Duration(100 * time.Millisecond),
		VirtualIPs:      []string{testVIP + "/24"},
	}
	if mod != nil {
		mod(&c)
	}
	c.Mode = "ip"
	if c.Preempt == nil {
		t := true
		c.Preempt = &t
	}
	return c
}

// router starts a fulcrum router in host's namespace, serving its name on
// VIP:8000 (bound with freebind from the start).
func (l *lab) router(host string, prio int, mod func(*config.VRRP)) *proc {
	l.t.Helper()
	return l.routerServing(host, prio, mod, testVIP+":8000")
}

func (l *lab) routerServing(host string, prio int, mod func(*config.VRRP), serve string) *proc {
	l.t.Helper()
	return startProc(l.t, l.ns(host), host, envHelper, helperSpec{
		Name:  host,
		VRRP:  l.vrrpConfig(host, prio, mod),
		Serve: serve,
	})
}

// client starts the measuring client in host's namespace.
func (l *lab) client(host string, d time.Duration) *proc {
	l.t.Helper()
	return l.clientOf(host, d, testVIP+":8000")
}

func (l *lab) clientOf(host string, d time.Duration, addr string) *proc {
	l.t.Helper()
	return startProc(l.t, l.ns(host), host, envClient, clientSpec{Addr: addr, Duration: d, Every: 10 * time.Millisecond})
}

func waitState(t *testing.T, p *proc, s string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, p.name+" in state "+s, func() bool { return p.state() == s })
}

// TestKillMaster is issue 4's main proof below the LB: the master fails
// while a client connects to the VIP continuously; the backup serves. The
// failure is kill -9 of the master process (its listener dies with it), or
// its cable cut (it keeps the VIP, unreachable).
func TestKillMaster(t *testing.T) {
	for _, failure := range []string{"kill -9", "link cut"} {
		t.Run(strings.ReplaceAll(failure, " ", "-"), func(t *testing.T) {
			l := newLab(t, "lb1", "lb2", "client")
			lb1 := l.router("lb1", 150, nil)
			waitState(t, lb1, "master", 5*time.Second)
			lb2 := l.router("lb2", 100, nil)
			waitState(t, lb2, "backup", 5*time.Second)
			time.Sleep(300 * time.Millisecond) // lb2 learns lb1's interval

			cl := l.client("client", 3*time.Second)
			eventually(t, 2*time.Second, "client served by lb1", func() bool {
				return strings.HasSuffix(strings.Join(cl.output(), "\n"), " lb1")
			})
			time.Sleep(300 * time.Millisecond)
			mac1 := l.mac("lb1")
			eventually(t, 2*time.Second, "client's ARP entry for the VIP is lb1's MAC "+mac1, func() bool {
				return l.neighbour("client", testVIP) == mac1
			})
			t0 := time.Now()
			if failure == "kill -9" {
				lb1.kill(syscall.SIGKILL)
			} else {
				l.link("lb1", false)
			}
			waitState(t, lb2, "master", 2*time.Second)
			// The gratuitous ARPs moved the client's neighbour entry.
			mac2 := l.mac("lb2")
			eventually(t, time.Second, "client's ARP entry for the VIP is lb2's MAC "+mac2, func() bool {
				return l.neighbour("client", testVIP) == mac2
			})
			cl.wait(5 * time.Second)

			took, _ := lb2.stateSince("master", t0)
			r := analyse(t, cl.output(), t0, "lb1")
			t.Logf("%s at 100ms adverts: backup master after %v; client: first answer from %s after %v, longest gap %v, %d/%d attempts failed",
				failure, took.Sub(t0).Round(time.Millisecond), r.newName, r.firstAfter.Round(time.Millisecond), r.maxGap.Round(time.Millisecond), r.fails, r.attempts)
			if r.newName != "lb2" {
				t.Fatalf("client never reached lb2 after the failure")
			}
			if r.failsAfter != 0 {
				t.Errorf("%d failures after lb2 answered, want 0", r.failsAfter)
			}
			// Master_Down_Interval is 3 × 100ms + 61ms; the target
			// is 500ms.
			if r.firstAfter > 500*time.Millisecond {
				t.Errorf("client gap %v, want under 500ms", r.firstAfter)
			}
			if !l.holdsVIP("lb2") {
				t.Errorf("lb2 master but the VIP is not on its interface")
			}
		})
	}
}

// TestGracefulStop: SIGTERM makes the master send priority 0, and the
// backup takes over after Skew_Time, not Master_Down_Interval.
func TestGracefulStop(t *testing.T) {
	l := newLab(t, "lb1", "lb2", "client")
	lb1 := l.router("lb1", 150, nil)
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := l.router("lb2", 100, nil)
	waitState(t, lb2, "backup", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	cl := l.client("client", 2*time.Second)
	eventually(t, 2*time.Second, "client served by lb1", func() bool {
		return strings.HasSuffix(strings.Join(cl.output(), "\n"), " lb1")
	})
	t0 := time.Now()
	lb1.kill(15)
	waitState(t, lb2, "master", 2*time.Second)
	cl.wait(5 * time.Second)
	took, _ := lb2.stateSince("master", t0)
	r := analyse(t, cl.output(), t0, "lb1")
	skew := 156 * 100 * time.Millisecond / 256
	t.Logf("SIGTERM at 100ms adverts: backup master after %v (Skew_Time %v); client: first answer from lb2 after %v, %d/%d attempts failed",
		took.Sub(t0).Round(time.Millisecond), skew, r.firstAfter.Round(time.Millisecond), r.fails, r.attempts)
	// The backup must have taken over because of the priority 0 advert,
	// after Skew_Time, not because lb1 fell silent (Master_Down_Interval,
	// 361ms). Wall time on a loaded machine adds scheduling delay to both,
	// so the log says which it was; the wall time is reported, and only
	// a gross delay fails.
	if !strings.Contains(lb2.stderr.String(), `msg="master resigned"`) {
		t.Errorf("lb2 did not see lb1's priority 0 advert")
	}
	if d := took.Sub(t0); d >= time.Second {
		t.Errorf("handover took %v, want about Skew_Time %v", d, skew)
	}
	if l.holdsVIP("lb1") {
		t.Errorf("lb1 stopped but left the VIP on its interface")
	}
	if r.failsAfter != 0 {
		t.Errorf("%d failures after lb2 answered, want 0", r.failsAfter)
	}
}

func TestPreemption(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(fmt.Sprintf("preempt=%v", preempt), func(t *testing.T) {
			l := newLab(t, "lb1", "lb2")
			mod := func(c *config.VRRP) { c.Preempt = &preempt }
			lb2 := l.router("lb2", 100, mod)
			waitState(t, lb2, "master", 5*time.Second)
			t0 := time.Now()
			lb1 := l.router("lb1", 150, mod)
			if preempt {
				waitState(t, lb1, "master", 3*time.Second)
				waitState(t, lb2, "backup", time.Second)
				took, _ := lb1.stateSince("master", t0)
				t.Logf("higher priority came back and took over after %v (incl. process start)", took.Sub(t0).Round(time.Millisecond))
				if !l.holdsVIP("lb1") || l.holdsVIP("lb2") {
					t.Errorf("VIP on lb1 %v, lb2 %v; want lb1 only", l.holdsVIP("lb1"), l.holdsVIP("lb2"))
				}
				return
			}
			waitState(t, lb1, "backup", 3*time.Second)
			time.Sleep(time.Second) // ten advert intervals
			if s := lb1.state(); s != "backup" {
				t.Fatalf("preempt off: lb1 = %s, want backup", s)
			}
			if s := lb2.state(); s != "master" {
				t.Fatalf("preempt off: lb2 = %s, want master", s)
			}
		})
	}
}

// TestSplitBrain cuts lb2's cable: both become master, as VRRP must; when
// the cable is back, one master remains within three advert intervals.
func TestSplitBrain(t *testing.T) {
	l := newLab(t, "lb1", "lb2")
	lb1 := l.router("lb1", 150, nil)
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := l.router("lb2", 100, nil)
	waitState(t, lb2, "backup", 5*time.Second)
	l.link("lb2", false)
	waitState(t, lb2, "master", 2*time.Second)
	if lb1.state() != "master" {
		t.Fatalf("lb1 = %s during the split, want master", lb1.state())
	}
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	l.link("lb2", true)
	waitState(t, lb2, "backup", 2*time.Second)
	took, _ := lb2.stateSince("backup", t0)
	t.Logf("split brain healed: one master %v after the link came back", took.Sub(t0).Round(time.Millisecond))
	if d := took.Sub(t0); d > 300*time.Millisecond {
		t.Errorf("two masters for %v after the link returned, want under 3 intervals (300ms)", d)
	}
	time.Sleep(300 * time.Millisecond)
	if lb1.state() != "master" || lb2.state() != "backup" {
		t.Errorf("after healing: lb1 %s lb2 %s, want master backup", lb1.state(), lb2.state())
	}
	if l.holdsVIP("lb2") {
		t.Errorf("lb2 still holds the VIP")
	}
}

// TestUnicastFailover: the same failover with unicast_peers instead of
// multicast.
func TestUnicastFailover(t *testing.T) {
	l := newLab(t, "lb1", "lb2")
	uni := func(peer string) func(*config.VRRP) {
		return func(c *config.VRRP) { c.UnicastPeers = []string{l.addr(peer)} }
	}
	lb1 := l.router("lb1", 150, uni("lb2"))
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := l.router("lb2", 100, uni("lb1"))
	waitState(t, lb2, "backup", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if lb2.state() != "backup" {
		t.Fatalf("lb2 = %s, want backup while lb1 advertises by unicast", lb2.state())
	}
	lb1.kill(9)
	waitState(t, lb2, "master", 2*time.Second)
}

// TestTrackingOverTheWire: every server of the master's tracked backend goes down;
// its priority drops below the peer's, which takes over; when the backend
// recovers, the first takes the VIP back.
func TestTrackingOverTheWire(t *testing.T) {
	l := newLab(t, "lb1", "lb2")
	track := func(c *config.VRRP) { c.Track = []config.VRRPTrack{{Backend: "web", Weight: 60}} }
	lb1 := l.router("lb1", 150, track)
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := l.router("lb2", 100, track)
	waitState(t, lb2, "backup", 5*time.Second)
	t0 := time.Now()
	lb1.cmd.Process.Signal(syscall.SIGUSR1) // backend web down on lb1: 150 − 60 = 90
	waitState(t, lb2, "master", 2*time.Second)
	waitState(t, lb1, "backup", time.Second)
	took, _ := lb2.stateSince("master", t0)
	t.Logf("tracked backend down: peer master after %v", took.Sub(t0).Round(time.Millisecond))
	if !l.holdsVIP("lb2") || l.holdsVIP("lb1") {
		t.Errorf("VIP on lb1 %v, lb2 %v; want lb2 only", l.holdsVIP("lb1"), l.holdsVIP("lb2"))
	}
	lb1.cmd.Process.Signal(syscall.SIGUSR2)
	waitState(t, lb1, "master", 2*time.Second)
	waitState(t, lb2, "backup", time.Second)
}

// TestActiveActive: two virtual routers, each LB master of one and backup
// of the other; when one LB dies, the other holds both VIPs.
func TestActiveActive(t *testing.T) {
	const vip2 = "192.0.2.51"
	l := newLab(t, "lb1", "lb2")
	second := func(prio int) func(*config.VRRP) {
		return func(c *config.VRRP) {
			c.VirtualRouters = []config.VRRPRouter{{VirtualRouterID: 52, Priority: prio, VirtualIPs: []string{vip2 + "/24"}}}
		}
	}
	lb1 := l.router("lb1", 150, second(100))
	lb2 := l.router("lb2", 100, second(150))
	eventually(t, 5*time.Second, "lb1 holds .50 and lb2 holds .51, each only its own", func() bool {
		return l.holds("lb1", testVIP) && !l.holds("lb1", vip2) && l.holds("lb2", vip2) && !l.holds("lb2", testVIP)
	})
	_ = lb2
	t0 := time.Now()
	lb1.kill(syscall.SIGKILL)
	eventually(t, 2*time.Second, "lb2 holds both VIPs", func() bool { return l.holds("lb2", testVIP) && l.holds("lb2", vip2) })
	t.Logf("active-active: lb2 holds both VIPs %v after kill -9 of lb1", time.Since(t0).Round(time.Millisecond))
}

// TestIPv6KillMaster is TestKillMaster over IPv6: adverts to ff02::12 from
// link-local addresses, unsolicited neighbour advertisements.
func TestIPv6KillMaster(t *testing.T) {
	const vip6 = "2001:db8::50"
	l := newLab(t, "lb1", "lb2", "client")
	v6 := func(c *config.VRRP) { c.VirtualIPs = []string{vip6 + "/64"} }
	serve := "[" + vip6 + "]:8000"
	lb1 := l.routerServing("lb1", 150, v6, serve)
	waitState(t, lb1, "master", 5*time.Second)
	lb2 := l.routerServing("lb2", 100, v6, serve)
	waitState(t, lb2, "backup", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if lb2.state() != "backup" || !l.holds("lb1", vip6) {
		t.Fatalf("lb2 %s, VIP on lb1 %v; want backup, true", lb2.state(), l.holds("lb1", vip6))
	}
	cl := l.clientOf("client", 3*time.Second, serve)
	eventually(t, 2*time.Second, "client served by lb1", func() bool {
		return strings.HasSuffix(strings.Join(cl.output(), "\n"), " lb1")
	})
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	lb1.kill(syscall.SIGKILL)
	waitState(t, lb2, "master", 2*time.Second)
	cl.wait(5 * time.Second)
	took, _ := lb2.stateSince("master", t0)
	r := analyse(t, cl.output(), t0, "lb1")
	t.Logf("IPv6 kill -9 at 100ms adverts: backup master after %v; client: first answer from %s after %v, %d/%d attempts failed",
		took.Sub(t0).Round(time.Millisecond), r.newName, r.firstAfter.Round(time.Millisecond), r.fails, r.attempts)
	if r.newName != "lb2" || r.failsAfter != 0 {
		t.Fatalf("client: new server %q, %d failures after it answered; want lb2, 0", r.newName, r.failsAfter)
	}
	if r.firstAfter > 500*time.Millisecond {
		t.Errorf("client gap %v, want under 500ms", r.firstAfter)
	}
}

// A connection accepted on a freebind listener's VIP can still answer its
// client after the address has left the interface: what a load balancer
// that gives up the VIP needs to finish the responses under way. Without
// IP_TRANSPARENT the kernel drops every packet from the departed address
// and the client waits for nothing.
func TestFreebindAnswersAfterRelease(t *testing.T) {
	l := newLab(t, "lb", "client")
	vip := testVIP + ":8000"
	var ln net.Listener
	if err := netns.In(l.ns("lb"), func() (err error) {
		ln, err = ListenFreebind("tcp", vip)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l.run("ip", "-n", l.ns("lb"), "addr", "add", testVIP+"/24", "dev", "eth0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := l.net.Dialer(ctx, "client")
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(ctx, "tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, len("request"))); err != nil {
		t.Fatal(err)
	}
	l.run("ip", "-n", l.ns("lb"), "addr", "del", testVIP+"/24", "dev", "eth0")
	if _, err := s.Write([]byte("answer")); err != nil {
		t.Fatalf("answering after the release: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := make([]byte, len("answer"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v; want the answer sent after the VIP left", got, err)
	}
}
