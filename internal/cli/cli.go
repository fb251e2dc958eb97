// Package cli is fulcrum's command line: one dispatcher for every role. It
// parses flags and wires packages together; role logic lives elsewhere.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad flags or an invalid configuration file; nothing started
)

// env is what a subcommand may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) int
}

func commands() []command {
	return []command{
		{"lb", "run a load balancer", runLB},
		{"web", "run a web/app server", runWeb},
		{"db", "run and manage a MariaDB primary/replica cluster", runDB},
		{"up", "run the whole stack on this machine", runUp},
		{"status", "show the topology and health of a running stack", runStatus},
		{"ctl", "control a running load balancer", runCtl},
		{"chaos", "kill and restore parts of a running stack", runChaos},
		{"firewall", "plan, apply and remove host firewall rules", runFirewall},
		{"version", "print the version", runVersion},
	}
}

// Version is set at build time with -ldflags "-X fulcrum/internal/cli.Version=…".
var Version = "dev"

// Main runs fulcrum with args (without the program name) and returns the exit
// status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "fulcrum: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: fulcrum COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'fulcrum COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set whose --help prints the usage line and flags.
func newFlags(e env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fulcrum %s\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; the int is the exit status to return when ok is false.
func parseFlags(fs *flag.FlagSet, args []string) (ok bool, status int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(io.Discard)
			return false, exitOK
		}
		return false, exitUsage
	}
	return true, 0
}

func runVersion(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "version", "version")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	fmt.Fprintln(e.stdout, "fulcrum", Version)
	return exitOK
}

// notYet is the answer of a command whose role has not been built.
func notYet(e env, name string) int {
	fmt.Fprintf(e.stderr, "fulcrum %s: not available in this build yet\n", name)
	return exitFailure
}
