package cli

import (
	"context"
	"fmt"
	"log/slog"

	"fulcrum/internal/config"
	"fulcrum/internal/web"
)

// runWeb is `fulcrum web -c web.yaml [--check]`: one web/app server, in the
// foreground until SIGINT or SIGTERM, then a graceful shutdown.
func runWeb(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "web", "web -c web.yaml [--check]")
	path := fs.String("c", "", "configuration file (required)")
	check := fs.Bool("check", false, "check the configuration, the static directory and the password file, then exit")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(e.stderr, "fulcrum web: -c FILE is required, and nothing else")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.LoadWeb(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	srv, err := web.New(cfg, slog.New(slog.NewTextHandler(e.stderr, nil)))
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", *path, err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(e.stdout, "%s: ok\n", *path)
		return exitOK
	}
	if err := srv.ListenAndServe(ctx); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum web: %v\n", err)
		return exitFailure
	}
	return exitOK
}
