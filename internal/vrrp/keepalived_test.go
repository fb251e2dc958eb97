package vrrp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// kaOpts configures a keepalived instance.
type kaOpts struct {
	prio        int
	unicastPeer string // unicast to this address instead of multicast
	vip         string // with its prefix length
}

// keepalived is a keepalived process (Debian 2.2.7) in a lab namespace.
type keepalived struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	out     *lockedBuffer
	done    chan struct{}
	stopped bool
}

// startKeepalived runs keepalived in the foreground in host's namespace,
// VRRPv3 with 100ms adverts, its pid files in a temp dir of its own.
func (l *lab) keepalived(host string, o kaOpts) *keepalived {
	t := l.t
	t.Helper()
	bin := testenv.Program(t, "keepalived")[0]
	dir := t.TempDir()
	uni := ""
	if o.unicastPeer != "" {
		uni = fmt.Sprintf("    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }\n", l.addr(host), o.unicastPeer)
	}
	conf := fmt.Sprintf(`global_defs {
    vrrp_version 3
    router_id %s
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int 0.1
%s    virtual_ipaddress {
        %s dev eth0
    }
}
`, host, o.prio, uni, o.vip)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &keepalived{t: t, dir: dir, out: &lockedBuffer{}, done: make(chan struct{})}
	k.cmd = exec.Command("ip", "netns", "exec", l.ns(host), bin, "-n", "-l", "-D", "-G", "-P", "-R",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.stop()
		log := k.out.String()
		// keepalived complains of adverts it does not like (bad checksum,
		// TTL, addresses, interval); fulcrum's must pass silently.
		for _, bad := range []string{"checksum", "TTL", "ttl", "not present", "mismatch", "invalid", "Invalid"} {
			if strings.Contains(log, bad) {
				t.Errorf("keepalived logged %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("keepalived %s:\n%s", host, tail(log, 30))
		}
	})
	// A configuration keepalived does not accept makes it exit; the test
	// must not mistake that for a backup that stays quiet.
	eventually(t, 5*time.Second, host+": keepalived entered backup state", func() bool {
		return strings.Contains(k.out.String(), "Entering BACKUP STATE")
	})
	return k
}

// stop sends SIGTERM to keepalived's parent (which resigns with priority
// 0) and makes sure its VRRP child is gone too.
func (k *keepalived) stop() {
	if k.stopped {
		return
	}
	k.stopped = true
	child := k.childPid()
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		k.cmd.Process.Kill()
		<-k.done
	}
	if child > 0 && syscall.Kill(child, 0) == nil {
		syscall.Kill(child, syscall.SIGKILL)
	}
}

// kill9 kills keepalived's VRRP child with SIGKILL: a crash, no priority 0,
// the VIP left on the interface. The parent (-R: no respawn) then exits.
func (k *keepalived) kill9() {
	child := k.childPid()
	if child <= 0 {
		k.t.Fatal("keepalived has no VRRP child pid")
	}
	syscall.Kill(child, syscall.SIGKILL)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
	}
	k.stop()
}

func (k *keepalived) childPid() int {
	b, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestKeepalivedInterop: a fulcrum router and keepalived in the same virtual
// router take the VIP from each other in both directions: IPv4 multicast and
// unicast, IPv6 multicast.
func TestKeepalivedInterop(t *testing.T) {
	type tc struct{ unicast, v6, fulcrumFirst bool }
	var cases []tc
	for _, c := range []tc{{false, false, false}, {true, false, false}, {false, true, false}} {
		for _, first := range []bool{true, false} {
			c.fulcrumFirst = first
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		unicast, fulcrumFirst := c.unicast, c.fulcrumFirst
		name := map[bool]string{false: "ipv4", true: "ipv6"}[c.v6] + map[bool]string{false: "-multicast/", true: "-unicast/"}[unicast]
		if fulcrumFirst {
			name += "fulcrum-master"
		} else {
			name += "keepalived-master"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, "lb1", "ka")
			vip, vipCIDR := testVIP, testVIP+"/24"
			if c.v6 {
				vip, vipCIDR = "2001:db8::50", "2001:db8::50/64"
			}
			mod := func(cf *config.VRRP) {
				cf.VirtualIPs = []string{vipCIDR}
				if unicast {
					cf.UnicastPeers = []string{l.addr("ka")}
				}
			}
			var kaPeer string
			if unicast {
				kaPeer = l.addr("lb1")
			}
			hold := func(host string) {
				t.Helper()
				other := map[string]string{"lb1": "ka", "ka": "lb1"}[host]
				eventually(t, 3*time.Second, vip+" on "+host+" only", func() bool {
					return l.holds(host, vip) && !l.holds(other, vip)
				})
			}
			if fulcrumFirst {
				// fulcrum (150) is master; keepalived (100) backs it up,
				// takes over on SIGTERM, and gives the VIP back when
				// fulcrum returns and preempts.
				lb1 := l.router("lb1", 150, mod)
				waitState(t, lb1, "master", 5*time.Second)
				l.keepalived("ka", kaOpts{prio: 100, unicastPeer: kaPeer, vip: vipCIDR})
				time.Sleep(time.Second)
				hold("lb1")
				t0 := time.Now()
				lb1.kill(syscall.SIGTERM)
				hold("ka")
				t.Logf("fulcrum → keepalived on SIGTERM: %v", time.Since(t0).Round(time.Millisecond))
				st, ok := lb1.final()
				if !ok || st.AdvertsReceived > 0 || st.Dropped != 0 {
					// keepalived stayed backup: fulcrum heard nothing
					// from it, and nothing was malformed.
					t.Errorf("fulcrum status: received %d dropped %d (ok %v), want 0 and 0", st.AdvertsReceived, st.Dropped, ok)
				}
				t0 = time.Now()
				lb1 = l.router("lb1", 150, mod)
				waitState(t, lb1, "master", 5*time.Second)
				hold("lb1")
				t.Logf("keepalived → fulcrum by preemption: %v (incl. process start)", time.Since(t0).Round(time.Millisecond))
				if tr := lb1.transitionsSince(t0); strings.Join(tr, ",") != "backup,master" {
					t.Errorf("fulcrum transitions %v, want backup,master", tr)
				}
				lb1.kill(syscall.SIGTERM)
				if st, _ := lb1.final(); st.AdvertsReceived == 0 || st.Dropped != 0 {
					t.Errorf("fulcrum status: received %d dropped %d, want >0 from keepalived and 0", st.AdvertsReceived, st.Dropped)
				}
				return
			}
			// keepalived (150) is master; fulcrum (100) backs it up and
			// takes over when keepalived stops; keepalived preempts on
			// its return.
			ka := l.keepalived("ka", kaOpts{prio: 150, unicastPeer: kaPeer, vip: vipCIDR})
			eventually(t, 5*time.Second, "keepalived master", func() bool { return l.holds("ka", vip) })
			lb1 := l.router("lb1", 100, mod)
			waitState(t, lb1, "backup", 5*time.Second)
			time.Sleep(time.Second)
			hold("ka")
			if s := lb1.state(); s != "backup" {
				t.Fatalf("fulcrum = %s beside keepalived master, want backup", s)
			}
			t0 := time.Now()
			ka.stop()
			waitState(t, lb1, "master", 3*time.Second)
			hold("lb1")
			took, _ := lb1.stateSince("master", t0)
			t.Logf("keepalived → fulcrum on SIGTERM: fulcrum master after %v", took.Sub(t0).Round(time.Millisecond))
			t0 = time.Now()
			l.keepalived("ka", kaOpts{prio: 150, unicastPeer: kaPeer, vip: vipCIDR})
			hold("ka")
			waitState(t, lb1, "backup", 3*time.Second)
			t.Logf("fulcrum → keepalived by preemption: %v (incl. process start)", time.Since(t0).Round(time.Millisecond))
			lb1.kill(syscall.SIGTERM)
			if st, _ := lb1.final(); st.AdvertsReceived == 0 || st.Dropped != 0 {
				t.Errorf("fulcrum status: received %d dropped %d, want >0 and 0", st.AdvertsReceived, st.Dropped)
			}
		})
	}
}

// TestKillMasterKeepalivedBaseline measures, with the same lab and client
// as TestKillMaster, two keepalived instances at advert_int 0.1: the figure
// fulcrum's gap is compared with. It asserts only that the backup took over.
func TestKillMasterKeepalivedBaseline(t *testing.T) {
	for _, failure := range []string{"kill -9", "link cut"} {
		t.Run(strings.ReplaceAll(failure, " ", "-"), func(t *testing.T) {
			l := newLab(t, "ka1", "ka2", "client")
			// The service beside keepalived, as haproxy would be; it dies
			// with it, as fulcrum's listener dies with fulcrum.
			srv1 := startProc(t, l.ns("ka1"), "ka1", envHelper, helperSpec{Name: "ka1", Serve: testVIP + ":8000"})
			startProc(t, l.ns("ka2"), "ka2", envHelper, helperSpec{Name: "ka2", Serve: testVIP + ":8000"})
			ka1 := l.keepalived("ka1", kaOpts{prio: 150, vip: testVIP + "/24"})
			eventually(t, 5*time.Second, "ka1 holds the VIP", func() bool { return l.holdsVIP("ka1") })
			l.keepalived("ka2", kaOpts{prio: 100, vip: testVIP + "/24"})
			time.Sleep(time.Second)
			cl := l.client("client", 3*time.Second)
			eventually(t, 2*time.Second, "client served by ka1", func() bool {
				return strings.HasSuffix(strings.Join(cl.output(), "\n"), " ka1")
			})
			time.Sleep(300 * time.Millisecond)
			t0 := time.Now()
			if failure == "kill -9" {
				srv1.cmd.Process.Signal(syscall.SIGKILL)
				ka1.kill9()
			} else {
				l.link("ka1", false)
			}
			cl.wait(5 * time.Second)
			r := analyse(t, cl.output(), t0, "ka1")
			t.Logf("keepalived baseline, %s at advert_int 0.1: client: first answer from %s after %v, longest gap %v, %d/%d attempts failed",
				failure, r.newName, r.firstAfter.Round(time.Millisecond), r.maxGap.Round(time.Millisecond), r.fails, r.attempts)
			if r.newName != "ka2" {
				t.Fatalf("client never reached ka2")
			}
		})
	}
}
