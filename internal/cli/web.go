package cli

import "context"

func runWeb(ctx context.Context, e env, args []string) int { return notYet(e, "web") }
