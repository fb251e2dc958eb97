package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrNeverRepeats: no port is handed out twice, across networks
// and ranges, however the kernel picks them.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for i := range 300 {
		network := []string{"tcp", "udp"}[i%2]
		_, port, err := net.SplitHostPort(FreeAddr(t, network))
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %s handed out twice", port)
		}
		seen[port] = true
	}
	base := FreeRange(t, 5)
	for p := base; p < base+5; p++ {
		if seen[strconv.Itoa(p)] {
			t.Fatalf("range %d–%d holds port %d, handed out before", base, base+4, p)
		}
	}
}

// TestClaim: a port or range is claimed once; a range that overlaps a
// claimed port is refused whole, and claims nothing.
func TestClaim(t *testing.T) {
	const base = 70000 // outside real ports: no other test claims these
	if !claim(base, 1) {
		t.Fatal("first claim of a port refused")
	}
	if claim(base, 1) {
		t.Error("a port claimed twice")
	}
	if claim(base-2, 3) {
		t.Error("a range over a claimed port was claimed")
	}
	if !claim(base-2, 2) {
		t.Error("the free part of a refused range was left claimed")
	}
}
