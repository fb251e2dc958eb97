package edge

import (
	"bytes"
	"net/netip"
	"testing"

	"fulcrum/internal/config"
)

// FuzzACLAllow checks that host and path parsing never panics, that host
// case never matters, and that a deny rule for /admin is never passed by a
// path that decodes to /admin. Seeds are in testdata/fuzz/FuzzACLAllow.
func FuzzACLAllow(f *testing.F) {
	f.Add([]byte("API.example.com:8443"), []byte("/v1/x"))
	f.Add([]byte("[2001:db8::1]:443"), []byte("/%61dmin"))
	f.Add([]byte("a.internal.example."), []byte("/public/%2e%2e/admin"))
	acl, err := NewACL([]config.ACLRule{
		{Action: "deny", PathPrefix: []string{"/admin"}},
		{Action: "allow", Host: []string{"api.example.com", "*.internal.example", "2001:db8::1"}},
		{Action: "deny"},
	})
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, host, path []byte) {
		got := acl.Allow(ip, host, path)
		if upper := bytes.ToUpper(host); acl.Allow(ip, upper, path) != got {
			t.Fatalf("Allow(%q) != Allow(%q)", host, upper)
		}
		if got && hasPathPrefix(path, "/admin") {
			t.Fatalf("Allow(%q, %q) = true past a deny of /admin", host, path)
		}
	})
}

// FuzzClientIP checks that X-Forwarded-For parsing never panics and only
// ever returns the peer or an address written in the header.
func FuzzClientIP(f *testing.F) {
	f.Add([]byte("203.0.113.5, 10.0.0.7"))
	f.Add([]byte("[2001:db8::5]:4711,garbage, 10.0.0.9"))
	f.Add([]byte(" , ,"))
	tr, err := NewTrusted([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, xff []byte) {
		got := tr.ClientIP(peer, xff)
		if got == peer {
			return
		}
		for _, part := range bytes.Split(xff, []byte(",")) {
			if a, ok := parseForwarded(trimSpace(part)); ok && a == got {
				return
			}
		}
		t.Fatalf("ClientIP(%q) = %v, not the peer nor in the header", xff, got)
	})
}
