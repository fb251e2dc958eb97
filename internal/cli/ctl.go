package cli

import "context"

func runCtl(ctx context.Context, e env, args []string) int { return notYet(e, "ctl") }
