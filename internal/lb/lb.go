// Package lb is the load balancer runtime: it turns an LB configuration into
// frontends, backends and servers, binds the listeners, runs the health
// checks and keeps each server's state (health, administrative state,
// weight) in one place.
package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"fulcrum/internal/balance"
	"fulcrum/internal/config"
	"fulcrum/internal/health"
	"fulcrum/internal/proxy"
)

// LB is a running load balancer.
type LB struct {
	log *slog.Logger

	mu        sync.Mutex // guards the fields below
	cfg       *config.LB
	frontends []*Frontend
	backends  map[string]*Backend
	order     []string // backend names in file order
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Frontend is a frontend with its listeners.
type Frontend struct {
	Name string
	Mode string
	HTTP *proxy.HTTPFrontend // mode http
	TCP  *proxy.TCPFrontend  // mode tcp

	listeners []net.Listener
}

// Backend is a backend with its servers' states.
type Backend struct {
	Name    string
	Mode    string
	Balance string
	Proxy   *proxy.Backend
	Servers []*Server
}

// Admin states of a server, as HAProxy's `set server … state`.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// Server is one server's runtime state.
type Server struct {
	Name    string
	Addr    string
	Proxy   *proxy.Server
	Monitor *health.Monitor // nil without health checks

	b *Backend

	mu        sync.Mutex // guards the fields below
	admin     string
	weight    int // current
	cfgWeight int
	lastDown  time.Time
}

// Listen is how the LB binds an address; tests and VRRP may replace it.
type Listen func(network, addr string) (net.Listener, error)

// New builds a load balancer from cfg (already validated). Nothing is bound
// or started until Start.
func New(cfg *config.LB, log *slog.Logger) (*LB, error) {
	l := &LB{log: log, cfg: cfg, backends: map[string]*Backend{}}
	for i := range cfg.Backends {
		bc := &cfg.Backends[i]
		b, err := newBackend(bc, log)
		if err != nil {
			return nil, err
		}
		l.backends[b.Name] = b
		l.order = append(l.order, b.Name)
	}
	for i := range cfg.Frontends {
		fc := &cfg.Frontends[i]
		l.frontends = append(l.frontends, l.newFrontend(fc))
	}
	return l, nil
}

func (l *LB) newFrontend(fc *config.Frontend) *Frontend {
	f := &Frontend{Name: fc.Name, Mode: fc.Mode}
	var access *slog.Logger
	if fc.AccessLog == nil || *fc.AccessLog {
		access = l.log.With("log", "access")
	}
	switch fc.Mode {
	case "http":
		f.HTTP = &proxy.HTTPFrontend{
			Name:                 fc.Name,
			TimeoutClient:        fc.TimeoutClient.D(),
			TimeoutRequestHeader: fc.TimeoutRequestHeader.D(),
			MaxHeaderBytes:       fc.MaxHeaderBytes,
			AccessLog:            access,
		}
		r := &proxy.Routing{}
		if fc.DefaultBackend != "" {
			r.Default = l.backends[fc.DefaultBackend].Proxy
		}
		for _, rc := range fc.Routes {
			r.Routes = append(r.Routes, proxy.Route{Host: rc.Host, PathPrefix: rc.PathPrefix, Backend: l.backends[rc.Backend].Proxy})
		}
		f.HTTP.SetRouting(r)
	case "tcp":
		f.TCP = &proxy.TCPFrontend{Name: fc.Name, TimeoutClient: fc.TimeoutClient.D(), AccessLog: access}
		f.TCP.SetBackend(l.backends[fc.DefaultBackend].Proxy)
	}
	return f
}

func newBackend(bc *config.Backend, log *slog.Logger) (*Backend, error) {
	bs := make([]balance.Server, len(bc.Servers))
	for i, s := range bc.Servers {
		bs[i] = balance.Server{Weight: *s.Weight, MaxConn: s.MaxConn}
	}
	bal, err := balance.New(bc.Balance, bs)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", bc.Name, err)
	}
	b := &Backend{Name: bc.Name, Mode: bc.Mode, Balance: bc.Balance}
	ps := make([]*proxy.Server, len(bc.Servers))
	for i, sc := range bc.Servers {
		ps[i] = proxy.NewServer(sc.Name, sc.Address, i)
	}
	pb := proxy.NewBackend(bc.Name, bal, ps)
	pb.HashURI = bc.Balance == balance.URI
	pb.HashSource = bc.Balance == balance.Source
	pb.Retries = *bc.Retries
	pb.Redispatch = bc.Redispatch
	pb.ConnectTimeout = bc.TimeoutConnect.D()
	pb.ServerTimeout = bc.TimeoutServer.D()
	pb.Observe5xx = bc.Observe != nil && bc.Observe.HTTP5xx
	b.Proxy = pb
	for i, sc := range bc.Servers {
		s := &Server{Name: sc.Name, Addr: sc.Address, Proxy: ps[i], b: b,
			admin: StateReady, weight: *sc.Weight, cfgWeight: *sc.Weight}
		s.Monitor = newMonitor(bc, sc, s, log.With("backend", bc.Name, "server", sc.Name))
		if s.Monitor != nil && bc.Observe != nil {
			ps[i].Observe = s.Monitor.Observe
		}
		b.Servers = append(b.Servers, s)
	}
	return b, nil
}

// newMonitor returns the health monitor of a server, or nil when the backend
// checks nothing (like HAProxy without `check`: always up).
func newMonitor(bc *config.Backend, sc config.Server, s *Server, log *slog.Logger) *health.Monitor {
	h, o := bc.Health, bc.Observe
	if h == nil && o == nil {
		return nil
	}
	var cfg health.Config
	var checker health.Checker
	if h != nil {
		cfg = health.Config{Interval: h.Interval.D(), Timeout: h.Timeout.D(), Rise: h.Rise, Fall: h.Fall}
		switch h.Type {
		case "tcp":
			checker = health.NewTCP(sc.Address)
		case "http":
			lo, hi, _ := config.ParseStatusRange(h.Expect)
			checker = health.NewHTTP(sc.Address, health.HTTPCheck{Method: h.Method, Path: h.Path, Host: h.Host, ExpectLo: lo, ExpectHi: hi})
		case "mysql":
			pw := ""
			if h.PasswordFile != "" {
				if b, err := os.ReadFile(h.PasswordFile); err == nil {
					pw = strings.TrimSpace(string(b))
				} else {
					log.Error("mysql check: cannot read password file", "file", h.PasswordFile, "error", err)
				}
			}
			checker = health.NewMySQL(sc.Address, health.MySQLCheck{Role: h.Role, MaxLag: h.MaxLag.D(), User: h.User, Password: pw})
		}
	}
	if o != nil {
		cfg.ErrorLimit = o.ErrorLimit
	}
	return health.NewMonitor(cfg, checker, health.RealClock(), func(up bool, reason string) {
		if up {
			log.Warn("server is UP", "reason", reason)
		} else {
			log.Warn("server is DOWN", "reason", reason)
		}
		s.apply()
	})
}

// apply pushes the server's effective state to the balancer: usable when
// its health is up and its admin state is ready.
func (s *Server) apply() {
	s.mu.Lock()
	defer s.mu.Unlock()
	usable := s.admin == StateReady && (s.Monitor == nil || s.Monitor.Up())
	if !usable && s.lastDown.IsZero() {
		s.lastDown = time.Now()
	} else if usable {
		s.lastDown = time.Time{}
	}
	s.b.Proxy.Balancer().SetWeight(s.Proxy.Index(), s.weight)
	s.b.Proxy.Balancer().SetUsable(s.Proxy.Index(), usable)
	if s.admin == StateMaint {
		s.Proxy.CloseIdle()
	}
}

// Start binds every frontend's addresses with listen (net.Listen when nil),
// starts the health checks and serves until Shutdown. A bind error stops
// everything already started.
func (l *LB) Start(ctx context.Context, listen Listen) error {
	if listen == nil {
		listen = net.Listen
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cfgs := l.cfg.Frontends
	for i, f := range l.frontends {
		for _, addr := range cfgs[i].Bind {
			ln, err := listen("tcp", addr)
			if err != nil {
				for _, f := range l.frontends {
					for _, ln := range f.listeners {
						ln.Close()
					}
				}
				return fmt.Errorf("frontend %q: bind %s: %w", f.Name, addr, err)
			}
			f.listeners = append(f.listeners, ln)
		}
	}
	ctx, l.cancel = context.WithCancel(ctx)
	for _, name := range l.order {
		for _, s := range l.backends[name].Servers {
			if s.Monitor != nil {
				l.wg.Add(1)
				go func() {
					defer l.wg.Done()
					s.Monitor.Run(ctx)
				}()
			}
		}
	}
	for _, f := range l.frontends {
		for _, ln := range f.listeners {
			l.log.Info("listening", "frontend", f.Name, "mode", f.Mode, "address", ln.Addr().String())
			go f.serve(ln)
		}
	}
	return nil
}

func (f *Frontend) serve(ln net.Listener) {
	if f.HTTP != nil {
		f.HTTP.Serve(ln)
	} else {
		f.TCP.Serve(ln)
	}
}

// Addrs returns the bound addresses of a frontend (useful with port 0).
func (l *LB) Addrs(frontend string) []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []net.Addr
	for _, f := range l.frontends {
		if f.Name == frontend {
			for _, ln := range f.listeners {
				out = append(out, ln.Addr())
			}
		}
	}
	return out
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, then closes what is left and stops the health checks.
func (l *LB) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	fes := l.frontends
	for _, f := range fes {
		for _, ln := range f.listeners {
			ln.Close()
		}
	}
	l.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, f := range fes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if f.HTTP != nil {
				err = f.HTTP.Shutdown(ctx)
			} else {
				err = f.TCP.Shutdown(ctx)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("frontend %q: %w", f.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	for _, b := range l.backends {
		for _, s := range b.Servers {
			s.Proxy.CloseIdle()
		}
	}
	return errors.Join(errs...)
}
