package netns_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/netns"
	"fulcrum/internal/testenv"
)

// TestCreateDialRemove builds two hosts, checks that each has its address,
// that one reaches the other (a refused connection, not silence), that a
// second run refuses to take over hosts in use, and that Remove leaves
// nothing.
func TestCreateDialRemove(t *testing.T) {
	testenv.Short(t)
	testenv.Root(t)
	testenv.Program(t, "ip")
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	prefix := "ft" + hex.EncodeToString(b) + "-"
	a, c := netip.MustParseAddr("198.51.100.31"), netip.MustParseAddr("198.51.100.32")
	n, err := netns.Create(prefix, netip.MustParsePrefix("198.51.100.0/24"), []netns.Host{{Name: "a", Addr: a}, {Name: "c", Addr: c}})
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			n.Remove()
		}
	})
	out, err := n.Command("a", "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "198.51.100.31/24") {
		t.Errorf("host a's eth0: %v: %s, want 198.51.100.31/24", err, out)
	}
	if got := n.Addr("c"); got != c {
		t.Errorf("Addr(c) = %v, want %v", got, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := n.Dialer(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if _, err := d.DialContext(dctx, "tcp", "198.51.100.31:9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("c → a:9 = %v, want connection refused (a answers, nothing listens)", err)
	}
	// A second Create of the same hosts while they exist but run nothing
	// replaces them (an earlier run that died); with a process inside, it
	// refuses.
	sleep := n.Command("a", "sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	// ip(8) enters the namespace only after it has started: wait for that.
	pid := strconv.Itoa(sleep.Process.Pid)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "pids", n.NS("a")).Output()
		if slices.Contains(strings.Fields(string(out)), pid) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("sleep (pid %s) never showed in namespace %s", pid, n.NS("a"))
		}
	}
	_, err = netns.Create(prefix, netip.MustParsePrefix("198.51.100.0/24"), []netns.Host{{Name: "a", Addr: a}, {Name: "c", Addr: c}})
	if err == nil || !strings.Contains(err.Error(), "processes") {
		t.Errorf("Create() over a running host = %v, want a refusal naming the processes", err)
	}
	sleep.Process.Kill()
	sleep.Wait()
	cancel()
	if err := n.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	removed = true
	for _, ns := range []string{"a", "c", "sw"} {
		if _, err := os.Stat(filepath.Join(netns.Dir, prefix+ns)); err == nil {
			t.Errorf("namespace %s%s still exists after Remove", prefix, ns)
		}
	}
}
