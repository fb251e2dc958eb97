package cli

import "context"

func runStatus(ctx context.Context, e env, args []string) int { return notYet(e, "status") }
