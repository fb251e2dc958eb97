package cli

import (
	"context"
	"fmt"
	"log/slog"

	"fulcrum/internal/config"
	"fulcrum/internal/lb"
)

func runLB(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "lb", "lb -c FILE [--check]")
	file := fs.String("c", "", "configuration `file` (YAML)")
	check := fs.Bool("check", false, "only validate the configuration: exit 0 when valid, 2 otherwise")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *file == "" {
		fmt.Fprintln(e.stderr, "fulcrum lb: -c FILE is required")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.LoadLB(*file)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(e.stdout, "%s: configuration is valid\n", *file)
		return exitOK
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	l, err := lb.New(cfg, log, nil)
	if err != nil {
		fmt.Fprintln(e.stderr, "fulcrum lb:", err)
		return exitUsage
	}
	if err := l.Start(ctx); err != nil {
		log.Error("cannot start", "error", err)
		return exitFailure
	}
	<-ctx.Done()
	log.Info("stopping: finishing in-flight requests", "grace", cfg.Grace.D())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Grace.D())
	defer cancel()
	if err := l.Shutdown(sctx); err != nil {
		log.Warn("grace period over: closed remaining connections", "error", err)
	}
	log.Info("stopped")
	return exitOK
}
