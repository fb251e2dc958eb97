package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"fulcrum/internal/stack"
)

// runStatus is `fulcrum status`: the topology and health of the stack
// running from a state directory, from any terminal.
func runStatus(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "status", "status [--dir DIR] [--json] [--events N]")
	dir := fs.String("dir", defaultStackDir(), "state directory of the running stack (as given to fulcrum up)")
	asJSON := fs.Bool("json", false, "print the state as JSON")
	events := fs.Int("events", 10, "how many recent events to print")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	c, err := stack.Dial(*dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum status: %v\n", err)
		return exitFailure
	}
	st, err := c.State(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return exitOK
	}
	_ = stack.WriteStatus(e.stdout, st, *events)
	return exitOK
}
