package config

import (
	"strings"
	"testing"
	"time"
)

// edgeExample is the promise: TLS, ACLs, rate limits, trusted
// proxies and TLS to backends, written as a user would.
const edgeExample = `frontends:
  - name: www
    bind: ["127.0.0.1:8443"]
    default_backend: web
    tls: {cert: /path/cert.pem, key: /path/key.pem}
    hsts: 8760h
    acl:
      - {action: deny, cidr: [203.0.113.0/24, "2001:db8::/32"]}
      - {action: allow, host: [api.example.com], path_prefix: [/v1]}
    rate_limit: {rate: 20, burst: 40, max_conns_per_client: 50, table_size: 100000}
    max_conns: 10000
    trusted_proxies: [10.0.0.0/8, "fd00::/8"]
    accept_proxy: true
  - name: plain
    bind: ["127.0.0.1:8080"]
    default_backend: web
    redirect_https: true
  - name: local
    bind: ["127.0.0.1:9443"]
    default_backend: web
    tls: {self_signed: true}
  - name: auto
    bind: ["127.0.0.1:10443"]
    default_backend: web
    tls:
      acme: {email: ops@example.com, directory: "https://127.0.0.1:14000/dir", ca_root: /path/pebble.pem, names: [www.example.com]}
  - name: sni
    bind: ["127.0.0.1:11443"]
    default_backend: web
    tls:
      certificates:
        - {cert: /a.pem, key: /a-key.pem}
        - {cert: /b.pem, key: /b-key.pem}
backends:
  - name: web
    send_proxy: v2
    tls: {verify: true, ca: /path/ca.pem, server_name: web.internal, cert: /c.pem, key: /k.pem}
    servers: [{name: web1, address: "127.0.0.1:9101"}]
`

func TestLoadLBEdgeExample(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(edgeExample))
	if err != nil {
		t.Fatalf("ParseLB: %v", err)
	}
	f := c.Frontends[0]
	if f.TLS.Cert != "/path/cert.pem" || f.TLS.Key != "/path/key.pem" {
		t.Errorf("tls = %+v, want cert /path/cert.pem key /path/key.pem", f.TLS)
	}
	if f.TLS.MinVersion != "1.2" || !*f.TLS.OCSPStapling || f.TLS.ReloadInterval.D() != 5*time.Second {
		t.Errorf("tls defaults = min %s ocsp %v reload %v, want 1.2 true 5s", f.TLS.MinVersion, *f.TLS.OCSPStapling, f.TLS.ReloadInterval.D())
	}
	if len(f.ACL) != 2 || f.ACL[0].CIDR[1] != "2001:db8::/32" || f.ACL[1].PathPrefix[0] != "/v1" {
		t.Errorf("acl = %+v", f.ACL)
	}
	if r := f.RateLimit; r.Rate != 20 || r.Burst != 40 || r.MaxConnsPerClient != 50 || r.TableSize != 100000 || r.IPv6Prefix != 64 {
		t.Errorf("rate_limit = %+v, want rate 20 burst 40 conns 50 table 100000 ipv6 /64", r)
	}
	if got := c.Frontends[2].TLS.Names; strings.Join(got, ",") != "localhost,127.0.0.1,::1" {
		t.Errorf("self_signed names = %v, want the loopback names", got)
	}
	if got := c.Frontends[3].TLS.ACME.Names; len(got) != 1 {
		t.Errorf("acme names = %v", got)
	}
	if b := c.Backends[0].TLS; !*b.Verify || b.ServerName != "web.internal" || b.CA != "/path/ca.pem" {
		t.Errorf("backend tls = %+v", b)
	}
}

func TestEdgeDefaults(t *testing.T) {
	c, err := ParseLB("lb.yaml", []byte(`
frontends: [{name: f, bind: ["127.0.0.1:1"], default_backend: b, rate_limit: {rate: 2.5}}]
backends: [{name: b, tls: {}, servers: [{name: s, address: "127.0.0.1:2"}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Frontends[0].RateLimit; r.Burst != 3 || r.TableSize != 100000 {
		t.Errorf("rate_limit defaults = burst %d table %d, want 3 100000", r.Burst, r.TableSize)
	}
	if v := c.Backends[0].TLS.Verify; v == nil || !*v {
		t.Errorf("backend tls verify default = %v, want true", v)
	}
}

func TestEdgeErrors(t *testing.T) {
	fe := func(extra string) string {
		return "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\n" + extra +
			"backends:\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n"
	}
	be := func(tls string) string {
		return "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\n" +
			"backends:\n  - name: web\n    servers: [{name: s, address: \"127.0.0.1:1\"}]\n    tls: " + tls + "\n"
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"tls without key", fe("    tls: {cert: /c.pem}\n"), []string{"lb.yaml:5:", "frontends[0].tls", "cert and key go together", `"/c.pem"`}},
		{"tls empty", fe("    tls: {}\n"), []string{"frontends[0].tls", "no certificate"}},
		{"tls two sources", fe("    tls: {cert: /c, key: /k, self_signed: true}\n"), []string{"frontends[0].tls", "cert/key, self_signed", "choose one"}},
		{"tls bad version", fe("    tls: {self_signed: true, min_version: \"1.1\"}\n"), []string{"frontends[0].tls.min_version", `"1.1"`, "1.2 or 1.3"}},
		{"tls bad name", fe("    tls: {self_signed: true, names: [\"not a name\"]}\n"), []string{"frontends[0].tls.names[0]", `"not a name"`}},
		{"names without self_signed", fe("    tls: {cert: /c, key: /k, names: [a.example]}\n"), []string{"frontends[0].tls.names", "self_signed"}},
		{"certificates entry", fe("    tls: {certificates: [{cert: /c}]}\n"), []string{"frontends[0].tls.certificates[0]", "both required"}},
		{"acme no names", fe("    tls: {acme: {email: a@b.example}}\n"), []string{"frontends[0].tls.acme.names", "at least one"}},
		{"acme http", fe("    tls: {acme: {names: [a.example], directory: \"http://ca.example/dir\"}}\n"), []string{"frontends[0].tls.acme.directory", "http://ca.example/dir", "https"}},
		{"acme wildcard", fe("    tls: {acme: {names: [\"*.a.example\"]}}\n"), []string{"frontends[0].tls.acme.names[0]", `"*.a.example"`, "wildcard"}},
		{"acme email", fe("    tls: {acme: {names: [a.example], email: nobody}}\n"), []string{"frontends[0].tls.acme.email", `"nobody"`}},
		{"unknown tls key", fe("    tls: {cert: /c, key: /k, ciphers: all}\n"), []string{"lb.yaml:5:", "ciphers", "unknown key"}},
		{"redirect with tls", fe("    tls: {self_signed: true}\n    redirect_https: true\n"), []string{"lb.yaml:6:", "frontends[0].redirect_https", "plain-HTTP"}},
		{"hsts without tls", fe("    hsts: 24h\n"), []string{"lb.yaml:5:", "frontends[0].hsts", "24h0m0s", "tls"}},
		{"acl action", fe("    acl: [{action: drop}]\n"), []string{"frontends[0].acl[0].action", `"drop"`, "allow or deny"}},
		{"acl cidr", fe("    acl: [{action: deny, cidr: [10.0.0.0/33]}]\n"), []string{"frontends[0].acl[0].cidr[0]", `"10.0.0.0/33"`}},
		{"acl cidr v6", fe("    acl: [{action: deny, cidr: [\"2001:db8::/129\"]}]\n"), []string{"frontends[0].acl[0].cidr[0]", `"2001:db8::/129"`}},
		{"acl path", fe("    acl: [{action: deny, path_prefix: [admin]}]\n"), []string{"frontends[0].acl[0].path_prefix[0]", `"admin"`, "start with /"}},
		{"acl host", fe("    acl: [{action: deny, host: [\"bad host\"]}]\n"), []string{"frontends[0].acl[0].host[0]", `"bad host"`}},
		{"rate zero", fe("    rate_limit: {rate: 0}\n"), []string{"frontends[0].rate_limit", "set rate, max_conns_per_client"}},
		{"rate negative", fe("    rate_limit: {rate: -1}\n"), []string{"frontends[0].rate_limit.rate", "-1"}},
		{"burst negative", fe("    rate_limit: {rate: 5, burst: -2}\n"), []string{"frontends[0].rate_limit.burst", "-2", "at least 1"}},
		{"conns negative", fe("    rate_limit: {max_conns_per_client: -1}\n"), []string{"frontends[0].rate_limit.max_conns_per_client", "-1"}},
		{"table size", fe("    rate_limit: {rate: 1, table_size: -5}\n"), []string{"frontends[0].rate_limit.table_size", "-5"}},
		{"max_conns", fe("    max_conns: -1\n"), []string{"frontends[0].max_conns", "-1"}},
		{"trusted", fe("    trusted_proxies: [10.0.0.0/8, nope]\n"), []string{"frontends[0].trusted_proxies[1]", `"nope"`}},
		{"accept_proxy alone", fe("    accept_proxy: true\n"), []string{"lb.yaml:5:", "frontends[0].accept_proxy", "trusted_proxies"}},
		{"backend tls half pair", be("{cert: /c.pem}"), []string{"backends[0].tls", "cert and key go together"}},
		{"backend tls server_name", be("{server_name: \"a b\"}"), []string{"backends[0].tls.server_name", `"a b"`}},
		{"backend tls verify off with ca", be("{verify: false, ca: /ca.pem}"), []string{"backends[0].tls.verify", "only used when verifying"}},
		{"send_proxy", be("{}\n    send_proxy: v3"), []string{"backends[0].send_proxy", `"v3"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLB("lb.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseLB() = nil error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseLB() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEdgeTCPModeRejectsHTTPRules(t *testing.T) {
	_, err := ParseLB("lb.yaml", []byte(`
frontends: [{name: f, mode: tcp, bind: ["127.0.0.1:1"], default_backend: b, acl: [{action: deny, host: [a.example]}]}]
backends: [{name: b, mode: tcp, servers: [{name: s, address: "127.0.0.1:2"}]}]
`))
	if err == nil || !strings.Contains(err.Error(), "frontends[0].acl[0]: host and path_prefix need mode http") {
		t.Errorf("ParseLB() error = %v, want host and path_prefix need mode http", err)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if err != nil || p.String() != tt.want {
				t.Errorf("ParsePrefix(%q) = %v, %v, want %s", tt.in, p, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "x", "10.0.0.0/33", "fe80::1%eth0", "10.0.0.0/"} {
		if p, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", bad, p)
		}
	}
}
