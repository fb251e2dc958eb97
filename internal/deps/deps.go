// Package deps pins modules that packages under construction will use; it is
// deleted once they import them.
package deps

import (
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/mdlayher/arp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/net/ipv4"
	_ "golang.org/x/sys/unix"
)
