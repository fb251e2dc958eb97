package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"fulcrum/internal/netns"
)

var hostsSeq atomic.Int32

// Hosts builds one network namespace per name on a bridge (internal/netns),
// at 192.0.2.11, .12, … (TEST-NET-1) in the order given, under a prefix of
// the test's own, and removes them when the test ends (after the test's
// later cleanups, which stop what runs in them). It needs root and ip(8);
// like every integration test it is skipped with -short.
func Hosts(t testing.TB, names ...string) *netns.Net {
	t.Helper()
	Short(t)
	Root(t)
	Program(t, "ip")
	var hs []netns.Host
	for i, name := range names {
		hs = append(hs, netns.Host{Name: name, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})})
	}
	n, err := netns.Create(fmt.Sprintf("ft%d-%d-", os.Getpid(), hostsSeq.Add(1)), netip.MustParsePrefix("192.0.2.0/24"), hs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Remove(); err != nil {
			t.Errorf("removing the test's hosts: %v", err)
		}
	})
	return n
}
