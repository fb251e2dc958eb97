package edge

import (
	"net/netip"
	"testing"
)

func TestTrusted(t *testing.T) {
	tr, err := NewTrusted([]string{"10.0.0.0/8", "fd00::/8", "192.0.2.1", "fe80::/10"})
	if err != nil {
		t.Fatal(err)
	}
	contains := []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true}, {"::ffff:10.1.2.3", true}, {"fd12::1", true}, {"192.0.2.1", true},
		{"fe80::1%eth0", true}, {"192.0.2.2", false}, {"11.0.0.1", false}, {"2001:db8::1", false},
	}
	for _, tt := range contains {
		if got := tr.Contains(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	clientIP := []struct {
		name, peer, xff, want string
	}{
		{"untrusted peer ignores header", "198.51.100.1", "203.0.113.5", "198.51.100.1"},
		{"trusted peer, one hop", "10.0.0.1", "203.0.113.5", "203.0.113.5"},
		{"skips trusted hops from the right", "10.0.0.1", "203.0.113.5, 198.51.100.9, 10.0.0.7", "198.51.100.9"},
		{"spoofed left part ignored", "10.0.0.1", "1.2.3.4,203.0.113.5", "203.0.113.5"},
		{"ipv6 with brackets and port", "10.0.0.1", "[2001:db8::5]:4711", "2001:db8::5"},
		{"ipv4 with port", "10.0.0.1", "203.0.113.5:999", "203.0.113.5"},
		{"garbage stops at last good", "10.0.0.1", "203.0.113.5, garbage, 10.0.0.9", "10.0.0.9"},
		{"all trusted: leftmost", "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},
		{"empty header", "10.0.0.1", "", "10.0.0.1"},
		{"empty entries", "10.0.0.1", " , 203.0.113.5 ,", "203.0.113.5"},
	}
	for _, tt := range clientIP {
		t.Run(tt.name, func(t *testing.T) {
			got := tr.ClientIP(netip.MustParseAddr(tt.peer), []byte(tt.xff))
			if got.String() != tt.want {
				t.Errorf("ClientIP(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
	if _, err := NewTrusted([]string{"10.0.0.0/8", "bogus"}); err == nil {
		t.Error("NewTrusted(bogus) = nil error, want one")
	}
	var none *Trusted
	if none.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("nil Trusted contains 10.0.0.1, want nobody trusted")
	}
	peer, xff := netip.MustParseAddr("10.0.0.1"), []byte("203.0.113.5, 10.0.0.7")
	if n := testing.AllocsPerRun(100, func() { tr.ClientIP(peer, xff) }); n != 0 {
		t.Errorf("ClientIP allocates %v times, want 0", n)
	}
}
