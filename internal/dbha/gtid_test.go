package dbha

import (
	"errors"
	"reflect"
	"testing"
)

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in      string
		want    Position
		wantErr bool
	}{
		{"", Position{}, false},
		{"0-1-5", Position{0: {0, 1, 5}}, false},
		{"0-1-5,9-2-1", Position{0: {0, 1, 5}, 9: {9, 2, 1}}, false},
		{" 0-1-5 , 1-3-18446744073709551615", Position{0: {0, 1, 5}, 1: {1, 3, 18446744073709551615}}, false},
		{"0-1", nil, true},
		{"0-1-5-6", nil, true},
		{"a-1-5", nil, true},
		{"-1-1-5", nil, true},
		{"0-4294967296-1", nil, true},
		{"0-1-5,0-2-6", nil, true}, // one GTID per domain
		{"0-1-5,", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePosition(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadGTID) {
					t.Errorf("ParsePosition(%q) = %v, %v; want ErrBadGTID", tt.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePosition(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPositionCompare(t *testing.T) {
	p := func(s string) Position {
		t.Helper()
		v, err := ParsePosition(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		a, b     string
		contains bool
		behind   uint64
		extra    string
	}{
		{"0-1-10", "0-1-10", true, 0, ""},
		{"0-1-10", "0-1-7", true, 0, "0-1-10"},
		{"0-1-7", "0-2-10", false, 3, ""},
		{"0-1-10", "0-1-10,9-2-1", false, 1, ""},
		{"0-1-10,9-2-1", "0-1-10", true, 0, "9-2-1"},
		{"", "0-1-3,1-1-2", false, 5, ""},
	}
	for _, tt := range tests {
		a, b := p(tt.a), p(tt.b)
		if got := a.Contains(b); got != tt.contains {
			t.Errorf("%q.Contains(%q) = %v, want %v", tt.a, tt.b, got, tt.contains)
		}
		if got := a.Behind(b); got != tt.behind {
			t.Errorf("%q.Behind(%q) = %d, want %d", tt.a, tt.b, got, tt.behind)
		}
		var extra Position = Position{}
		for _, g := range a.Extra(b) {
			extra[g.Domain] = g
		}
		if got := extra.String(); got != tt.extra {
			t.Errorf("%q.Extra(%q) = %q, want %q", tt.a, tt.b, got, tt.extra)
		}
	}
}

func TestErrantGTIDs(t *testing.T) {
	slave := Position{0: {0, 1, 10}}
	tests := []struct {
		name  string
		state string
		self  uint32
		want  []string
	}{
		{"replicated only", "0-1-10", 2, nil},
		{"applying: binlog ahead of slave pos", "0-1-11", 2, nil},
		{"own write in another domain", "0-1-10,9-2-1", 2, []string{"9-2-1"}},
		{"own write in the replicated domain", "0-1-10,0-2-11", 2, []string{"0-2-11"}},
		{"own old writes from a time as primary", "0-2-4,0-1-10", 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errantGTIDs(tt.state, slave, tt.self); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errantGTIDs(%q) = %v, want %v", tt.state, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"CREATE USER 'a'@'%' IDENTIFIED BY 'secret'":             "CREATE USER 'a'@'%' IDENTIFIED BY '…'",
		changeMaster("127.0.0.1", "3306", "repl", `p,a 'ss`, ""): "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='…', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
		changeMaster("127.0.0.1", "3306", "repl", `x'`, "/ca.pem"): "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='…', MASTER_USE_GTID=slave_pos, " +
			"MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1, MASTER_SSL=1, MASTER_SSL_CA='/ca.pem', MASTER_SSL_VERIFY_SERVER_CERT=1",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":   "'plain'",
		"it's":    `'it\'s'`,
		`back\sl`: `'back\\sl'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParsePosition checks that every position that parses prints back to
// a string that parses to the same position.
func FuzzParsePosition(f *testing.F) {
	f.Add("")                         // empty position
	f.Add("0-1-5")                    // one domain
	f.Add("0-1-5,9-2-1")              // two domains
	f.Add("1-3-18446744073709551615") // largest sequence
	f.Add("0-1-5,0-2-6")              // a domain twice: rejected
	f.Add("0--1")                     // malformed
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		q, err := ParsePosition(p.String())
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %v after round trip of %q", p.String(), err, s)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q: %v, then %v", s, p, q)
		}
		if !p.Contains(q) || p.Behind(q) != 0 || len(p.Extra(q)) != 0 {
			t.Fatalf("%v compared with itself: not equal", p)
		}
	})
}
