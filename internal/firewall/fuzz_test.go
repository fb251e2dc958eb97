package firewall

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSSHConnection checks that the parser never panics and that
// whatever it accepts formats back to an equivalent session.
func FuzzParseSSHConnection(f *testing.F) {
	for _, s := range []string{
		"203.0.113.9 51234 192.0.2.21 22",
		"2001:db8::9 51234 2001:db8::21 22",
		"::ffff:203.0.113.9 1 ::ffff:192.0.2.21 65535",
		"fe80::1%eth0 51234 fe80::2%eth0 22",
		"1.2.3.4 5 6.7.8.9",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseSSHConnection(s)
		if err != nil {
			return
		}
		again := strings.Join([]string{c.Client.Addr().String(), itoa(c.Client.Port()), c.Server.Addr().String(), itoa(c.Server.Port())}, " ")
		c2, err := ParseSSHConnection(again)
		if err != nil || c2 != c {
			t.Fatalf("ParseSSHConnection(%q) = %v, reparsed from %q as %v, %v", s, c, again, c2, err)
		}
		if c.Client.Port() == 0 || c.Server.Port() == 0 || c.Client.Addr().Is4In6() {
			t.Fatalf("ParseSSHConnection(%q) = %v: zero port or mapped address", s, c)
		}
		// The guard must give an answer for anything the parser accepts.
		rs, err := Plan(fuzzTopology(t), "web1")
		if err != nil {
			t.Fatal(err)
		}
		_ = CheckSSH(rs, c)
	})
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func fuzzTopology(t *testing.T) *Topology {
	topo, err := FromStack(nil)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// FuzzParseAssignments checks that accepted assignments are unmapped,
// zone-free addresses under non-empty names.
func FuzzParseAssignments(f *testing.F) {
	for _, s := range []string{
		"lb1=10.0.0.1,web1=10.0.0.1",
		" db1 = 2001:db8::1",
		"lb1=::ffff:10.0.0.1",
		"lb1=10.0.0.1,lb1=10.0.0.2",
		"=10.0.0.1",
		"lb1=fe80::1%eth0",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseAssignments(s)
		if err != nil {
			return
		}
		for n, a := range m {
			if n == "" || !a.IsValid() || a.Is4In6() || a.Zone() != "" {
				t.Fatalf("ParseAssignments(%q): %q = %v", s, n, a)
			}
		}
	})
}

// FuzzParsePrefixes checks that accepted prefixes are masked, valid and
// survive a format → parse round trip.
func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{
		"203.0.113.0/24,2001:db8::/32",
		"192.0.2.5",
		"192.0.2.77/24",
		"::ffff:192.0.2.0/120",
		"fe80::1%eth0",
		"0.0.0.0/0,::/0",
		" , ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePrefixes(s)
		if err != nil {
			return
		}
		var out []string
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("ParsePrefixes(%q) = %v: %v is not a masked prefix", s, ps, p)
			}
			out = append(out, p.String())
		}
		again, err := ParsePrefixes(strings.Join(out, ","))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("ParsePrefixes(%q) = %v, reparsed as %v, %v", s, ps, again, err)
		}
		for i := range ps {
			if again[i] != ps[i] {
				t.Fatalf("ParsePrefixes(%q) = %v, reparsed as %v", s, ps, again)
			}
		}
	})
}
