package firewall_test

import (
	"fmt"
	"net/netip"

	"fulcrum/internal/firewall"
)

// The ruleset of web1 in the default topology, and what it lets through.
func ExamplePlan() {
	topo, err := firewall.FromStack(nil) // the built-in stack: lb1, lb2, web1, web2, db1, db2
	if err != nil {
		panic(err)
	}
	rs, err := firewall.Plan(topo, "web1")
	if err != nil {
		panic(err)
	}
	web1 := topo.Node("web1").Addr
	for _, from := range []string{"lb1", "web2", "db1"} {
		fmt.Printf("%s → web1: tcp %v\n", from, rs.Ports(topo.Node(from).Addr, web1))
	}
	fmt.Printf("monitoring → web1: tcp %v\n", rs.Ports(netip.MustParseAddr("192.0.2.5"), web1))
	// Output:
	// lb1 → web1: tcp [22 9101]
	// web2 → web1: tcp [22]
	// db1 → web1: tcp [22]
	// monitoring → web1: tcp [22 9111]
}

// The SSH guard of `fulcrum firewall apply`.
func ExampleCheckSSH() {
	topo, _ := firewall.FromStack(nil)
	topo.SSHFrom = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	rs, _ := firewall.Plan(topo, "db1")
	for _, env := range []string{"203.0.113.9 50000 192.0.2.31 22", "198.51.100.7 50000 192.0.2.31 22"} {
		c, _ := firewall.ParseSSHConnection(env)
		fmt.Println(c.Client.Addr(), firewall.CheckSSH(rs, c) == nil)
	}
	// Output:
	// 203.0.113.9 true
	// 198.51.100.7 false
}
