package dbha

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction ID, written domain-server-sequence
// (https://mariadb.com/kb/en/gtid/).
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// Position is a GTID position such as @@gtid_binlog_pos or Gtid_IO_Pos: the
// last GTID of each replication domain, keyed by domain.
type Position map[uint32]GTID

// ErrBadGTID reports a GTID or position that does not parse.
var ErrBadGTID = errors.New("dbha: bad GTID")

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("%w %q: want domain-server-sequence", ErrBadGTID, s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	q, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("%w %q: want three decimal numbers", ErrBadGTID, s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: q}, nil
}

// ParsePosition parses a comma-separated GTID list ("" is the empty
// position). A domain listed twice is an error: a position has one GTID per
// domain.
func ParsePosition(s string) (Position, error) {
	p := Position{}
	s = strings.TrimSpace(s)
	if s == "" {
		return p, nil
	}
	for _, f := range strings.Split(s, ",") {
		g, err := ParseGTID(f)
		if err != nil {
			return nil, err
		}
		if _, dup := p[g.Domain]; dup {
			return nil, fmt.Errorf("%w %q: domain %d listed twice", ErrBadGTID, s, g.Domain)
		}
		p[g.Domain] = g
	}
	return p, nil
}

// String writes p in MariaDB's form, domains in ascending order.
func (p Position) String() string {
	ds := make([]int, 0, len(p))
	for d := range p {
		ds = append(ds, int(d))
	}
	sort.Ints(ds)
	fs := make([]string, len(ds))
	for i, d := range ds {
		fs[i] = p[uint32(d)].String()
	}
	return strings.Join(fs, ",")
}

// Contains reports whether every transaction of q is also in p, comparing
// sequence numbers per domain (gtid_strict_mode keeps them increasing).
func (p Position) Contains(q Position) bool {
	for d, g := range q {
		if p[d].Seq < g.Seq {
			return false
		}
	}
	return true
}

// Behind returns how many transactions p lacks to reach q, summed over the
// domains of q: the GTID distance shown as replication lag.
func (p Position) Behind(q Position) uint64 {
	var n uint64
	for d, g := range q {
		if have := p[d].Seq; have < g.Seq {
			n += g.Seq - have
		}
	}
	return n
}

// Extra lists the GTIDs of p beyond q: the transactions of p that q has not
// seen. On a replica, binlog beyond slave position are errant transactions.
func (p Position) Extra(q Position) []GTID {
	var out []GTID
	for d, g := range p {
		if g.Seq > q[d].Seq {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// total is the sum of the sequence numbers, used to order positions that
// Contains cannot order.
func (p Position) total() uint64 {
	var n uint64
	for _, g := range p {
		n += g.Seq
	}
	return n
}
