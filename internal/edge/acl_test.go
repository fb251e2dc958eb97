package edge

import (
	"net/netip"
	"testing"

	"fulcrum/internal/config"
)

func TestACLAllow(t *testing.T) {
	acl, err := NewACL([]config.ACLRule{
		{Action: "deny", CIDR: []string{"203.0.113.0/24", "2001:db8::/32"}},
		{Action: "allow", Host: []string{"api.example.com"}, PathPrefix: []string{"/v1"}},
		{Action: "deny", Host: []string{"api.example.com"}},
		{Action: "deny", PathPrefix: []string{"/admin"}, CIDR: []string{"0.0.0.0/0", "::/0"}},
		{Action: "allow", CIDR: []string{"192.0.2.10"}, Host: []string{"*.internal.example"}},
		{Action: "deny", Host: []string{"*.internal.example", "[2001:db8::1]"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ip         string
		host, path string
		want       bool
	}{
		{"denied network v4", "203.0.113.9", "www.example.com", "/", false},
		{"denied network v4-mapped", "::ffff:203.0.113.9", "www.example.com", "/", false},
		{"denied network v6", "2001:db8:1::5", "www.example.com", "/", false},
		{"other v6", "2001:db9::5", "www.example.com", "/", true},
		{"zone does not escape a rule", "fe80::1%eth0", "www.example.com", "/admin", false},
		{"api v1", "198.51.100.1", "api.example.com", "/v1/users", true},
		{"api v1 with port and case", "198.51.100.1", "API.Example.COM:8443", "/v1/users", true},
		{"api trailing dot", "198.51.100.1", "api.example.com.", "/v1", true},
		{"api other path", "198.51.100.1", "api.example.com", "/v2/users", false},
		{"api path with query", "198.51.100.1", "api.example.com", "/v?1", false},
		{"admin denied", "198.51.100.1", "www.example.com", "/admin/x", false},
		{"admin percent-encoded", "198.51.100.1", "www.example.com", "/%61dmin", false},
		{"admin prefix case differs", "198.51.100.1", "www.example.com", "/Admin", true},
		{"admin v6", "2001:db9::1", "www.example.com", "/admin", false},
		{"wildcard allowed client", "192.0.2.10", "db.internal.example", "/", true},
		{"wildcard other client", "192.0.2.11", "db.internal.example", "/", false},
		{"wildcard does not match apex", "192.0.2.11", "internal.example", "/", true},
		{"ipv6 literal host with port", "192.0.2.11", "[2001:DB8::1]:443", "/", false},
		{"no rule matches", "192.0.2.11", "www.example.com", "/", true},
		{"empty host", "192.0.2.11", "", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			if got := acl.Allow(ip, []byte(tt.host), []byte(tt.path)); got != tt.want {
				t.Errorf("Allow(%s, %q, %q) = %v, want %v", tt.ip, tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestACLAmbiguousPaths(t *testing.T) {
	acl, err := NewACL([]config.ACLRule{
		{Action: "deny", PathPrefix: []string{"/admin"}},
		{Action: "allow", PathPrefix: []string{"/public"}},
		{Action: "deny"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		path string
		want bool
	}{
		{"/public/a.css", true},
		{"/public/", true},
		{"/public/a..b/c", true},
		{"/public/...", true},
		{"/public?x=/../", true},
		{"/admin", false},
		{"/private", false},
		{"/public/../admin", false},
		{"/public/%2e%2E/admin", false},
		{"/public/./x", false},
		{"/public/..", false},
		{"/public//x", false},
		{"/public\\..\\admin", false},
		{"/public%5cx", false},
		{"//admin", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := acl.Allow(ip, []byte("www.example.com"), []byte(tt.path)); got != tt.want {
				t.Errorf("Allow(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestACLAllowConn(t *testing.T) {
	tests := []struct {
		name  string
		rules []config.ACLRule
		ip    string
		want  bool
	}{
		{"deny cidr", []config.ACLRule{{Action: "deny", CIDR: []string{"203.0.113.0/24"}}}, "203.0.113.1", false},
		{"deny cidr v6", []config.ACLRule{{Action: "deny", CIDR: []string{"2001:db8::/32"}}}, "2001:db8::1", false},
		{"outside", []config.ACLRule{{Action: "deny", CIDR: []string{"203.0.113.0/24"}}}, "192.0.2.1", true},
		{"allow list then deny all", []config.ACLRule{
			{Action: "allow", CIDR: []string{"192.0.2.0/24"}},
			{Action: "deny"},
		}, "198.51.100.1", false},
		{"allow list member", []config.ACLRule{
			{Action: "allow", CIDR: []string{"192.0.2.0/24"}},
			{Action: "deny"},
		}, "192.0.2.200", true},
		{"host rule first leaves it to the request", []config.ACLRule{
			{Action: "allow", Host: []string{"api.example.com"}},
			{Action: "deny"},
		}, "198.51.100.1", true},
		{"host rule for other clients is skipped", []config.ACLRule{
			{Action: "allow", CIDR: []string{"192.0.2.0/24"}, Host: []string{"api.example.com"}},
			{Action: "deny"},
		}, "198.51.100.1", false},
		{"no rules", nil, "198.51.100.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acl, err := NewACL(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if got := acl.AllowConn(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("AllowConn(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestACLErrorsAndNil(t *testing.T) {
	for _, r := range []config.ACLRule{
		{Action: "drop"},
		{Action: "deny", CIDR: []string{"10.0.0.0/40"}},
		{Action: "deny", PathPrefix: []string{"admin"}},
	} {
		if _, err := NewACL([]config.ACLRule{r}); err == nil {
			t.Errorf("NewACL(%+v) = nil error, want one", r)
		}
	}
	var acl *ACL
	if !acl.Allow(netip.MustParseAddr("192.0.2.1"), nil, nil) || !acl.AllowConn(netip.MustParseAddr("192.0.2.1")) {
		t.Error("nil ACL denied, want allow")
	}
}

func TestACLAllocations(t *testing.T) {
	acl, err := NewACL([]config.ACLRule{
		{Action: "deny", CIDR: []string{"203.0.113.0/24", "2001:db8::/32"}},
		{Action: "allow", Host: []string{"api.example.com", "*.example.org"}, PathPrefix: []string{"/v1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("2001:db9::1")
	host, path := []byte("Www.Example.ORG:443"), []byte("/v1/%41")
	if n := testing.AllocsPerRun(100, func() { acl.Allow(ip, host, path) }); n != 0 {
		t.Errorf("Allow allocates %v times, want 0", n)
	}
}

func BenchmarkACLAllow(b *testing.B) {
	acl, _ := NewACL([]config.ACLRule{
		{Action: "deny", CIDR: []string{"203.0.113.0/24", "2001:db8::/32"}},
		{Action: "allow", Host: []string{"api.example.com"}, PathPrefix: []string{"/v1"}},
		{Action: "deny", PathPrefix: []string{"/admin"}},
	})
	ip := netip.MustParseAddr("198.51.100.7")
	host, path := []byte("api.example.com:443"), []byte("/v1/users/42")
	b.ReportAllocs()
	for b.Loop() {
		acl.Allow(ip, host, path)
	}
}
