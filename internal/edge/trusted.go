package edge

import (
	"fmt"
	"net/netip"
	"unsafe"

	"fulcrum/internal/config"
)

// Trusted is the set of peers (proxies, load balancers) whose
// X-Forwarded-For and PROXY protocol headers are believed. A nil Trusted
// trusts nobody.
type Trusted struct {
	prefixes []netip.Prefix
}

// NewTrusted parses CIDRs or bare addresses.
func NewTrusted(cidrs []string) (*Trusted, error) {
	t := &Trusted{}
	for _, c := range cidrs {
		p, err := config.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", c, err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// Contains reports whether ip is a trusted peer.
func (t *Trusted) Contains(ip netip.Addr) bool {
	if t == nil {
		return false
	}
	ip = ip.Unmap().WithZone("") // Prefix.Contains is false for any zoned address
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientIP is the address of the client behind peer. When peer is not
// trusted, or xff (the X-Forwarded-For header's value, all of its lines
// joined with commas) is empty, the client is peer itself. Otherwise
// X-Forwarded-For is read from the right, skipping trusted proxies: the
// first untrusted address is the client. A malformed entry stops the walk
// at the last good address, since anything to its left was written by
// someone untrusted.
func (t *Trusted) ClientIP(peer netip.Addr, xff []byte) netip.Addr {
	if !t.Contains(peer) {
		return peer
	}
	client := peer
	end := len(xff)
	for end > 0 {
		start := end
		for start > 0 && xff[start-1] != ',' {
			start--
		}
		tok := trimSpace(xff[start:end])
		if len(tok) > 0 {
			a, ok := parseForwarded(tok)
			if !ok {
				return client
			}
			client = a
			if !t.Contains(a) {
				return a
			}
		}
		end = start - 1
	}
	return client
}

// parseForwarded parses "192.0.2.1", "2001:db8::1", "192.0.2.1:1234" or
// "[2001:db8::1]:1234".
func parseForwarded(b []byte) (netip.Addr, bool) {
	// The string does not outlive this call: netip copies a zone, and the
	// errors that could refer to it are dropped here.
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
