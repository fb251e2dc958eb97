package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"fulcrum/internal/dbrouter"
	"fulcrum/internal/guestbook"
)

// database is the server's connection to the cluster: a dbrouter.Router
// opened in the background, so that the server starts, serves static files
// and reports 503 on /healthz while the database is still coming up.
type database struct {
	cfg  dbrouter.Config
	log  *slog.Logger
	open func(context.Context, dbrouter.Config) (*dbrouter.Router, error)
	// retry is the pause between attempts to open the router or create the
	// schema (default 1s).
	retry time.Duration

	router atomic.Pointer[dbrouter.Router]
	// mu guards the field below.
	mu      sync.Mutex
	openErr error // why the router is not open yet
}

var (
	_ guestbook.DB = (*database)(nil)
	// errConnecting is the answer until the router is open.
	errConnecting = errors.New("connecting")
)

func newDatabase(cfg dbrouter.Config, log *slog.Logger) *database {
	return &database{cfg: cfg, log: log, open: dbrouter.Open, retry: time.Second, openErr: errConnecting}
}

// run opens the router, then creates the application's schema (app may be
// nil), each retried until it succeeds or ctx ends. It logs a failure once,
// and the recovery.
func (d *database) run(ctx context.Context, app *guestbook.App) {
	if !d.retryUntil(ctx, "open database router", func() error {
		r, err := d.open(ctx, d.cfg)
		if err != nil {
			d.mu.Lock()
			d.openErr = err
			d.mu.Unlock()
			return err
		}
		d.router.Store(r)
		return nil
	}) || app == nil {
		return
	}
	d.retryUntil(ctx, "create guestbook schema", func() error { return app.Init(ctx) })
}

func (d *database) retryUntil(ctx context.Context, what string, f func() error) bool {
	failed := false
	for {
		err := f()
		if err == nil {
			if failed {
				d.log.Info(what + ": succeeded")
			}
			return true
		}
		if !failed {
			d.log.Warn(what+": failed, retrying", "err", err, "every", d.retry)
			failed = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d.retry):
		}
	}
}

// close closes the router, if it was opened.
func (d *database) close() {
	if r := d.router.Swap(nil); r != nil {
		r.Close()
	}
}

// Primary returns the primary's address, or why there is none.
func (d *database) Primary() (string, error) {
	r := d.router.Load()
	if r == nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		return "", fmt.Errorf("not connected: %w", d.openErr)
	}
	return r.Primary()
}

// Exec implements guestbook.DB.
func (d *database) Exec(ctx context.Context, query string, args ...any) (dbrouter.Result, error) {
	r := d.router.Load()
	if r == nil {
		return dbrouter.Result{}, guestbook.ErrUnavailable
	}
	return r.Exec(ctx, query, args...)
}

// Query implements guestbook.DB.
func (d *database) Query(ctx context.Context, after dbrouter.Token, query string, args ...any) (*dbrouter.Rows, error) {
	r := d.router.Load()
	if r == nil {
		return nil, guestbook.ErrUnavailable
	}
	return r.Query(ctx, after, query, args...)
}
