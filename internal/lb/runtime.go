package lb

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/health"
	"fulcrum/internal/proxy"
)

// Status is a snapshot of the load balancer for the runtime API, the stats
// page and /metrics.
type Status struct {
	Frontends []FrontendStatus `json:"frontends"`
	Backends  []BackendStatus  `json:"backends"`
}

// FrontendStatus describes one frontend.
type FrontendStatus struct {
	Name  string   `json:"name"`
	Mode  string   `json:"mode"`
	Bind  []string `json:"bind"`
	Conns int      `json:"current_connections"`
	// Parked are the idle client connections among Conns held without a
	// goroutine (http mode).
	Parked int    `json:"parked_connections"`
	Counts Counts `json:"counters"`
}

// BackendStatus describes one backend.
type BackendStatus struct {
	Name    string         `json:"name"`
	Mode    string         `json:"mode"`
	Balance string         `json:"balance"`
	Up      int            `json:"servers_up"` // servers taking traffic
	Counts  Counts         `json:"counters"`
	Servers []ServerStatus `json:"servers"`
}

// ServerStatus describes one server. State is UP, DOWN, DRAIN or MAINT, as
// on HAProxy's stats page.
type ServerStatus struct {
	Name         string    `json:"name"`
	Address      string    `json:"address"`
	State        string    `json:"state"`
	Admin        string    `json:"admin"`
	Weight       int       `json:"weight"`
	ConfigWeight int       `json:"config_weight"`
	Active       int64     `json:"current_sessions"`
	LastChange   time.Time `json:"last_change"`
	Counts       Counts    `json:"counters"`
	Check        *Check    `json:"check,omitempty"` // nil without health checks
}

// Check is a server's health-check state.
type Check struct {
	Enabled         bool          `json:"enabled"`
	Status          string        `json:"status"`
	LastOK          bool          `json:"last_ok"`
	LastError       string        `json:"last_error,omitempty"`
	LastDuration    time.Duration `json:"last_duration_ns"`
	LastAt          time.Time     `json:"last_at"`
	Checks          uint64        `json:"checks"`
	Failures        uint64        `json:"failures"`
	DownTransitions uint64        `json:"down_transitions"`
}

// Counts are cumulative counters (HAProxy stats columns in comments).
type Counts struct {
	Requests      uint64    `json:"requests"`               // stot
	BytesIn       uint64    `json:"bytes_in"`               // bin
	BytesOut      uint64    `json:"bytes_out"`              // bout
	ConnErrors    uint64    `json:"conn_errors"`            // econ
	RespErrors    uint64    `json:"resp_errors"`            // eresp
	ReqErrors     uint64    `json:"req_errors"`             // ereq
	Retries       uint64    `json:"retries"`                // wretr
	Redispatches  uint64    `json:"redispatches"`           // wredis
	StatusClasses [6]uint64 `json:"status_classes"`         // [0] other, [1] 1xx … [5] 5xx
	Denied        uint64    `json:"denied,omitempty"`       // frontends: by an ACL
	RateLimited   uint64    `json:"rate_limited,omitempty"` // frontends: over a per-client limit
	TLSErrors     uint64    `json:"tls_errors,omitempty"`   // frontends: failed TLS handshakes
	// ResponseTimes counts responses per bucket of TimeBounds (servers
	// only), the last for longer ones; TimeTotal is their sum.
	ResponseTimes []uint64      `json:"response_times,omitempty"`
	TimeTotal     time.Duration `json:"response_time_total_ns,omitempty"`
}

// TimeBounds returns the upper bounds of the response-time buckets.
func TimeBounds() []time.Duration { return proxy.TimeBounds[:] }

func counts(c *proxy.Counters) Counts {
	out := Counts{
		Requests: c.Requests.Load(), BytesIn: c.BytesIn.Load(), BytesOut: c.BytesOut.Load(),
		ConnErrors: c.ConnErrors.Load(), RespErrors: c.RespErrors.Load(), ReqErrors: c.ReqErrors.Load(),
		Retries: c.Retries.Load(), Redispatches: c.Redispatch.Load(),
		Denied: c.Denied.Load(), RateLimited: c.RateLimited.Load(), TLSErrors: c.TLSErrors.Load(),
	}
	for i := range out.StatusClasses {
		out.StatusClasses[i] = c.Status[i].Load()
	}
	if total := c.TimeTotalNs.Load(); total > 0 {
		out.TimeTotal = time.Duration(total)
		out.ResponseTimes = make([]uint64, len(c.Times))
		for i := range c.Times {
			out.ResponseTimes[i] = c.Times[i].Load()
		}
	}
	return out
}

// Status returns a snapshot of every frontend, backend and server.
func (l *LB) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	var st Status
	for _, f := range l.frontends {
		fs := FrontendStatus{Name: f.Name, Mode: f.Mode, Bind: f.cfg.Bind}
		if f.HTTP != nil {
			fs.Conns, fs.Parked, fs.Counts = f.HTTP.ActiveConns(), f.HTTP.ParkedConns(), counts(&f.HTTP.Stats)
		} else {
			fs.Conns, fs.Counts = f.TCP.ActiveConns(), counts(&f.TCP.Stats)
		}
		st.Frontends = append(st.Frontends, fs)
	}
	for _, b := range l.backends {
		bs := BackendStatus{Name: b.Name, Mode: b.cfg.Mode, Balance: b.cfg.Balance, Counts: counts(&b.Proxy.Stats)}
		for _, s := range b.servers {
			ss := s.status()
			if ss.State == "UP" {
				bs.Up++
			}
			bs.Servers = append(bs.Servers, ss)
		}
		st.Backends = append(st.Backends, bs)
	}
	return st
}

func (s *Server) status() ServerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := ServerStatus{Name: s.Name, Address: s.Addr, Admin: s.admin, Weight: s.weight, ConfigWeight: s.cfgWeight,
		Active: s.Proxy.Active.Load(), LastChange: s.lastChange, Counts: counts(&s.Proxy.Stats)}
	up := s.monitor == nil || s.monitor.Up()
	switch {
	case s.admin == StateMaint:
		ss.State = "MAINT"
	case !up:
		ss.State = "DOWN"
	case s.admin == StateDrain:
		ss.State = "DRAIN"
	default:
		ss.State = "UP"
	}
	if m := s.monitor; m != nil {
		last := m.Last()
		checks, fails, downs := m.Counters()
		ss.Check = &Check{Enabled: !s.checksOff, Status: m.Status(), LastOK: last.OK, LastDuration: last.Duration,
			LastAt: last.At, Checks: checks, Failures: fails, DownTransitions: downs}
		if last.Err != nil {
			ss.Check.LastError = last.Err.Error()
		}
	}
	return ss
}

// server finds a live server by backend and server name.
func (l *LB) server(backend, server string) (*Server, error) {
	b := l.backend(backend)
	if b == nil {
		return nil, fmt.Errorf("backend %q: %w", backend, ErrNotFound)
	}
	for _, s := range b.servers {
		if s.Name == server {
			return s, nil
		}
	}
	return nil, fmt.Errorf("backend %q: server %q: %w", backend, server, ErrNotFound)
}

// ParseWeight parses a weight as the runtime API takes it: "N" (0..256) or
// "N%" of the configured weight (HAProxy's `set server … weight`).
func ParseWeight(v string, configured int) (int, error) {
	pct := strings.HasSuffix(v, "%")
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil {
		return 0, fmt.Errorf("weight %q: want 0..256 or a percentage such as 50%%: %w", v, ErrInvalid)
	}
	if pct {
		if n < 0 {
			return 0, fmt.Errorf("weight %q: a percentage must not be negative: %w", v, ErrInvalid)
		}
		n = (configured*n + 50) / 100
		if n > 256 {
			n = 256
		}
		return n, nil
	}
	if n < 0 || n > 256 {
		return 0, fmt.Errorf("weight %d: must be 0..256: %w", n, ErrInvalid)
	}
	return n, nil
}

// SetWeight sets a server's weight: "N" (0..256) or "N%" of its configured
// weight. It takes effect at once.
func (l *LB) SetWeight(backend, server, weight string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.server(backend, server)
	if err != nil {
		return err
	}
	s.mu.Lock()
	w, err := ParseWeight(weight, s.cfgWeight)
	if err == nil {
		s.weight = w
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("backend %q: server %q: %w", backend, server, err)
	}
	s.apply()
	l.log.Info("weight changed", "backend", backend, "server", server, "weight", w)
	return nil
}

// SetState sets a server's admin state: ready, drain (no new traffic, its
// requests finish) or maint (no traffic, idle connections closed).
func (l *LB) SetState(backend, server, state string) error {
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return fmt.Errorf("state %q: want ready, drain or maint: %w", state, ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.server(backend, server)
	if err != nil {
		return err
	}
	s.mu.Lock()
	changed := s.admin != state
	s.admin = state
	if changed {
		s.lastChange = time.Now()
	}
	s.mu.Unlock()
	s.apply()
	if changed {
		l.log.Warn("server state changed", "backend", backend, "server", server, "state", state)
	}
	return nil
}

// SetChecks turns a server's health checks on or off (off keeps the current
// health state).
func (l *LB) SetChecks(backend, server string, on bool) error {
	return l.withMonitor(backend, server, func(s *Server, m *health.Monitor) {
		m.SetEnabled(on)
		s.mu.Lock()
		s.checksOff = !on
		s.mu.Unlock()
	})
}

// ForceHealth sets a server's health state as if its checks had said so.
func (l *LB) ForceHealth(backend, server string, up bool) error {
	return l.withMonitor(backend, server, func(_ *Server, m *health.Monitor) { m.Force(up) })
}

// withMonitor runs fn on a server's health monitor, or says why not.
func (l *LB) withMonitor(backend, server string, fn func(*Server, *health.Monitor)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.server(backend, server)
	if err != nil {
		return err
	}
	m := s.mon()
	if m == nil {
		return fmt.Errorf("backend %q: server %q: has no health checks: %w", backend, server, ErrInvalid)
	}
	fn(s, m)
	return nil
}

func (s *Server) mon() *health.Monitor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.monitor
}

// AddServer adds a server to a backend at runtime. Like HAProxy's `add
// server`, it starts in maint: set it ready to give it traffic.
func (l *LB) AddServer(backend, server, addr string, weight int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.backend(backend)
	if b == nil {
		return fmt.Errorf("backend %q: %w", backend, ErrNotFound)
	}
	for _, s := range b.servers {
		if s.Name == server {
			return fmt.Errorf("backend %q: server %q already exists: %w", backend, server, ErrInvalid)
		}
	}
	if weight < 0 || weight > 256 {
		return fmt.Errorf("weight %d: must be 0..256: %w", weight, ErrInvalid)
	}
	if server == "" || strings.ContainsAny(server, "/ \t") {
		return fmt.Errorf("server name %q: must be non-empty without '/' or spaces: %w", server, ErrInvalid)
	}
	if _, err := config.ParseHostPort(addr); err != nil {
		return fmt.Errorf("address %q: %v: %w", addr, err, ErrInvalid)
	}
	b.servers = append(b.servers, l.addServer(b, server, addr, weight, 0, StateMaint))
	l.log.Info("server added", "backend", backend, "server", server, "address", addr)
	return nil
}

// DelServer deletes a server at runtime; like HAProxy's `del server` it must
// be in maint with no request in flight.
func (l *LB) DelServer(backend, server string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.server(backend, server)
	if err != nil {
		return err
	}
	s.mu.Lock()
	admin := s.admin
	s.mu.Unlock()
	if admin != StateMaint {
		return fmt.Errorf("backend %q: server %q is %s: put it in maint first: %w", backend, server, admin, ErrInvalid)
	}
	if n := s.Proxy.Active.Load(); n > 0 {
		return fmt.Errorf("backend %q: server %q has %d requests in flight: %w", backend, server, n, ErrInvalid)
	}
	l.retire(s)
	b := s.b
	for i, x := range b.servers {
		if x == s {
			b.servers = append(b.servers[:i:i], b.servers[i+1:]...)
			break
		}
	}
	return nil
}
