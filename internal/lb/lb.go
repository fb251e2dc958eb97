// Package lb is the load balancer runtime: it turns an LB configuration into
// frontends, backends and servers, binds the listeners, runs the health
// checks and keeps each server's state (health, administrative state,
// weight) in one place. Runtime changes (weights, states, servers added or
// deleted) and reloads of the configuration go through it.
package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"fulcrum/internal/balance"
	"fulcrum/internal/config"
	"fulcrum/internal/edge"
	"fulcrum/internal/health"
	"fulcrum/internal/proxy"
)

// LB is a running load balancer.
type LB struct {
	log    *slog.Logger
	listen Listen

	// mu guards the fields below, and serialises runtime changes and reloads.
	mu        sync.Mutex
	cfg       *config.LB
	frontends []*Frontend
	backends  []*Backend
	deferred  map[string]bool // addresses bound only by Hold
	onHealth  func(backend string, usable int)
	ctx       context.Context // the monitors' parent, set by Start
	cancel    context.CancelFunc
	wg        sync.WaitGroup // monitors
}

// Frontend is a frontend with its listeners.
type Frontend struct {
	Name string
	Mode string
	HTTP *proxy.HTTPFrontend // mode http
	TCP  *proxy.TCPFrontend  // mode tcp

	cfg       config.Frontend
	edge      *frontendEdge
	stopCerts context.CancelFunc
	listeners map[string]net.Listener // by configured address
}

// Backend is a backend with its servers' states.
type Backend struct {
	Name  string
	Proxy *proxy.Backend

	cfg     config.Backend
	servers []*Server // live ones, in order; deleted servers leave
}

// Admin states of a server, as HAProxy's `set server … state`.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// Server is one server's runtime state.
type Server struct {
	Name  string
	Addr  string
	Proxy *proxy.Server

	b *Backend

	mu         sync.Mutex // guards the fields below
	monitor    *health.Monitor
	stop       context.CancelFunc // stops the monitor
	admin      string
	weight     int // current
	cfgWeight  int
	lastChange time.Time
	deleted    bool
	checksOff  bool
}

// Listen is how the LB binds an address (net.Listen by default); VRRP mode
// replaces it to bind addresses the host does not hold yet.
type Listen func(network, addr string) (net.Listener, error)

// ErrNotFound is returned for an unknown frontend, backend or server.
var ErrNotFound = errors.New("not found")

// ErrInvalid is returned for a change that is not allowed.
var ErrInvalid = errors.New("invalid")

// New builds a load balancer from cfg (already validated). Nothing is bound
// or started until Start. listen may be nil.
func New(cfg *config.LB, log *slog.Logger, listen Listen) (*LB, error) {
	if listen == nil {
		listen = net.Listen
	}
	// Frontends wait on their listeners in the proxy's poller (see
	// proxy.Listener).
	bind := func(network, addr string) (net.Listener, error) {
		ln, err := listen(network, addr)
		if err != nil {
			return nil, err
		}
		return proxy.NewListener(ln), nil
	}
	l := &LB{log: log, listen: bind, cfg: cfg}
	for i := range cfg.Backends {
		b, err := l.newBackend(cfg.Backends[i])
		if err != nil {
			return nil, err
		}
		l.backends = append(l.backends, b)
	}
	for i := range cfg.Frontends {
		e, err := l.newFrontendEdge(cfg.Frontends[i], cfg.StateDir)
		if err != nil {
			return nil, err
		}
		l.frontends = append(l.frontends, l.newFrontend(cfg.Frontends[i], e))
	}
	return l, nil
}

func (l *LB) backend(name string) *Backend {
	for _, b := range l.backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

func (l *LB) frontend(name string) *Frontend {
	for _, f := range l.frontends {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func (l *LB) newFrontend(fc config.Frontend, e *frontendEdge) *Frontend {
	f := &Frontend{Name: fc.Name, Mode: fc.Mode, cfg: fc, edge: e, listeners: map[string]net.Listener{}}
	switch fc.Mode {
	case "http":
		f.HTTP = proxy.NewHTTPFrontend(fc.Name, l.httpConfig(fc, e))
	case "tcp":
		f.TCP = proxy.NewTCPFrontend(fc.Name, l.tcpConfig(fc, e))
	}
	return f
}

// frontendEdge is a frontend's TLS and edge protection, built from its
// configuration (anew on every reload).
type frontendEdge struct {
	tls     *tls.Config
	certs   *edge.Certs // reloads certificate files, staples OCSP, runs ACME
	acl     *edge.ACL
	limiter *edge.Limiter
	trusted *edge.Trusted
}

func (l *LB) newFrontendEdge(fc config.Frontend, stateDir string) (*frontendEdge, error) {
	e := &frontendEdge{}
	var err error
	if fc.TLS != nil {
		// Certificates from the local CA name the admin address as their
		// OCSP responder (edge.NewLocalOCSP, mounted by the admin server).
		opts := edge.Options{StateDir: stateDir, Log: l.log.With("frontend", fc.Name), OCSPAddr: l.cfg.Admin}
		if e.tls, e.certs, err = edge.ServerTLSWith(fc.TLS, opts); err != nil {
			return nil, fmt.Errorf("frontend %q: tls: %w", fc.Name, err)
		}
	}
	if len(fc.ACL) > 0 {
		if e.acl, err = edge.NewACL(fc.ACL); err != nil {
			return nil, fmt.Errorf("frontend %q: acl: %w", fc.Name, err)
		}
	}
	if fc.RateLimit != nil {
		e.limiter = edge.NewLimiter(*fc.RateLimit)
	}
	if len(fc.TrustedProxies) > 0 {
		if e.trusted, err = edge.NewTrusted(fc.TrustedProxies); err != nil {
			return nil, fmt.Errorf("frontend %q: trusted_proxies: %w", fc.Name, err)
		}
	}
	return e, nil
}

// runCerts keeps the frontend's certificates fresh until the LB stops or
// the frontend gets new ones.
func (l *LB) runCerts(f *Frontend) {
	if f.stopCerts != nil {
		f.stopCerts()
		f.stopCerts = nil
	}
	if f.edge.certs == nil || l.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	f.stopCerts = cancel
	certs := f.edge.certs
	go func() {
		if err := certs.Run(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("certificates", "frontend", f.Name, "error", err)
		}
	}()
}

func backendTLS(bc config.Backend) (*tls.Config, error) {
	if bc.TLS == nil {
		return nil, nil
	}
	c, err := edge.ClientTLS(bc.TLS)
	if err != nil {
		return nil, fmt.Errorf("backend %q: tls: %w", bc.Name, err)
	}
	return c, nil
}

func (l *LB) accessLog(fc config.Frontend) *slog.Logger {
	if fc.AccessLog != nil && !*fc.AccessLog {
		return nil
	}
	return l.log.With("log", "access")
}

func (l *LB) httpConfig(fc config.Frontend, e *frontendEdge) *proxy.HTTPConfig {
	c := &proxy.HTTPConfig{
		TimeoutClient:        fc.TimeoutClient.D(),
		TimeoutRequestHeader: fc.TimeoutRequestHeader.D(),
		MaxHeaderBytes:       fc.MaxHeaderBytes,
		AccessLog:            l.accessLog(fc),
		TLS:                  e.tls,
		HSTS:                 fc.HSTS.D(),
		RedirectHTTPS:        fc.RedirectHTTPS,
		MaxConns:             fc.MaxConns,
		ACL:                  e.acl,
		Limiter:              e.limiter,
		Trusted:              e.trusted,
		AcceptProxy:          fc.AcceptProxy,
	}
	if fc.DefaultBackend != "" {
		c.Default = l.backend(fc.DefaultBackend).Proxy
	}
	for _, rc := range fc.Routes {
		c.Routes = append(c.Routes, proxy.Route{Host: rc.Host, PathPrefix: rc.PathPrefix, Backend: l.backend(rc.Backend).Proxy})
	}
	return c
}

func (l *LB) tcpConfig(fc config.Frontend, e *frontendEdge) *proxy.TCPConfig {
	return &proxy.TCPConfig{Backend: l.backend(fc.DefaultBackend).Proxy, TimeoutClient: fc.TimeoutClient.D(),
		AccessLog: l.accessLog(fc), MaxConns: fc.MaxConns, ACL: e.acl, Limiter: e.limiter}
}

func backendConfig(bc config.Backend, tlsCfg *tls.Config) proxy.BackendConfig {
	return proxy.BackendConfig{
		TLS:            tlsCfg,
		SendProxy:      bc.SendProxy,
		HashURI:        bc.Balance == balance.URI,
		HashSource:     bc.Balance == balance.Source,
		Retries:        *bc.Retries,
		Redispatch:     bc.Redispatch,
		ConnectTimeout: bc.TimeoutConnect.D(),
		ServerTimeout:  bc.TimeoutServer.D(),
		Observe5xx:     bc.Observe != nil && bc.Observe.HTTP5xx,
	}
}

func (l *LB) newBackend(bc config.Backend) (*Backend, error) {
	bs := make([]balance.Server, len(bc.Servers))
	for i, s := range bc.Servers {
		bs[i] = balance.Server{Weight: *s.Weight, MaxConn: s.MaxConn}
	}
	bal, err := balance.New(bc.Balance, bs)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", bc.Name, err)
	}
	ps := make([]*proxy.Server, len(bc.Servers))
	for i, sc := range bc.Servers {
		ps[i] = proxy.NewServer(sc.Name, sc.Address, i)
	}
	tlsCfg, err := backendTLS(bc)
	if err != nil {
		return nil, err
	}
	b := &Backend{Name: bc.Name, cfg: bc, Proxy: proxy.NewBackend(bc.Name, bal, ps, backendConfig(bc, tlsCfg))}
	for i, sc := range bc.Servers {
		s := &Server{Name: sc.Name, Addr: sc.Address, Proxy: ps[i], b: b,
			admin: StateReady, weight: *sc.Weight, cfgWeight: *sc.Weight, lastChange: time.Now()}
		s.setMonitor(l.newMonitor(bc, sc.Address, s))
		s.apply() // a server whose checks start it DOWN takes no traffic yet
		b.servers = append(b.servers, s)
	}
	return b, nil
}

// newMonitor returns the health monitor of a server, or nil when the backend
// checks nothing (like HAProxy without `check`: always up).
func (l *LB) newMonitor(bc config.Backend, addr string, s *Server) *health.Monitor {
	h, o := bc.Health, bc.Observe
	if h == nil && o == nil {
		return nil
	}
	log := l.log.With("backend", bc.Name, "server", s.Name)
	var cfg health.Config
	var checker health.Checker
	if h != nil {
		// A database port must never reach a node of the wrong role, not
		// even before the first check: mysql checks start DOWN.
		cfg = health.Config{Interval: h.Interval.D(), Timeout: h.Timeout.D(), Rise: h.Rise, Fall: h.Fall, StartDown: h.Type == "mysql"}
		switch h.Type {
		case "tcp":
			checker = health.NewTCP(addr)
		case "http":
			lo, hi, _ := config.ParseStatusRange(h.Expect)
			// A TLS backend's servers are checked over TLS, with the
			// backend's settings (HAProxy's check-ssl).
			tlsCfg, err := backendTLS(bc)
			if err != nil {
				log.Error("http check: backend tls", "error", err)
			}
			checker = health.NewHTTP(addr, health.HTTPCheck{Method: h.Method, Path: h.Path, Host: h.Host, ExpectLo: lo, ExpectHi: hi, TLS: tlsCfg})
		case "mysql":
			pw := ""
			if h.PasswordFile != "" {
				b, err := os.ReadFile(h.PasswordFile)
				if err != nil {
					log.Error("mysql check: cannot read the password file", "file", h.PasswordFile, "error", err)
				}
				pw = strings.TrimSpace(string(b))
			}
			tlsCfg, err := h.TLS.ClientConfig()
			if err != nil {
				log.Error("mysql check: tls", "error", err)
			}
			checker = health.NewMySQL(addr, health.MySQLCheck{Role: h.Role, MaxLag: h.MaxLag.D(), User: h.User, Password: pw, TLS: tlsCfg})
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
		s.mu.Lock()
		s.lastChange = time.Now()
		s.mu.Unlock()
		s.apply()
		go l.healthChanged(s.b)
	})
}

// setMonitor installs m (nil: none) as the server's monitor and hooks it to
// passive observation when the backend observes live traffic.
func (s *Server) setMonitor(m *health.Monitor) {
	s.mu.Lock()
	s.monitor = m
	s.mu.Unlock()
	if m != nil && s.b.cfg.Observe != nil {
		s.Proxy.SetObserver(m.Observe)
	}
}

// startMonitor runs the server's monitor under ctx.
func (l *LB) startMonitor(s *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.monitor == nil || l.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	s.stop = cancel
	m := s.monitor
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		m.Run(ctx)
	}()
}

func (s *Server) stopMonitor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// apply pushes the server's effective state to the balancer: usable when
// its health is up and its admin state is ready.
func (s *Server) apply() {
	s.mu.Lock()
	defer s.mu.Unlock()
	bal := s.b.Proxy.Balancer()
	i := s.Proxy.Index()
	if s.deleted {
		bal.SetUsable(i, false)
		return
	}
	usable := s.admin == StateReady && (s.monitor == nil || s.monitor.Up())
	bal.SetWeight(i, s.weight)
	bal.SetUsable(i, usable)
	if s.admin == StateMaint {
		s.Proxy.CloseIdle()
	}
}

// Start binds every frontend's addresses, starts the health checks and
// serves until Shutdown. A bind error stops everything already started.
func (l *LB) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	bound, err := l.bindAll(l.frontends, nil)
	if err != nil {
		return err
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	for _, f := range l.frontends {
		l.runCerts(f)
	}
	for _, b := range l.backends {
		for _, s := range b.servers {
			l.startMonitor(s)
		}
	}
	l.serve(bound)
	return nil
}

// boundListener is a listener bound for a frontend, not serving yet.
type boundListener struct {
	f    *Frontend
	addr string
	ln   net.Listener
}

// bindAll binds the configured addresses of fes that are not bound yet;
// on error it closes what it bound and returns the error.
func (l *LB) bindAll(fes []*Frontend, cfgs map[*Frontend]config.Frontend) ([]boundListener, error) {
	var bound []boundListener
	for _, f := range fes {
		fc := f.cfg
		if c, ok := cfgs[f]; ok {
			fc = c
		}
		for _, addr := range fc.Bind {
			if _, ok := f.listeners[addr]; ok || l.deferred[addr] {
				continue
			}
			ln, err := l.listen("tcp", addr)
			if err != nil {
				for _, b := range bound {
					b.ln.Close()
				}
				return nil, fmt.Errorf("frontend %q: bind %s: %w", f.Name, addr, err)
			}
			bound = append(bound, boundListener{f, addr, ln})
		}
	}
	return bound, nil
}

func (l *LB) serve(bound []boundListener) {
	for _, b := range bound {
		b.f.listeners[b.addr] = b.ln
		l.log.Info("listening", "frontend", b.f.Name, "mode", b.f.Mode, "address", b.ln.Addr().String())
		go b.f.serve(b.ln)
	}
}

func (f *Frontend) serve(ln net.Listener) {
	if f.HTTP != nil {
		f.HTTP.Serve(ln)
	} else {
		f.TCP.Serve(ln)
	}
}

func (f *Frontend) shutdown(ctx context.Context) error {
	for addr, ln := range f.listeners {
		ln.Close()
		delete(f.listeners, addr)
	}
	if f.HTTP != nil {
		return f.HTTP.Shutdown(ctx)
	}
	return f.TCP.Shutdown(ctx)
}

// Addrs returns the bound addresses of a frontend (useful with port 0).
func (l *LB) Addrs(frontend string) []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.frontend(frontend)
	if f == nil {
		return nil
	}
	var out []net.Addr
	for _, addr := range f.cfg.Bind {
		if ln, ok := f.listeners[addr]; ok {
			out = append(out, ln.Addr())
		}
	}
	return out
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, then closes what is left and stops the health checks.
func (l *LB) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	fes := slices.Clone(l.frontends)
	l.mu.Unlock()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range fes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("frontend %q: %w", f.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
	l.wg.Wait()
	for _, b := range l.backends {
		for _, s := range b.Proxy.Servers() {
			s.CloseIdle()
		}
	}
	return errors.Join(errs...)
}

// Reload applies a new configuration without closing the listeners that
// remain and without failing requests in flight. Servers that remain (same
// backend, name and address) keep their health state, admin state and
// runtime weight (a weight not changed at runtime follows the file). On
// error nothing changes.
func (l *LB) Reload(cfg *config.LB) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Backends: kept when the algorithm is the same, else built anew.
	var newBackends []*Backend
	kept := map[*Backend]bool{}
	for _, bc := range cfg.Backends {
		old := l.backend(bc.Name)
		if old != nil && old.cfg.Balance == bc.Balance && old.cfg.Mode == bc.Mode {
			newBackends = append(newBackends, old)
			kept[old] = true
			continue
		}
		b, err := l.newBackend(bc)
		if err != nil {
			return err
		}
		newBackends = append(newBackends, b)
	}
	backendTLSs := map[string]*tls.Config{}
	for _, bc := range cfg.Backends {
		c, err := backendTLS(bc)
		if err != nil {
			return err
		}
		backendTLSs[bc.Name] = c
	}
	// Frontends: kept when the mode is the same. Bind new addresses first,
	// so that a bind error leaves everything as it was.
	edges := map[string]*frontendEdge{}
	for _, fc := range cfg.Frontends {
		e, err := l.newFrontendEdge(fc, cfg.StateDir)
		if err != nil {
			return err
		}
		edges[fc.Name] = e
	}
	var newFrontends []*Frontend
	cfgs := map[*Frontend]config.Frontend{}
	for _, fc := range cfg.Frontends {
		f := l.frontend(fc.Name)
		if f == nil || f.Mode != fc.Mode {
			f = &Frontend{Name: fc.Name, Mode: fc.Mode, cfg: fc, listeners: map[string]net.Listener{}}
		}
		cfgs[f] = fc
		newFrontends = append(newFrontends, f)
	}
	bound, err := l.bindAll(newFrontends, cfgs)
	if err != nil {
		return err
	}
	// From here on nothing fails.
	oldBackends := l.backends
	l.backends = newBackends
	for _, b := range newBackends {
		if kept[b] {
			l.updateBackend(b, cfg, backendTLSs[b.Name])
		} else {
			for _, s := range b.servers {
				l.startMonitor(s)
			}
		}
	}
	oldFrontends := l.frontends
	l.frontends = newFrontends
	for _, f := range newFrontends {
		fc := cfgs[f]
		f.cfg = fc
		e := edges[fc.Name]
		f.edge = e
		switch {
		case f.HTTP == nil && f.TCP == nil && fc.Mode == "http":
			f.HTTP = proxy.NewHTTPFrontend(fc.Name, l.httpConfig(fc, e))
		case f.HTTP == nil && f.TCP == nil:
			f.TCP = proxy.NewTCPFrontend(fc.Name, l.tcpConfig(fc, e))
		case f.HTTP != nil:
			f.HTTP.Configure(l.httpConfig(fc, e))
		default:
			f.TCP.Configure(l.tcpConfig(fc, e))
		}
		l.runCerts(f)
		for addr, ln := range f.listeners {
			if !slices.Contains(fc.Bind, addr) {
				ln.Close()
				delete(f.listeners, addr)
			}
		}
	}
	l.serve(bound)
	for _, f := range oldFrontends {
		if !slices.Contains(newFrontends, f) {
			if f.stopCerts != nil {
				f.stopCerts()
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), cfg.Grace.D())
				defer cancel()
				f.shutdown(ctx)
			}()
		}
	}
	for _, b := range oldBackends {
		if !kept[b] {
			for _, s := range b.servers {
				s.stopMonitor()
			}
			go closeIdleLater(b.Proxy)
		}
	}
	l.cfg = cfg
	l.log.Info("configuration reloaded", "frontends", len(newFrontends), "backends", len(newBackends))
	return nil
}

// closeIdleLater closes a retired backend's idle connections once requests
// routed to it just before a reload have had time to finish.
func closeIdleLater(b *proxy.Backend) {
	time.Sleep(time.Second)
	for _, s := range b.Servers() {
		s.CloseIdle()
	}
}

// updateBackend applies a new configuration to a kept backend: tunables,
// servers added, removed or changed, and health checks.
func (l *LB) updateBackend(b *Backend, cfg *config.LB, tlsCfg *tls.Config) {
	var bc config.Backend
	for _, c := range cfg.Backends {
		if c.Name == b.Name {
			bc = c
		}
	}
	healthChanged := !reflect.DeepEqual(b.cfg.Health, bc.Health) || !reflect.DeepEqual(b.cfg.Observe, bc.Observe)
	b.cfg = bc
	b.Proxy.Configure(backendConfig(bc, tlsCfg))
	var live []*Server
	for _, sc := range bc.Servers {
		var s *Server
		for _, old := range b.servers {
			if old.Name == sc.Name && old.Addr == sc.Address {
				s = old
			}
		}
		if s == nil {
			s = l.addServer(b, sc.Name, sc.Address, *sc.Weight, sc.MaxConn, StateReady)
			live = append(live, s)
			continue
		}
		s.mu.Lock()
		if s.weight == s.cfgWeight {
			s.weight = *sc.Weight
		}
		s.cfgWeight = *sc.Weight
		s.mu.Unlock()
		if healthChanged {
			s.stopMonitor()
			wasUp := s.up()
			m := l.newMonitor(bc, s.Addr, s)
			if m != nil && !wasUp {
				m.Force(false)
			}
			s.Proxy.SetObserver(nil)
			s.setMonitor(m)
			l.startMonitor(s)
		}
		s.apply()
		live = append(live, s)
	}
	for _, old := range b.servers {
		if !slices.Contains(live, old) {
			l.retire(old)
		}
	}
	b.servers = live
}

// addServer adds a server to b's balancer and proxy and starts its checks.
func (l *LB) addServer(b *Backend, name, addr string, weight, maxConn int, admin string) *Server {
	i := b.Proxy.Balancer().Add(balance.Server{Weight: weight, MaxConn: maxConn})
	ps := proxy.NewServer(name, addr, i)
	b.Proxy.AddServer(ps)
	s := &Server{Name: name, Addr: addr, Proxy: ps, b: b, admin: admin, weight: weight, cfgWeight: weight, lastChange: time.Now()}
	s.setMonitor(l.newMonitor(b.cfg, addr, s))
	l.startMonitor(s)
	s.apply()
	return s
}

// retire takes a server out for good: no new traffic, checks stopped; its
// requests in flight finish.
func (l *LB) retire(s *Server) {
	s.mu.Lock()
	s.deleted = true
	s.mu.Unlock()
	s.stopMonitor()
	s.apply()
	go func() {
		time.Sleep(time.Second)
		s.Proxy.CloseIdle()
	}()
	l.log.Info("server removed", "backend", s.b.Name, "server", s.Name)
}

func (s *Server) up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.monitor == nil || s.monitor.Up()
}
