package balance

import (
	"errors"
	"fmt"
)

// MaxWeight is the highest server weight, as in HAProxy (SRV_UWGHT_MAX).
const MaxWeight = 256

// weightScale multiplies user weights into effective weights, as
// HAProxy's BE_WEIGHT_SCALE does for dynamic algorithms.
const weightScale = 16

// Server is what a balancer needs to know of one server.
type Server struct {
	// Weight is the share of new traffic, 0..256. 0 takes no new traffic.
	Weight int
	// MaxConn is, for `first`, the number of concurrent connections
	// before the next server is used. 0 means no cap. Other algorithms
	// ignore it.
	MaxConn int
}

// Balancer chooses servers of one backend. It is safe for concurrent use.
// Servers are identified by index: their position in the slice given to
// New, then in Add order. All servers given to New start usable.
type Balancer interface {
	// Pick returns the chosen server's index, or -1 when no usable server
	// with weight > 0 exists. key is the hash input for source (client IP
	// bytes) and uri (the path, optionally the query); other algorithms
	// ignore it. avoid is an index to skip when another usable server
	// exists (-1: none), used when a retry is redispatched. Every Pick that
	// returns i >= 0 is followed by exactly one Release(i).
	Pick(key []byte, avoid int) int
	// Release ends a connection or request that Pick gave to server i.
	Release(i int)
	// SetWeight changes server i's weight at runtime; values outside
	// 0..256 are clamped.
	SetWeight(i, weight int)
	// SetUsable marks server i eligible or not (health down, drain, maint).
	SetUsable(i int, usable bool)
	// Add appends a server at runtime and returns its index. It starts
	// not usable, like HAProxy's `add server`, which starts in maint.
	Add(s Server) int
}

// Algorithm names accepted by New.
const (
	RoundRobin = "roundrobin"
	StaticRR   = "static-rr"
	LeastConn  = "leastconn"
	First      = "first"
	Source     = "source"
	URI        = "uri"
	Random     = "random"
)

// Algorithms returns the algorithm names New accepts, roundrobin (the
// default in HAProxy) first.
func Algorithms() []string {
	return []string{RoundRobin, StaticRR, LeastConn, First, Source, URI, Random}
}

// ErrUnknownAlgorithm is returned by New for a name not in Algorithms.
var ErrUnknownAlgorithm = errors.New("balance: unknown algorithm")

// New returns the balancer for an algorithm (see Algorithms) over servers,
// all usable. A weight outside 0..256 or a negative MaxConn is an error.
func New(algorithm string, servers []Server) (Balancer, error) {
	for i, s := range servers {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("balance: server %d: %w", i, err)
		}
	}
	switch algorithm {
	case RoundRobin:
		return newFWRR(servers), nil
	case StaticRR:
		return newStaticRR(servers), nil
	case LeastConn:
		return newLeastConn(servers), nil
	case First:
		return newFirst(servers), nil
	case Source, URI:
		return newHashRing(servers), nil
	case Random:
		return newRandom(servers, 0), nil
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknownAlgorithm, algorithm, Algorithms())
}

func (s Server) validate() error {
	if s.Weight < 0 || s.Weight > MaxWeight {
		return fmt.Errorf("weight %d: must be 0..%d", s.Weight, MaxWeight)
	}
	if s.MaxConn < 0 {
		return fmt.Errorf("maxconn %d: must be >= 0", s.MaxConn)
	}
	return nil
}

// clampWeight brings a runtime weight into 0..MaxWeight.
func clampWeight(w int) int {
	return min(max(w, 0), MaxWeight)
}

// clampServer is what Add uses: a server that would fail validate is
// brought into range, since Add has no error to return.
func clampServer(s Server) Server {
	s.Weight = clampWeight(s.Weight)
	s.MaxConn = max(s.MaxConn, 0)
	return s
}
