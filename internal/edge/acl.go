package edge

import (
	"fmt"
	"net/netip"
	"strings"

	"fulcrum/internal/config"
)

// ACL is a frontend's ordered access rules: the first rule that matches a
// request decides; when none matches the request is allowed.
type ACL struct {
	rules    []aclRule
	anyPaths bool // some rule tests the path
}

type aclRule struct {
	deny     bool
	prefixes []netip.Prefix
	hosts    []string // lower case, without brackets
	suffixes []string // from "*.example.com": ".example.com"
	paths    []string
}

// NewACL compiles rules (validated by package config; errors here name the
// rule and value anyway).
func NewACL(rules []config.ACLRule) (*ACL, error) {
	a := &ACL{rules: make([]aclRule, 0, len(rules))}
	for i, r := range rules {
		var cr aclRule
		switch r.Action {
		case "allow":
		case "deny":
			cr.deny = true
		default:
			return nil, fmt.Errorf("acl[%d]: action %q: must be allow or deny", i, r.Action)
		}
		for _, c := range r.CIDR {
			p, err := config.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("acl[%d]: cidr %q: %w", i, c, err)
			}
			cr.prefixes = append(cr.prefixes, p)
		}
		for _, h := range r.Host {
			h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
			if s, ok := strings.CutPrefix(h, "*."); ok {
				cr.suffixes = append(cr.suffixes, "."+s)
			} else {
				cr.hosts = append(cr.hosts, h)
			}
		}
		for _, p := range r.PathPrefix {
			if !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("acl[%d]: path_prefix %q: must start with /", i, p)
			}
			cr.paths = append(cr.paths, p)
			a.anyPaths = true
		}
		a.rules = append(a.rules, cr)
	}
	return a, nil
}

// Allow reports whether a request from ip for host and path may pass. host
// is the Host header or :authority (a port and the brackets of an IPv6
// literal are ignored, case does not matter); path is the request target's
// path (a query is ignored). Percent-encoded bytes in path are decoded
// before comparing, so /%61dmin matches a rule for /admin.
//
// A path a backend could read differently from its bytes, one with a "."
// or ".." segment, an empty segment ("//") or a backslash, is judged
// conservatively: deny rules with a path_prefix match it and allow rules
// with a path_prefix do not, so /public/../admin can neither slip past a
// deny of /admin nor be allowed as /public. A nil ACL allows everything.
func (a *ACL) Allow(ip netip.Addr, host, path []byte) bool {
	if a == nil {
		return true
	}
	ip = ip.Unmap().WithZone("") // Prefix.Contains is false for any zoned address
	host = hostOnly(host)
	ambiguous := a.anyPaths && ambiguousPath(path)
	for i := range a.rules {
		r := &a.rules[i]
		if r.matchIP(ip) && r.matchHost(host) && r.matchPath(path, ambiguous) {
			return !r.deny
		}
	}
	return true
}

// AllowConn decides for a connection before any request is read (tcp mode,
// or an early check in http mode). Only rules that test nothing but the
// address decide; at the first rule that also tests host or path (and whose
// addresses, if any, match) the answer depends on the request, so the
// connection is allowed and Allow decides per request.
func (a *ACL) AllowConn(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	ip = ip.Unmap().WithZone("") // Prefix.Contains is false for any zoned address
	for i := range a.rules {
		r := &a.rules[i]
		if !r.matchIP(ip) {
			continue
		}
		if len(r.hosts) > 0 || len(r.suffixes) > 0 || len(r.paths) > 0 {
			return true
		}
		return !r.deny
	}
	return true
}

func (r *aclRule) matchIP(ip netip.Addr) bool {
	if len(r.prefixes) == 0 {
		return true
	}
	for _, p := range r.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (r *aclRule) matchHost(host []byte) bool {
	if len(r.hosts) == 0 && len(r.suffixes) == 0 {
		return true
	}
	for _, h := range r.hosts {
		if equalFold(host, h) {
			return true
		}
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && equalFold(host[len(host)-len(s):], s) {
			return true
		}
	}
	return false
}

func (r *aclRule) matchPath(path []byte, ambiguous bool) bool {
	if len(r.paths) == 0 {
		return true
	}
	if ambiguous {
		return r.deny
	}
	for _, p := range r.paths {
		if hasPathPrefix(path, p) {
			return true
		}
	}
	return false
}

// hostOnly strips a port, the brackets of an IPv6 literal and one trailing
// dot (RFC 9110 section 7.2: host [ ":" port ]).
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				return h[1:i]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			h = h[:i]
			break
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
}

// equalFold compares b with the lower-case ASCII string s, ignoring the
// case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasPathPrefix reports whether path starts with prefix, decoding %XX in
// path as it goes and stopping at a query.
func hasPathPrefix(path []byte, prefix string) bool {
	i := 0
	for j := 0; j < len(prefix); j++ {
		if i >= len(path) || path[i] == '?' {
			return false
		}
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			i += 3
		} else {
			i++
		}
		if c != prefix[j] {
			return false
		}
	}
	return true
}

// ambiguousPath reports whether path (before any query, %XX decoded) has
// a dot segment, an empty segment or a backslash (RFC 3986 section 5.2.4;
// some servers treat a backslash as a slash).
func ambiguousPath(path []byte) bool {
	seg := 0 // dots in the current segment so far; -1: something else too
	for i := 0; i < len(path) && path[i] != '?'; {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			i += 3
		} else {
			i++
		}
		switch {
		case c == '\\':
			return true
		case c == '/':
			if i > 1 && (seg == 0 || seg == 1 || seg == 2) {
				return true
			}
			seg = 0
		case c == '.' && seg >= 0:
			seg++
		default:
			seg = -1
		}
	}
	return seg == 1 || seg == 2
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
