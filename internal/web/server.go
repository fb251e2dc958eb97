// Package web is fulcrum's web/app server (`fulcrum web`, issue 5): a static
// directory, an application mounted in-process (the guestbook) and upstream
// application servers reverse-proxied for a path prefix, behind one
// listener. Every response carries X-Served-By; /healthz tells the load
// balancer whether this server can serve and reach the database primary.
//
// Programs that run the whole stack embed it:
//
//	srv, err := web.New(cfg, logger)
//	ln, err := net.Listen("tcp", cfg.Listen)
//	err = srv.Serve(ctx, ln) // returns after ctx ends and in-flight requests finish
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fulcrum/internal/config"
	"fulcrum/internal/dbrouter"
	"fulcrum/internal/guestbook"
)

const headerServedBy = "X-Served-By"

// envAppPassword is read when the configuration names no password file.
const envAppPassword = "FULCRUM_DB_APP_PASSWORD"

// Server is one web/app server. Create it with New and run it with Serve or
// ListenAndServe, once.
type Server struct {
	cfg     config.Web
	log     *slog.Logger
	handler http.Handler
	static  *static        // nil without static files
	app     *guestbook.App // nil without an application
	db      *database      // nil without a database
	ups     []*upstream
	tls     *tls.Config // nil: plain HTTP
	// primary reports the database primary for /healthz (nil without a
	// database); tests replace it.
	primary func() (string, error)
	// lastPrimary is when the primary was last known (Unix nanoseconds).
	lastPrimary atomic.Int64
	started     atomic.Bool
	// draining is set when shutdown begins: /healthz answers 503.
	draining  atomic.Bool
	stats     counters
	durations prometheus.Histogram
	created   time.Time
	addr      atomic.Pointer[string] // the listener's address, once serving
}

// New checks cfg (filling in its defaults), opens the static directory,
// reads the database password and builds the routes. It touches no network:
// the database is reached by Serve, in the background. A nil logger
// discards.
func New(cfg *config.Web, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Check("web config"); err != nil {
		return nil, err
	}
	s := &Server{cfg: *cfg, log: log.With("server", cfg.Name), durations: newDurations(cfg.Name), created: time.Now()}
	if d := cfg.Database; d != nil {
		pw, err := password(d, os.Getenv)
		if err != nil {
			return nil, err
		}
		dbTLS, err := d.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("database.tls: %w", err)
		}
		s.db = newDatabase(dbrouter.Config{
			Nodes: d.Nodes, User: d.User, Password: pw, Database: d.Name,
			MaxLag: d.MaxLag.D(), CheckInterval: d.CheckInterval.D(), TLS: dbTLS,
			Logger: s.log.With("component", "dbrouter"),
		}, s.log)
		s.primary = s.db.Primary
	}
	if t := cfg.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.App == "guestbook" {
		s.app = guestbook.New(guestbook.Config{
			Store: guestbook.NewSQLStore(s.db), ServedBy: cfg.Name, Logger: s.log.With("app", "guestbook"),
			Primary: s.db.Primary,
		})
	}
	if cfg.Static != nil {
		st, err := newStatic(cfg.Static)
		if err != nil {
			return nil, err
		}
		s.static = st
	}
	var ups []*upstream
	for _, u := range cfg.Upstreams {
		up, err := newUpstream(u, s.log)
		if err != nil {
			s.closeStatic()
			return nil, fmt.Errorf("upstream %s: %w", u.PathPrefix, err)
		}
		ups = append(ups, up)
	}
	s.ups = ups
	mux, err := s.routes(ups)
	if err != nil {
		s.closeStatic()
		return nil, err
	}
	s.handler = s.wrap(mux)
	return s, nil
}

// password returns the database password: d.Password when set, else the
// contents of d.PasswordFile, else the environment's FULCRUM_DB_APP_PASSWORD.
func password(d *config.WebDatabase, getenv func(string) string) (string, error) {
	switch {
	case d.Password != "":
		return d.Password, nil
	case d.PasswordFile != "":
		b, err := os.ReadFile(d.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("database.password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return getenv(envAppPassword), nil
}

// routes builds the mux: /healthz, then upstream prefixes, the
// application's routes and the static directory; the mux picks the most
// specific pattern.
func (s *Server) routes(ups []*upstream) (mux *http.ServeMux, err error) {
	defer func() {
		// ServeMux panics on conflicting patterns.
		if p := recover(); p != nil {
			err = fmt.Errorf("routes conflict: %v", p)
		}
	}()
	mux = http.NewServeMux()
	mux.HandleFunc("/healthz", s.healthz)
	catchAll := false
	for _, up := range ups {
		up.register(mux)
		catchAll = catchAll || up.prefix == ""
	}
	if s.app != nil {
		s.app.Register(mux)
	}
	if s.static != nil {
		if catchAll {
			return nil, errors.New("static files and an upstream for / both claim every path")
		}
		mux.Handle("/", s.static)
	}
	return mux, nil
}

// Handler returns the server's handler: what Serve serves.
func (s *Server) Handler() http.Handler { return s.handler }

// Name returns the server's name, as sent in X-Served-By.
func (s *Server) Name() string { return s.cfg.Name }

// ListenAndServe listens on the configured address and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.closeStatic()
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP on ln (HTTPS, HTTP/2 and HTTP/1.1, when the
// configuration has a tls section), and the admin handler on the configured admin
// address, until ctx ends; then it shuts down gracefully: it answers 503 on
// /healthz, keeps serving for the configured drain period, stops
// accepting, lets
// in-flight requests finish within the configured grace period, closes what
// remains and the database connections. It returns nil after a clean
// shutdown.
//
// The database is connected in the background, and the application's schema
// created, retrying until they succeed: static files are served meanwhile,
// and /healthz answers 503 until the primary is reachable.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.started.Swap(true) {
		ln.Close()
		return errors.New("web: Serve called twice")
	}
	defer s.closeStatic()
	// In-flight requests and the database outlive ctx by the grace period.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		TLSConfig:         s.tls,
	}
	var admin *http.Server
	if s.cfg.Admin != "" {
		aln, err := net.Listen("tcp", s.cfg.Admin)
		if err != nil {
			ln.Close()
			return fmt.Errorf("web: admin: %w", err)
		}
		admin = &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: srv.ErrorLog}
		go admin.Serve(aln)
		defer admin.Close()
		s.log.Info("admin started", "addr", aln.Addr().String())
	}
	var bg sync.WaitGroup
	if s.db != nil {
		bg.Go(func() { s.db.run(baseCtx, s.app) })
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	s.log.Info("web server started", "addr", addr, "tls", s.tls != nil)

	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("web: %w", err)
	case <-ctx.Done():
		s.draining.Store(true)
		if d := s.cfg.Drain.D(); d > 0 {
			s.log.Info("web server draining", "drain", d)
			select {
			case <-time.After(d):
			case serveErr := <-errc:
				errc <- serveErr // the listener failed; nothing to wait for
			}
		}
		s.log.Info("web server shutting down", "grace", s.cfg.Grace.D())
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Grace.D())
		if serr := srv.Shutdown(sctx); serr != nil {
			srv.Close()
			err = fmt.Errorf("web: grace period of %v over, open connections closed", s.cfg.Grace.D())
		}
		cancel()
		<-errc
	}
	cancelBase()
	bg.Wait()
	if s.db != nil {
		s.db.close()
	}
	for _, up := range s.ups {
		up.transport.CloseIdleConnections()
	}
	s.log.Info("web server stopped")
	return err
}

func (s *Server) closeStatic() {
	if s.static != nil {
		s.static.Close()
	}
}

// primaryGrace is how long /healthz stays 200 without a database primary
// once one was known: longer than a failover takes (about a second).
const primaryGrace = 10 * time.Second

// healthz answers 200 when this server can serve: not shutting down, the
// database primary known, the application ready; else 503 with the reason.
//
// It answers OPTIONS like GET, because a load balancer's HTTP check sends
// OPTIONS by default (HAProxy's option httpchk).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	status := http.StatusOK
	ok, msg := s.health()
	if !ok {
		status = http.StatusServiceUnavailable
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// health reports whether the server can serve, and a short reason.
func (s *Server) health() (bool, string) {
	if s.draining.Load() {
		return false, "shutting down"
	}
	if s.primary == nil {
		return true, "ok"
	}
	p, err := s.primary()
	if err != nil {
		// Every web server loses the primary together during a
		// failover: marking them all down would fail reads that the
		// replicas still serve. Only a primary missing for longer than
		// a failover takes makes this server unhealthy.
		if last := s.lastPrimary.Load(); last != 0 {
			if gone := time.Since(time.Unix(0, last)); gone < primaryGrace {
				return true, fmt.Sprintf("ok (database: %v for %v: failover?)", err, gone.Round(time.Millisecond))
			}
		}
		return false, "database: " + err.Error()
	}
	s.lastPrimary.Store(time.Now().UnixNano())
	if s.app != nil {
		if err := s.app.Ready(); err != nil {
			return false, "app: " + err.Error()
		}
	}
	return true, "ok, database primary " + p
}
