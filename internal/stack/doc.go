// Package stack is `fulcrum up`: the whole design of DESIGN-SEED.txt on one
// machine (issue 5). It starts a MariaDB primary and replicas (through
// internal/dbha's local cluster), the DB manager, two web/app servers with
// the guestbook and a VRRP pair of load balancers in local mode sharing one
// front address, each as a child process of the fulcrum binary, so that
// chaos can kill -9 a real process and watch the rest heal around it.
//
// A child that dies is reported as an event and is not restarted: the
// point is to see the stack keep serving without it. Restore starts it
// again. The dashboard (dashboard.go) draws the topology and serves the
// JSON API under /api/ that `fulcrum status` and `fulcrum chaos` use;
// they find it through DIR/stack.json (client.go).
//
// Sources of truth are never duplicated: which load balancer is active is
// the one whose process holds the front address's listening socket (the
// VRRP election decides it); which database node is primary is what the
// manager reads from the servers' read_only flags.
package stack
