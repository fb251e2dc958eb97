package cli

import "context"

func runChaos(ctx context.Context, e env, args []string) int { return notYet(e, "chaos") }
