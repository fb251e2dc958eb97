package config

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// TLS is a frontend's `tls` section: TLS termination. Exactly one source of
// certificates is given: cert and key, certificates, self_signed or acme.
//
//	tls: {cert: /path/cert.pem, key: /path/key.pem}
type TLS struct {
	// Cert and Key are PEM files: the certificate (chain, leaf first) and
	// its private key. Reloaded when they change on disk.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Certificates are several certificate/key pairs; the one whose names
	// match the client's SNI is served, the first when none matches.
	Certificates []CertKey `yaml:"certificates"`
	// SelfSigned issues a certificate for Names from a local CA that
	// fulcrum creates once in its state directory.
	SelfSigned bool `yaml:"self_signed"`
	// Names are the DNS names and IP addresses of a self-signed
	// certificate (default: localhost, 127.0.0.1, ::1).
	Names []string `yaml:"names"`
	// ACME obtains and renews certificates automatically.
	ACME *ACME `yaml:"acme"`
	// MinVersion is "1.2" or "1.3" (default 1.2). Older versions are never
	// offered.
	MinVersion string `yaml:"min_version"`
	// OCSPStapling staples the responder's answer when a certificate names
	// an OCSP responder (default true).
	OCSPStapling *bool `yaml:"ocsp_stapling"`
	// ReloadInterval is how often certificate files are checked for
	// changes (default 5s).
	ReloadInterval Duration `yaml:"reload_interval"`
}

// CertKey is one certificate and its key, both PEM files.
type CertKey struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ACME is automatic certificate management (RFC 8555).
type ACME struct {
	// Email is the account's contact address.
	Email string `yaml:"email"`
	// Directory is the ACME directory URL (default Let's Encrypt's
	// production directory).
	Directory string `yaml:"directory"`
	// CARoot is a PEM file of roots to trust for the ACME server's own
	// HTTPS (default: the system roots), e.g. a test CA's.
	CARoot string `yaml:"ca_root"`
	// Names are the DNS names to obtain certificates for.
	Names []string `yaml:"names"`
}

// DefaultACMEDirectory is used when acme.directory is not set.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// BackendTLS is a backend's `tls` section: TLS to its servers.
type BackendTLS struct {
	// Verify checks the server's certificate against CA (or the system
	// roots) and ServerName (default true). false encrypts without
	// authenticating the server.
	Verify *bool `yaml:"verify"`
	// CA is a PEM file of roots to verify servers with (default: the
	// system roots).
	CA string `yaml:"ca"`
	// ServerName is sent as SNI and verified in the certificate (default:
	// the host of each server's address).
	ServerName string `yaml:"server_name"`
	// Cert and Key are an optional client certificate (PEM files).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ACLRule allows or denies requests by client address, host and path. A
// rule matches when every criterion it sets matches (any listed value of
// that criterion); a rule that sets none matches everything.
type ACLRule struct {
	// Action is allow or deny.
	Action string `yaml:"action"`
	// CIDR lists client networks (IPv4 or IPv6); a bare address means one
	// host.
	CIDR []string `yaml:"cidr"`
	// Host lists request hosts, compared case-insensitively without the
	// port; "*.example.com" matches any subdomain of example.com.
	Host []string `yaml:"host"`
	// PathPrefix lists request path prefixes (http mode only).
	PathPrefix []string `yaml:"path_prefix"`
}

// RateLimit limits each client address, like HAProxy's stick tables.
type RateLimit struct {
	// Rate is the sustained requests per second per client (0: no request
	// rate limit).
	Rate float64 `yaml:"rate"`
	// Burst is how many requests a client may make at once (default: Rate
	// rounded up, at least 1).
	Burst int `yaml:"burst"`
	// MaxConnsPerClient caps concurrent connections per client (0: no
	// cap).
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// TableSize bounds the number of clients remembered (default 100000);
	// the least recently seen are forgotten first.
	TableSize int `yaml:"table_size"`
	// IPv6Prefix groups IPv6 clients by this prefix length, since one
	// host usually owns a whole /64 (default 64; 128: each address).
	IPv6Prefix int `yaml:"ipv6_prefix"`
}

func (t *TLS) setDefaults() {
	if t.SelfSigned && len(t.Names) == 0 {
		t.Names = []string{"localhost", "127.0.0.1", "::1"}
	}
	if t.ACME != nil && t.ACME.Directory == "" {
		t.ACME.Directory = DefaultACMEDirectory
	}
	def(&t.MinVersion, "1.2")
	if t.OCSPStapling == nil {
		t.OCSPStapling = ptr(true)
	}
	defDur(&t.ReloadInterval, 5*time.Second)
}

func (t *TLS) validate(p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	var sources []string
	if t.Cert != "" || t.Key != "" {
		sources = append(sources, "cert/key")
		if t.Cert == "" || t.Key == "" {
			add(errorf(p, "cert and key go together: cert %q, key %q", t.Cert, t.Key))
		}
	}
	if len(t.Certificates) > 0 {
		sources = append(sources, "certificates")
		for i, ck := range t.Certificates {
			if ck.Cert == "" || ck.Key == "" {
				add(errorf(fmt.Sprintf("%s.certificates[%d]", p, i), "cert and key are both required: cert %q, key %q", ck.Cert, ck.Key))
			}
		}
	}
	if t.SelfSigned {
		sources = append(sources, "self_signed")
	}
	if t.ACME != nil {
		sources = append(sources, "acme")
		ap := p + ".acme"
		if len(t.ACME.Names) == 0 {
			add(errorf(ap+".names", "at least one name is required"))
		}
		for i, n := range t.ACME.Names {
			switch {
			case strings.HasPrefix(n, "*."):
				// Wildcards need the DNS-01 challenge; fulcrum answers
				// TLS-ALPN-01 on its own listener (RFC 8737).
				add(errorf(fmt.Sprintf("%s.names[%d]", ap, i), "%q: wildcard names need DNS validation, which fulcrum does not do", n))
			case !validHostname(n):
				add(errorf(fmt.Sprintf("%s.names[%d]", ap, i), "%q: not a DNS name", n))
			}
		}
		if u, err := url.Parse(t.ACME.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
			add(errorf(ap+".directory", "%q: must be an https URL", t.ACME.Directory))
		}
		if t.ACME.Email != "" && !strings.Contains(t.ACME.Email, "@") {
			add(errorf(ap+".email", "%q: not an email address", t.ACME.Email))
		}
	}
	switch len(sources) {
	case 0:
		add(errorf(p, "no certificate: set cert and key, certificates, self_signed or acme"))
	case 1:
	default:
		add(errorf(p, "%s: choose one source of certificates", strings.Join(sources, ", ")))
	}
	if len(t.Names) > 0 && !t.SelfSigned {
		add(errorf(p+".names", "names are for self_signed certificates (acme has its own names)"))
	}
	for i, n := range t.Names {
		if _, err := netip.ParseAddr(n); err != nil && !validHostname(strings.TrimPrefix(n, "*.")) {
			add(errorf(fmt.Sprintf("%s.names[%d]", p, i), "%q: not a DNS name or IP address", n))
		}
	}
	if !oneOf(t.MinVersion, "1.2", "1.3") {
		add(errorf(p+".min_version", "%q: must be 1.2 or 1.3", t.MinVersion))
	}
	if t.ReloadInterval.D() < 100*time.Millisecond {
		add(errorf(p+".reload_interval", "%v: must be at least 100ms", t.ReloadInterval.D()))
	}
	return errs
}

func (t *BackendTLS) setDefaults() {
	if t.Verify == nil {
		t.Verify = ptr(true)
	}
}

func (t *BackendTLS) validate(p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if (t.Cert == "") != (t.Key == "") {
		add(errorf(p, "cert and key go together: cert %q, key %q", t.Cert, t.Key))
	}
	if t.ServerName != "" && !validHostname(t.ServerName) {
		if _, err := netip.ParseAddr(t.ServerName); err != nil {
			add(errorf(p+".server_name", "%q: not a DNS name or IP address", t.ServerName))
		}
	}
	if t.Verify != nil && !*t.Verify && (t.CA != "" || t.ServerName != "") {
		add(errorf(p+".verify", "false: ca and server_name are only used when verifying"))
	}
	return errs
}

func (r *RateLimit) setDefaults() {
	if r.Burst == 0 && r.Rate > 0 {
		r.Burst = int(math.Max(1, math.Ceil(r.Rate)))
	}
	if r.TableSize == 0 {
		r.TableSize = 100000
	}
	if r.IPv6Prefix == 0 {
		r.IPv6Prefix = 64
	}
}

// validateEdge checks a frontend's TLS-related and edge-protection keys.
func validateEdge(f *Frontend, p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if f.RedirectHTTPS {
		if f.TLS != nil {
			add(errorf(p+".redirect_https", "true: only for plain-HTTP frontends (this one has tls)"))
		}
		if f.Mode != "http" {
			add(errorf(p+".redirect_https", "true: needs mode http"))
		}
	}
	if f.HSTS != 0 {
		if f.HSTS < 0 {
			add(errorf(p+".hsts", "%v: must not be negative", f.HSTS.D()))
		}
		if f.TLS == nil {
			add(errorf(p+".hsts", "%v: only for frontends with tls", f.HSTS.D()))
		}
		if f.Mode != "http" {
			add(errorf(p+".hsts", "%v: needs mode http", f.HSTS.D()))
		}
	}
	for i, r := range f.ACL {
		rp := fmt.Sprintf("%s.acl[%d]", p, i)
		if !oneOf(r.Action, "allow", "deny") {
			add(errorf(rp+".action", "%q: must be allow or deny", r.Action))
		}
		for j, c := range r.CIDR {
			if _, err := ParsePrefix(c); err != nil {
				add(errorf(fmt.Sprintf("%s.cidr[%d]", rp, j), "%q: %v", c, err))
			}
		}
		if f.Mode != "http" && (len(r.Host) > 0 || len(r.PathPrefix) > 0) {
			add(errorf(rp, "host and path_prefix need mode http"))
		}
		for j, h := range r.Host {
			if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err != nil && !validHostname(strings.TrimPrefix(h, "*.")) {
				add(errorf(fmt.Sprintf("%s.host[%d]", rp, j), "%q: not a host name or IP address", h))
			}
		}
		for j, pp := range r.PathPrefix {
			if !strings.HasPrefix(pp, "/") {
				add(errorf(fmt.Sprintf("%s.path_prefix[%d]", rp, j), "%q: must start with /", pp))
			}
		}
	}
	if r := f.RateLimit; r != nil {
		// lb.go's setDefaults does not reach this section; fill it here,
		// before checking it.
		r.setDefaults()
		rp := p + ".rate_limit"
		if r.Rate < 0 || math.IsNaN(r.Rate) || math.IsInf(r.Rate, 0) {
			add(errorf(rp+".rate", "%v: must be a positive number of requests per second", r.Rate))
		}
		if r.Rate > 0 && r.Burst < 1 {
			add(errorf(rp+".burst", "%d: must be at least 1", r.Burst))
		}
		if r.Rate == 0 && r.Burst != 0 {
			add(errorf(rp+".burst", "%d: needs a rate", r.Burst))
		}
		if r.MaxConnsPerClient < 0 {
			add(errorf(rp+".max_conns_per_client", "%d: must be 0 or more", r.MaxConnsPerClient))
		}
		if r.Rate == 0 && r.MaxConnsPerClient == 0 {
			add(errorf(rp, "set rate, max_conns_per_client or both"))
		}
		if r.TableSize < 1 || r.TableSize > 10_000_000 {
			add(errorf(rp+".table_size", "%d: must be 1..10000000", r.TableSize))
		}
		if r.IPv6Prefix < 1 || r.IPv6Prefix > 128 {
			add(errorf(rp+".ipv6_prefix", "%d: must be 1..128", r.IPv6Prefix))
		}
	}
	if f.MaxConns < 0 {
		add(errorf(p+".max_conns", "%d: must be 0 or more", f.MaxConns))
	}
	for i, c := range f.TrustedProxies {
		if _, err := ParsePrefix(c); err != nil {
			add(errorf(fmt.Sprintf("%s.trusted_proxies[%d]", p, i), "%q: %v", c, err))
		}
	}
	if f.AcceptProxy && len(f.TrustedProxies) == 0 {
		add(errorf(p+".accept_proxy", "true: needs trusted_proxies (the peers allowed to send PROXY headers)"))
	}
	return errs
}

// ParsePrefix parses a CIDR ("192.0.2.0/24", "2001:db8::/32") or a bare
// address (one host). Host bits are cleared: "192.0.2.1/24" is 192.0.2.0/24.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an address or CIDR")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zones are not allowed")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an address or CIDR")
	}
	if pf.Addr().Is4In6() && pf.Bits() >= 96 {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
	}
	return pf.Masked(), nil
}
