// Package netns builds separate hosts on one Linux machine: one network
// namespace per host, each with an interface eth0 on a shared bridge.
// `fulcrum up --netns` runs each part of the stack inside its host.
//
// The bridge lives in a namespace of its own and this machine's own
// namespace is not on the network: the hosts' addresses may be anything,
// even the machine's own network, and their traffic never leaves them.
// Programs reach the hosts from inside one (Command, Dialer).
package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Host is one host to create.
type Host struct {
	Name string
	Addr netip.Addr
}

// Net is a created set of hosts.
type Net struct {
	prefix  string
	network netip.Prefix
	hosts   []Host
}

// Dir is where `ip netns add` mounts namespaces.
const Dir = "/run/netns"

// Create makes the namespaces prefix+host.Name for every host, and
// prefix+"sw" for the bridge, with each host at its address on network.
// Namespaces left by an earlier run of the same prefix that no process
// uses any more are removed first; if a process still runs in one, Create
// fails. On error, whatever was made is removed.
func Create(prefix string, network netip.Prefix, hosts []Host) (n *Net, err error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("netns: the ip command (Debian package iproute2) is not installed")
	}
	n = &Net{prefix: prefix, network: network.Masked(), hosts: hosts}
	if err := n.removeStale(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Remove()
		}
	}()
	sw := prefix + "sw"
	bits := fmt.Sprint(network.Bits())
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0"},
		{"-n", sw, "link", "set", "br0", "up"},
		{"-n", sw, "link", "set", "lo", "up"},
	}
	for i, h := range hosts {
		ns, port := prefix+h.Name, fmt.Sprintf("p%d", i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			// No IPv6 duplicate address detection: addresses are unique
			// here by construction, and a tentative link-local address
			// could not send (VRRPv3 adverts) until it ends. Set before
			// eth0 arrives, which takes the namespace's defaults.
			[]string{"netns", "exec", ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad 2>/dev/null || true"},
			// Created inside the switch with the other end moved straight
			// into the host: this machine never sees either end.
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", h.Addr.String() + "/" + bits, "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"})
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// names are the namespaces of the net, the switch last.
func (n *Net) names() []string {
	var out []string
	for _, h := range n.hosts {
		out = append(out, n.prefix+h.Name)
	}
	return append(out, n.prefix+"sw")
}

func exists(ns string) bool {
	_, err := os.Stat(filepath.Join(Dir, ns))
	return err == nil
}

// removeStale removes the namespaces of an earlier run that died without
// removing them, unless a process still runs in one.
func (n *Net) removeStale() error {
	var stale []string
	for _, ns := range n.names() {
		if !exists(ns) {
			continue
		}
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return fmt.Errorf("netns: ip netns pids %s: %v", ns, err)
		}
		if pids := strings.Fields(string(out)); len(pids) > 0 {
			return fmt.Errorf("netns: namespace %s exists and processes %s run in it: is another `fulcrum up --netns` running?",
				ns, strings.Join(pids, " "))
		}
		stale = append(stale, ns)
	}
	for _, ns := range stale {
		if err := ip("netns", "del", ns); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the namespaces (and with them the bridge and the
// cables). Processes must have been stopped first: a namespace lives on,
// unnamed, while a process runs in it.
func (n *Net) Remove() error {
	var errs []error
	for _, ns := range n.names() {
		if exists(ns) {
			errs = append(errs, ip("netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// NS returns the namespace name of the named host.
func (n *Net) NS(host string) string { return n.prefix + host }

// Hosts returns the hosts.
func (n *Net) Hosts() []Host { return append([]Host(nil), n.hosts...) }

// Command returns a command that runs name inside the host's namespace
// (`ip netns exec`, which execs it: the process keeps the command's pid).
func (n *Net) Command(host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.NS(host), name}, args...)...)
}

// Open opens the host's namespace, for netlink calls into it (nftables).
func (n *Net) Open(host string) (*os.File, error) {
	return os.Open(filepath.Join(Dir, n.NS(host)))
}

// SetLink takes the host's cable out of the bridge (up false) or puts it
// back: a network partition of that host.
func (n *Net) SetLink(host string, up bool) error {
	for i, h := range n.hosts {
		if h.Name == host {
			state := "down"
			if up {
				state = "up"
			}
			return ip("-n", n.prefix+"sw", "link", "set", fmt.Sprintf("p%d", i), state)
		}
	}
	return fmt.Errorf("netns: no host %q", host)
}

// Addr returns the named host's address (invalid when there is none).
func (n *Net) Addr(host string) netip.Addr {
	for _, h := range n.hosts {
		if h.Name == host {
			return h.Addr
		}
	}
	return netip.Addr{}
}
