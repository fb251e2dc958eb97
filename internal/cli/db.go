package cli

import "context"

func runDB(ctx context.Context, e env, args []string) int { return notYet(e, "db") }
