package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"fulcrum/internal/config"
	"fulcrum/internal/firewall"
)

const firewallUsage = `firewall plan|apply|remove [flags]

  plan    print the nftables ruleset of --host (nft syntax)
  apply   install it as table inet fulcrum, replacing the previous one atomically
  remove  delete table inet fulcrum (other tables are untouched)`

// runFirewall is `fulcrum firewall`: the host firewall of issue 9.
func runFirewall(ctx context.Context, e env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.stderr, "Usage: fulcrum %s\n", firewallUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "plan", "apply":
	case "remove":
		fs := newFlags(e, "firewall remove", "firewall remove")
		if ok, st := parseFlags(fs, args); !ok {
			return st
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(e.stderr, "fulcrum firewall remove: unexpected argument %q\n", fs.Arg(0))
			return exitUsage
		}
		if err := (firewall.Installer{}).Remove(); err != nil {
			fmt.Fprintf(e.stderr, "fulcrum firewall remove: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(e.stdout, "removed table inet %s\n", firewall.TableName)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "fulcrum firewall: unknown subcommand %q\nUsage: fulcrum %s\n", sub, firewallUsage)
		return exitUsage
	}

	fs := newFlags(e, "firewall "+sub, "firewall "+sub+" --host NAME [-c stack.yaml] [--hosts NAME=ADDR,…] [--ssh-port N] [--ssh-from CIDR,…] [--monitoring CIDR,…]"+map[string]string{"apply": " [--force]"}[sub])
	host := fs.String("host", "", "the node whose host the ruleset is for (lb1, web1, db1, …); every node at its address adds its roles")
	file := fs.String("c", "", "stack file giving the nodes and their ports (optional)")
	hosts := fs.String("hosts", "", "node addresses, NAME=ADDR,… overriding the stack's hosts (default: lb 192.0.2.11.., web .21.., db .31..; db-manager beside the last db node)")
	sshPort := fs.Uint("ssh-port", 22, "SSH server port")
	sshFrom := fs.String("ssh-from", "", "networks allowed to SSH, CIDR,… (default: anywhere)")
	monitoring := fs.String("monitoring", "", "networks allowed to the admin and /metrics ports, CIDR,… (default: the stack's monitor address; \"\": none)")
	var force *bool
	if sub == "apply" {
		force = fs.Bool("force", false, "apply even if the ruleset would refuse new connections like this SSH session ($SSH_CONNECTION)")
	}
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	usageErr := func(err error) int {
		fmt.Fprintf(e.stderr, "fulcrum firewall %s: %v\n", sub, err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *host == "" {
		return usageErr(errors.New("--host is required"))
	}
	if *sshPort < 1 || *sshPort > 65535 {
		return usageErr(fmt.Errorf("--ssh-port %d: must be 1..65535", *sshPort))
	}
	cfg := config.DefaultStack()
	if *file != "" {
		c, err := config.LoadStack(*file)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitUsage
		}
		cfg = c
	}
	topo, err := firewall.FromStack(cfg)
	if err != nil {
		return usageErr(err)
	}
	topo.SSHPort = uint16(*sshPort)
	if topo.SSHFrom, err = firewall.ParsePrefixes(*sshFrom); err != nil {
		return usageErr(fmt.Errorf("--ssh-from: %w", err))
	}
	if flagSet(fs, "monitoring") {
		if topo.Monitoring, err = firewall.ParsePrefixes(*monitoring); err != nil {
			return usageErr(fmt.Errorf("--monitoring: %w", err))
		}
	}
	as, err := firewall.ParseAssignments(*hosts)
	if err != nil {
		return usageErr(fmt.Errorf("--hosts: %w", err))
	}
	for name, a := range as {
		if err := topo.SetAddr(name, a); err != nil {
			return usageErr(fmt.Errorf("--hosts: %w", err))
		}
	}
	rs, err := firewall.Plan(topo, *host)
	if err != nil {
		return usageErr(err)
	}
	if sub == "plan" {
		fmt.Fprint(e.stdout, rs.String())
		return exitOK
	}
	return applyFirewall(e, rs, *force)
}

func applyFirewall(e env, rs *firewall.Ruleset, force bool) int {
	if s := firewall.SSHConnectionEnv(os.Getenv, "/proc", os.Getpid()); s != "" {
		conn, err := firewall.ParseSSHConnection(s)
		if err == nil {
			err = firewall.CheckSSH(rs, conn)
		}
		if err != nil {
			if !force {
				fmt.Fprintf(e.stderr, "fulcrum firewall apply: refusing: %v\n", err)
				return exitFailure
			}
			fmt.Fprintf(e.stderr, "fulcrum firewall apply: --force: %v\n", err)
		}
	}
	if err := (firewall.Installer{}).Apply(rs); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum firewall apply: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "applied table inet %s for %s\n", firewall.TableName, rs.Host)
	return exitOK
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
