package cli

import "context"

func runFirewall(ctx context.Context, e env, args []string) int { return notYet(e, "firewall") }
