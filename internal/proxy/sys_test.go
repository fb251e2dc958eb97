package proxy

import (
	"net/netip"
	"syscall"
	"testing"
)

// TestSockaddr: an address written for the kernel reads back the same,
// its port in network byte order, and an IPv4-mapped IPv6 address as IPv4.
func TestSockaddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:80", "127.0.0.1:80"},
		{"192.0.2.7:4660", "192.0.2.7:4660"}, // 0x1234: both bytes matter
		{"[::1]:65535", "[::1]:65535"},
		{"[2001:db8::1]:1", "[2001:db8::1]:1"},
		{"[::ffff:198.51.100.9]:443", "198.51.100.9:443"},
	} {
		var sa syscall.RawSockaddrAny
		n := putSockaddr(&sa, netip.MustParseAddrPort(tc.in))
		a := sockaddrTCP(&sa)
		if !a.IsValid() || a.String() != tc.want {
			t.Errorf("%s: read back as %v, want %s", tc.in, a, tc.want)
			continue
		}
		want := uintptr(syscall.SizeofSockaddrInet6)
		if a.Addr().Is4() {
			want = syscall.SizeofSockaddrInet4
		}
		if n != want {
			t.Errorf("%s: length %d, want %d", tc.in, n, want)
		}
	}
	var sa syscall.RawSockaddrAny
	sa.Addr.Family = syscall.AF_UNIX
	if a := sockaddrTCP(&sa); a.IsValid() {
		t.Errorf("a Unix socket address read as %v, want none", a)
	}
}
