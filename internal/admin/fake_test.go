package admin

import (
	"fmt"
	"sync"
	"time"

	"fulcrum/internal/lb"
)

// fakeLB is an in-memory Runtime with lb's rules: weights 0..256 or N%,
// servers added in maint, deleted only in maint and idle.
type fakeLB struct {
	mu       sync.Mutex
	backends []*fakeBackend
	front    lb.FrontendStatus
}

type fakeBackend struct {
	name    string
	servers []*fakeServer
}

type fakeServer struct {
	name, addr    string
	admin         string
	healthy       bool
	checks        bool
	weight, cfg   int
	active        int64
	requests      uint64
	lastChange    time.Time
	checkFailures uint64
}

var _ Runtime = (*fakeLB)(nil)

var fakeEpoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// newFakeLB has backend web with web1 (UP) and web2 (DOWN), and backend
// api with api1 (DRAIN) and api2 (MAINT).
func newFakeLB() *fakeLB {
	return &fakeLB{
		front: lb.FrontendStatus{Name: "www", Mode: "http", Bind: []string{"127.0.0.1:8080"}, Conns: 3, Parked: 2},
		backends: []*fakeBackend{
			{name: "web", servers: []*fakeServer{
				{name: "web1", addr: "127.0.0.1:9101", admin: lb.StateReady, healthy: true, checks: true, weight: 100, cfg: 100, active: 2, requests: 600},
				{name: "web2", addr: "127.0.0.1:9102", admin: lb.StateReady, healthy: false, checks: true, weight: 100, cfg: 100, requests: 200, checkFailures: 7},
			}},
			{name: "api", servers: []*fakeServer{
				{name: "api1", addr: "127.0.0.1:9201", admin: lb.StateDrain, healthy: true, checks: true, weight: 1, cfg: 1, active: 1},
				{name: "api2", addr: "127.0.0.1:9202", admin: lb.StateMaint, healthy: true, weight: 1, cfg: 1},
			}},
		},
	}
}

// serve adds n requests to a server, as traffic would.
func (f *fakeLB) serve(backend, server string, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		panic(err)
	}
	s.requests += n
}

func (f *fakeLB) Status() lb.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := lb.Status{}
	fr := f.front
	for _, b := range f.backends {
		bs := lb.BackendStatus{Name: b.name, Mode: "http", Balance: "roundrobin"}
		for _, s := range b.servers {
			ss := lb.ServerStatus{Name: s.name, Address: s.addr, Admin: s.admin, Weight: s.weight, ConfigWeight: s.cfg,
				Active: s.active, LastChange: s.lastChange}
			if ss.LastChange.IsZero() {
				ss.LastChange = fakeEpoch.Add(-90 * time.Second)
			}
			ss.Counts.Requests = s.requests
			ss.Counts.StatusClasses[2] = s.requests
			ss.Counts.BytesIn = s.requests * 120
			ss.Counts.BytesOut = s.requests * 2048
			switch {
			case s.admin == lb.StateMaint:
				ss.State = "MAINT"
			case !s.healthy:
				ss.State = "DOWN"
			case s.admin == lb.StateDrain:
				ss.State = "DRAIN"
			default:
				ss.State = "UP"
				bs.Up++
			}
			if s.name != "api2" {
				status := "L7OK"
				if !s.healthy {
					status = "L4CON"
				}
				ss.Check = &lb.Check{Enabled: s.checks, Status: status, LastOK: s.healthy, LastDuration: 1500 * time.Microsecond,
					LastAt: fakeEpoch.Add(-time.Second), Checks: 40, Failures: s.checkFailures}
				if !s.healthy {
					ss.Check.LastError = "connection refused"
				}
			}
			addCounts(&bs.Counts, ss.Counts)
			bs.Servers = append(bs.Servers, ss)
		}
		addCounts(&fr.Counts, bs.Counts)
		st.Backends = append(st.Backends, bs)
	}
	st.Frontends = []lb.FrontendStatus{fr}
	return st
}

func addCounts(dst *lb.Counts, c lb.Counts) {
	dst.Requests += c.Requests
	dst.BytesIn += c.BytesIn
	dst.BytesOut += c.BytesOut
	for i := range c.StatusClasses {
		dst.StatusClasses[i] += c.StatusClasses[i]
	}
}

func (f *fakeLB) find(backend, server string) (*fakeServer, error) {
	for _, b := range f.backends {
		if b.name != backend {
			continue
		}
		for _, s := range b.servers {
			if s.name == server {
				return s, nil
			}
		}
		return nil, fmt.Errorf("backend %q: server %q: %w", backend, server, lb.ErrNotFound)
	}
	return nil, fmt.Errorf("backend %q: %w", backend, lb.ErrNotFound)
}

func (f *fakeLB) SetWeight(backend, server, weight string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		return err
	}
	w, err := lb.ParseWeight(weight, s.cfg)
	if err != nil {
		return fmt.Errorf("backend %q: server %q: %w", backend, server, err)
	}
	s.weight = w
	return nil
}

func (f *fakeLB) SetState(backend, server, state string) error {
	switch state {
	case lb.StateReady, lb.StateDrain, lb.StateMaint:
	default:
		return fmt.Errorf("state %q: want ready, drain or maint: %w", state, lb.ErrInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		return err
	}
	s.admin = state
	return nil
}

func (f *fakeLB) SetChecks(backend, server string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		return err
	}
	s.checks = on
	return nil
}

func (f *fakeLB) ForceHealth(backend, server string, up bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		return err
	}
	s.healthy = up
	return nil
}

func (f *fakeLB) AddServer(backend, server, addr string, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(backend, server); err == nil {
		return fmt.Errorf("backend %q: server %q already exists: %w", backend, server, lb.ErrInvalid)
	}
	if weight < 0 || weight > 256 {
		return fmt.Errorf("weight %d: must be 0..256: %w", weight, lb.ErrInvalid)
	}
	for _, b := range f.backends {
		if b.name == backend {
			b.servers = append(b.servers, &fakeServer{name: server, addr: addr, admin: lb.StateMaint, healthy: true, weight: weight, cfg: weight})
			return nil
		}
	}
	return fmt.Errorf("backend %q: %w", backend, lb.ErrNotFound)
}

func (f *fakeLB) DelServer(backend, server string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.find(backend, server)
	if err != nil {
		return err
	}
	if s.admin != lb.StateMaint {
		return fmt.Errorf("backend %q: server %q is %s: put it in maint first: %w", backend, server, s.admin, lb.ErrInvalid)
	}
	for _, b := range f.backends {
		for i, x := range b.servers {
			if x == s {
				b.servers = append(b.servers[:i:i], b.servers[i+1:]...)
			}
		}
	}
	return nil
}
