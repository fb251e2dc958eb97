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
	// primary reports the database primary for /healthz (nil without a
	// database); tests replace it.
	primary func() (string, error)
	started atomic.Bool
	// draining is set when shutdown begins: /healthz answers 503.
	draining atomic.Bool
	stats    counters
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
	s := &Server{cfg: *cfg, log: log.With("server", cfg.Name)}
	if d := cfg.Database; d != nil {
		pw, err := password(d, os.Getenv)
		if err != nil {
			return nil, err
		}
		s.db = newDatabase(dbrouter.Config{
			Nodes: d.Nodes, User: d.User, Password: pw, Database: d.Name,
			MaxLag: d.MaxLag.D(), CheckInterval: d.CheckInterval.D(),
			Logger: s.log.With("component", "dbrouter"),
		}, s.log)
		s.primary = s.db.Primary
	}
	if cfg.App == "guestbook" {
		s.app = guestbook.New(guestbook.Config{
			Store: guestbook.NewSQLStore(s.db), ServedBy: cfg.Name, Logger: s.log.With("app", "guestbook"),
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
	mux.HandleFunc("GET /healthz", s.healthz)
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

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: it
// stops accepting, answers 503 on /healthz to connections still open, lets
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
	}
	var bg sync.WaitGroup
	if s.db != nil {
		bg.Go(func() { s.db.run(baseCtx, s.app) })
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("web server started", "addr", ln.Addr().String())

	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("web: %w", err)
	case <-ctx.Done():
		s.draining.Store(true)
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
	s.log.Info("web server stopped")
	return err
}

func (s *Server) closeStatic() {
	if s.static != nil {
		s.static.Close()
	}
}

// healthz answers 200 when this server can serve: not shutting down, the
// database primary known, the application ready; else 503 with the reason.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	status, msg := http.StatusOK, "ok"
	switch {
	case s.draining.Load():
		status, msg = http.StatusServiceUnavailable, "shutting down"
	case s.primary != nil:
		if p, err := s.primary(); err != nil {
			status, msg = http.StatusServiceUnavailable, "database: "+err.Error()
		} else if s.app != nil && s.app.Ready() != nil {
			status, msg = http.StatusServiceUnavailable, "app: "+s.app.Ready().Error()
		} else {
			msg = "ok, database primary " + p
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}
