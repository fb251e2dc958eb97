package cli

import (
	"context"
	"fmt"

	"fulcrum/internal/stack"
)

const chaosUsage = `chaos (kill|restore) NAME [--dir DIR]

  kill NAME     SIGKILL a part of the running stack, as a crash would:
                lb1, lb2, web1, web2, manager, a database node (db1, db2, ...)
                or db-primary (the node that is primary now)
  restore NAME  start it again; a database node comes back read-only and
                rejoins as a replica (db-primary: the primary killed last)`

// runChaos is `fulcrum chaos kill|restore NAME`: it asks the running stack
// (found through DIR/stack.json) to break or restore one of its parts.
func runChaos(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "chaos", chaosUsage+"\n")
	dir := fs.String("dir", defaultStackDir(), "state directory of the running stack (as given to fulcrum up)")
	// Flags may come before or after the action and the name.
	var pos []string
	rest := args
	for {
		if ok, st := parseFlags(fs, rest); !ok {
			return st
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 2 || (pos[0] != "kill" && pos[0] != "restore") {
		fs.Usage()
		return exitUsage
	}
	c, err := stack.Dial(*dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum chaos: %v\n", err)
		return exitFailure
	}
	msg, err := c.Chaos(ctx, pos[0], pos[1])
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum chaos %s %s: %v\n", pos[0], pos[1], err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, msg)
	return exitOK
}
