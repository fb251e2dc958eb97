package firewall

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/netns"
	"fulcrum/internal/testenv"
)

// lab is two network namespaces on a veth pair: "host" plays web1
// (192.0.2.21) and gets the firewall; "peer" holds lb1's address
// (192.0.2.11, its primary), a host of no role (192.0.2.40) and the
// monitoring host (192.0.2.5), and dials from each.
type lab struct {
	t          *testing.T
	host, peer string // namespace names
	hostFD     int    // open descriptor of the host namespace
}

var (
	labHost    = netip.MustParseAddr("192.0.2.21")
	labOutside = netip.MustParseAddr("192.0.2.40")
)

func newLab(t *testing.T) *lab {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	l := &lab{t: t, host: "fulcrum-fw-" + id + "-h", peer: "fulcrum-fw-" + id + "-p"}
	for _, ns := range []string{l.host, l.peer} {
		l.run("ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	// Created inside the host namespace with its peer moved straight to
	// the peer namespace: the root namespace never sees either end.
	l.run("ip", "-n", l.host, "link", "add", "fw0", "type", "veth", "peer", "name", "fw0", "netns", l.peer)
	l.run("ip", "-n", l.host, "addr", "add", labHost.String()+"/24", "dev", "fw0")
	for _, a := range []netip.Addr{lb1, labOutside, monitor} {
		l.run("ip", "-n", l.peer, "addr", "add", a.String()+"/24", "dev", "fw0")
	}
	for _, ns := range []string{l.host, l.peer} {
		l.run("ip", "-n", ns, "link", "set", "lo", "up")
		l.run("ip", "-n", ns, "link", "set", "fw0", "up")
	}
	f, err := os.Open(filepath.Join("/run/netns", l.host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.hostFD = int(f.Fd())
	return l
}

func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listen opens TCP listeners on every port in the host namespace, which
// accept and close connections until the test ends.
func (l *lab) listen(ports ...uint16) {
	l.t.Helper()
	for _, port := range ports {
		var ln net.Listener
		err := netns.In(l.host, func() (err error) {
			ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
			return err
		})
		if err != nil {
			l.t.Fatal(err)
		}
		l.t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

// dialTimeout is how long a dial waits before the SYN counts as dropped;
// on a veth pair an accepted handshake takes well under a millisecond.
const dialTimeout = time.Second

// reach dials port on the host from src in the peer namespace: nil when
// the connection is accepted, errDropped when nothing answered.
func (l *lab) reach(src netip.Addr, port uint16) error {
	return netns.In(l.peer, func() error {
		d := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp4", netip.AddrPortFrom(labHost, port).String())
		if err == nil {
			c.Close()
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errDropped
		}
		return err
	})
}

var errDropped = errors.New("dropped: no answer")

// TestNetnsWebHost applies web1's ruleset in a namespace of its own and
// checks, from a peer namespace, every source against every port: the
// kernel's answer must equal the evaluator's, and the web port must answer
// only the load balancer.
func TestNetnsWebHost(t *testing.T) {
	testenv.Short(t)
	testenv.Root(t)
	testenv.Program(t, "ip", "nft")
	rootHadTable := rootHasTable(t)

	l := newLab(t)
	ports := []uint16{22, 80, 443, 3306, 9101, 9111}
	l.listen(ports...)
	sources := []netip.Addr{lb1, labOutside, monitor}

	// Without the firewall everything answers: what follows is its doing.
	for _, src := range sources {
		for _, port := range ports {
			if err := l.reach(src, port); err != nil {
				t.Fatalf("before apply: %s → :%d: %v, want accepted", src, port, err)
			}
		}
	}

	rs, err := Plan(defaultTopology(t), "web1")
	if err != nil {
		t.Fatal(err)
	}
	inst := Installer{NetNS: l.hostFD}
	if err := inst.Apply(rs); err != nil {
		t.Fatalf("Apply() = %v", err)
	}

	t.Run("kernel agrees with the evaluator", func(t *testing.T) {
		// Every dial at once: a dropped one costs a whole dialTimeout.
		var wg sync.WaitGroup
		for _, src := range sources {
			for _, port := range ports {
				wg.Add(1)
				go func() {
					defer wg.Done()
					want, _ := Evaluate(rs.Chain("input"), tcp(src, labHost, port))
					err := l.reach(src, port)
					switch {
					case want == Accept && err != nil:
						t.Errorf("%s → :%d: %v, want accepted", src, port, err)
					case want == Drop && !errors.Is(err, errDropped):
						t.Errorf("%s → :%d: %v, want dropped", src, port, err)
					}
				}()
			}
		}
		wg.Wait()
	})
	t.Run("web port only from the load balancer", func(t *testing.T) {
		// The table above checks these too; they are the point of the
		// web host's firewall, so they are spelled out.
		if err := l.reach(lb1, 9101); err != nil {
			t.Errorf("lb1 → web1:9101: %v, want accepted", err)
		}
		if err := l.reach(labOutside, 9101); !errors.Is(err, errDropped) {
			t.Errorf("192.0.2.40 → web1:9101: %v, want dropped", err)
		}
		if err := l.reach(lb1, 3306); !errors.Is(err, errDropped) {
			t.Errorf("lb1 → web1:3306: %v, want dropped", err)
		}
	})
	t.Run("listing equals the plan and parses", func(t *testing.T) {
		listing := l.run("ip", "netns", "exec", l.host, "nft", "list", "table", "inet", TableName)
		if listing != rs.String() {
			t.Errorf("nft list table inet fulcrum =\n%s\nwant the plan\n%s", listing, rs)
		}
		file := filepath.Join(t.TempDir(), "listing.nft")
		if err := os.WriteFile(file, []byte(listing), 0o644); err != nil {
			t.Fatal(err)
		}
		l.run("ip", "netns", "exec", l.host, "nft", "-c", "-f", file)
	})
	t.Run("nmap lists only the allowed ports", func(t *testing.T) {
		testenv.Program(t, "nmap")
		for _, src := range sources {
			want := rs.Ports(src, labHost)
			if got := l.nmap(src, ports); !slices.Equal(got, want) {
				t.Errorf("nmap from %s: open %v, want %v", src, got, want)
			}
		}
	})

	if err := inst.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	if ok, err := inst.Installed(); err != nil || ok {
		t.Errorf("after Remove: Installed() = %v, %v, want false", ok, err)
	}
	if out := l.run("ip", "netns", "exec", l.host, "nft", "list", "tables"); strings.Contains(out, TableName) {
		t.Errorf("after Remove: nft list tables = %q, want no %s", out, TableName)
	}
	if err := l.reach(labOutside, 9101); err != nil {
		t.Errorf("after Remove: 192.0.2.40 → :9101: %v, want accepted", err)
	}
	if err := inst.Remove(); err != nil {
		t.Errorf("Remove() of an absent table = %v, want nil", err)
	}
	if !rootHadTable && rootHasTable(t) {
		t.Errorf("the root namespace has a table inet %s after the test", TableName)
	}
}

// nmap runs a TCP connect scan of ports on the host from src and returns
// the open ones.
func (l *lab) nmap(src netip.Addr, ports []uint16) []uint16 {
	l.t.Helper()
	var list []string
	for _, p := range ports {
		list = append(list, fmt.Sprint(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.peer, "nmap", "-n", "-Pn", "-sT",
		"--max-retries", "1", "-S", src.String(), "-e", "fw0",
		"-p", strings.Join(list, ","), "-oG", "-", labHost.String()).Output()
	if err != nil {
		l.t.Fatalf("nmap: %v", err)
	}
	var open []uint16
	for _, line := range bytes.Split(out, []byte("\n")) {
		_, fields, ok := bytes.Cut(line, []byte("Ports: "))
		if !ok {
			continue
		}
		for _, f := range strings.Split(string(fields), ", ") {
			var port uint16
			var state string
			if n, _ := fmt.Sscanf(strings.ReplaceAll(f, "/", " "), "%d %s", &port, &state); n == 2 && state == "open" {
				open = append(open, port)
			}
		}
	}
	slices.Sort(open)
	return open
}

// TestNetnsListingEqualsPlan applies the ruleset of every role, one after
// the other in one namespace (each apply replacing the last), and checks
// that the kernel lists each exactly as planned: the netlink expressions
// and the nft text describe the same rules.
func TestNetnsListingEqualsPlan(t *testing.T) {
	testenv.Short(t)
	testenv.Root(t)
	testenv.Program(t, "ip", "nft")
	l := newLab(t)
	inst := Installer{NetNS: l.hostFD}
	restricted := threeMachines(t)
	for _, tc := range []struct {
		topo *Topology
		host string
	}{
		{defaultTopology(t), "lb1"}, {defaultTopology(t), "web1"}, {defaultTopology(t), "db1"},
		{defaultTopology(t), "db-manager"}, {restricted, "lb1"}, {restricted, "db3"}, {restricted, "lb2"},
		{ipv6Topology(t), "lb1"}, {ipv6Topology(t), "web2"}, {ipv6Topology(t), "db1"},
	} {
		rs, err := Plan(tc.topo, tc.host)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.Apply(rs); err != nil {
			t.Fatalf("%s: Apply() = %v", tc.host, err)
		}
		if got := l.run("ip", "netns", "exec", l.host, "nft", "list", "table", "inet", TableName); got != rs.String() {
			t.Errorf("%s: nft list table =\n%s\nwant the plan\n%s", tc.host, got, rs)
		}
	}
	if err := inst.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
}

// rootHasTable reports whether the root namespace has fulcrum's table; the
// tests only read it.
func rootHasTable(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	return strings.Contains(string(out), "inet "+TableName+"\n")
}
