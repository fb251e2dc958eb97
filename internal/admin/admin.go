// Package admin is the load balancer's admin endpoint: a JSON runtime API
// (show and change servers, reload), a live stats page in the spirit of
// HAProxy's, and Prometheus metrics on /metrics. It drives the load balancer
// through the small Runtime interface, so tests use a fake.
package admin

import (
	"context"
	"errors"
	"fmt"
	"fulcrum/internal/vrrp"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"fulcrum/internal/lb"
)

// Runtime is what the admin endpoint needs of a load balancer. Errors that
// wrap lb.ErrNotFound answer 404, lb.ErrInvalid 400, others 500.
type Runtime interface {
	Status() lb.Status
	SetWeight(backend, server, weight string) error
	SetState(backend, server, state string) error
	SetChecks(backend, server string, on bool) error
	ForceHealth(backend, server string, up bool) error
	AddServer(backend, server, addr string, weight int) error
	DelServer(backend, server string) error
}

var _ Runtime = (*lb.LB)(nil)

// Options configure the admin endpoint.
type Options struct {
	// LB is the load balancer shown and controlled.
	LB Runtime
	// Reload re-reads the configuration file; nil makes POST /api/reload
	// answer 501.
	Reload func() error
	// Addr is the address the handler is served on. When its host is not a
	// loopback address (or is empty, meaning every interface) every request
	// but the static page needs Token; with no Token set such requests are
	// refused.
	Addr string
	// Token, when set, is the bearer token every API and /metrics request
	// must carry (Authorization: Bearer TOKEN), on any address.
	Token string
	// Logger receives changes made through the API (nil: discarded).
	Logger *slog.Logger
	// Interval between samples of the counters for request rates
	// (default 1s).
	Interval time.Duration
	// History is how many samples each sparkline keeps (default 60).
	History int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ResponseTimes, when set, returns every server's response-time
	// histogram for fulcrum_server_response_time_seconds (nil: not exported).
	ResponseTimes func() []ServerTimes
	// VRRP, when set, returns the virtual routers' states for
	// /api/status, /api/vrrp and fulcrum_vrrp_* metrics.
	VRRP func() []vrrp.Status
	// OCSP, when set, answers OCSP requests under /ocsp/ for the local
	// CA's certificates. It is served to anyone, without a token: the
	// answers are signed and public, and clients that check revocation
	// carry no credentials.
	OCSP http.Handler
}

// Admin is the admin endpoint: an http.Handler, and a sampler of request
// rates that Run drives.
type Admin struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	rates   *rates
	authReq bool // a token is required (Token set, or Addr not loopback)
}

// New returns the admin endpoint for opts. Call Run to compute rates.
func New(opts Options) *Admin {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.History <= 0 {
		opts.History = 60
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Admin{
		opts:    opts,
		log:     opts.Logger,
		rates:   newRates(opts.History),
		authReq: opts.Token != "" || !Loopback(opts.Addr),
	}
	a.mux = a.routes()
	return a
}

// ServeHTTP serves the stats page, the API and /metrics.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.opts.OCSP != nil && strings.HasPrefix(r.URL.Path, "/ocsp/") {
		a.opts.OCSP.ServeHTTP(w, r)
		return
	}
	if !a.allow(w, r) {
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Run samples the load balancer's counters every Interval to compute
// request rates, until ctx is done.
func (a *Admin) Run(ctx context.Context) {
	a.sample()
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sample()
		}
	}
}

func (a *Admin) sample() { a.rates.sample(a.opts.Now(), a.opts.LB.Status()) }

// Serve serves the admin endpoint on ln and samples rates until ctx is
// done, then closes ln and the connections it accepted.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.Run(ctx)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin %s: %w", ln.Addr(), err)
	}
	return nil
}

// ReadToken reads a bearer token file (admin_token_file): its content
// without surrounding white space, which must not be empty.
func ReadToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin_token_file %s: empty", file)
	}
	return tok, nil
}
