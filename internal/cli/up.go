package cli

import "context"

func runUp(ctx context.Context, e env, args []string) int { return notYet(e, "up") }
