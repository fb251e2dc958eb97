// Command fulcrum runs the roles of a highly available web stack: load
// balancer, web/app server, database manager, and all of them at once.
package main

import (
	"os"

	"fulcrum/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
