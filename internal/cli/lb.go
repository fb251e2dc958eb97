package cli

import "context"

func runLB(ctx context.Context, e env, args []string) int { return notYet(e, "lb") }
