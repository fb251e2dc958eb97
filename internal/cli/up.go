package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"fulcrum/internal/config"
	"fulcrum/internal/stack"
)

// defaultStackDir is $XDG_STATE_HOME/fulcrum, or ~/.local/state/fulcrum.
func defaultStackDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fulcrum")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "fulcrum")
	}
	return "fulcrum-state"
}

// runUp is `fulcrum up`: the whole stack in the foreground until SIGINT or
// SIGTERM, then every child stopped.
func runUp(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "up", "up [-c stack.yaml] [--dir DIR] [--fresh] [--replicas N] [--netns]")
	file := fs.String("c", "", "stack file changing the built-in addresses (optional)")
	dir := fs.String("dir", defaultStackDir(), "state directory: database, generated configurations, logs")
	fresh := fs.Bool("fresh", false, "wipe the state directory first (data and roles otherwise persist)")
	replicas := fs.Int("replicas", 0, "MariaDB replicas beside the primary (default 1, or replicas: in the stack file)")
	hosts := fs.Bool("netns", false, "run every host of the stack file's hosts: as a network namespace of its own, with a client host, a real VRRP VIP and the host firewalls (root; state directory default: DIR-netns)")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "fulcrum up: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *hosts && !flagSet(fs, "dir") {
		// Its own cluster: the database's addresses are the hosts'.
		*dir += "-netns"
	}
	cfg := config.DefaultStack()
	name := "defaults"
	if *file != "" {
		c, err := config.LoadStack(*file)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitUsage
		}
		cfg, name = c, *file
	}
	if *replicas != 0 {
		cfg.Replicas = *replicas
		if err := cfg.Check(name + " with --replicas"); err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitUsage
		}
	}
	if err := stack.CheckPrerequisites(*hosts); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum up: %v\n", err)
		return exitFailure
	}
	terminal, width := false, 0
	if f, ok := e.stdout.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			terminal, width = true, int(ws.Col)
		}
	}
	// Progress and events go to DIR/logs/up.log; the terminal keeps the
	// status line. Events also show in `fulcrum status` and the dashboard.
	s, err := stack.New(stack.Options{Dir: *dir, Config: cfg, Fresh: *fresh, Out: e.stdout, Terminal: terminal, Width: width, NetNS: *hosts})
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum up: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(e.stdout, "starting the stack in %s (log: %s)\n", s.Dir(), filepath.Join(s.Dir(), "logs", "up.log"))
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum up: %v\n", err)
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintf(e.stderr, "logs of every part: %s\n", filepath.Join(s.Dir(), "logs"))
		}
		return exitFailure
	}
	fmt.Fprintln(e.stdout, "stack stopped; data kept in", s.Dir())
	return exitOK
}
