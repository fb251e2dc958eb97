package edge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/crypto/ocsp"

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

// FuzzParseIssued checks that the record of the local CA's certificates
// never panics on any file, and that what it reads is written back and
// read again unchanged. Seeds are in testdata/fuzz/FuzzParseIssued.
func FuzzParseIssued(f *testing.F) {
	f.Add([]byte("# comment\n1f 2026-08-30T00:00:00Z localhost,127.0.0.1\n"))
	f.Add([]byte("ABCDEF 2026-08-30T00:00:00+02:00\n-5 2026-08-30T00:00:00Z\n0 x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := parseIssued(data)
		var b []byte
		for _, r := range recs {
			b = appendIssued(b, r)
		}
		again := parseIssued(b)
		if len(again) != len(recs) {
			t.Fatalf("round trip: %d records, want %d\n%q", len(again), len(recs), b)
		}
		for i := range recs {
			if again[i].serial.Cmp(recs[i].serial) != 0 || !again[i].notAfter.Equal(recs[i].notAfter) || again[i].names != recs[i].names {
				t.Fatalf("round trip: record %d = %+v, want %+v", i, again[i], recs[i])
			}
		}
	})
}

// FuzzLocalOCSP checks that the local CA's responder answers any request
// body with an OCSP response that parses: a signed answer about the serial
// asked, or an error status. Seeds are in testdata/fuzz/FuzzLocalOCSP.
func FuzzLocalOCSP(f *testing.F) {
	dir := f.TempDir()
	_, certs, err := ServerTLS(&config.TLS{SelfSigned: true}, dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	c, _ := certs.GetCertificate(&tls.ClientHelloInfo{})
	ca, _, err := loadLocalCA(dir)
	if err != nil {
		f.Fatal(err)
	}
	good, err := ocsp.CreateRequest(c.Leaf, ca, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	o := NewLocalOCSP(dir, nil)
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, _ := o.respond(der)
		r, err := ocsp.ParseResponse(resp, ca)
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return
		}
		if err != nil {
			t.Fatalf("answer to %x does not parse: %v", der, err)
		}
		req, qerr := ocsp.ParseRequest(der)
		if qerr != nil || r.SerialNumber.Cmp(req.SerialNumber) != 0 {
			t.Fatalf("signed answer about %x to request %x (%v)", r.SerialNumber, der, qerr)
		}
	})
}
