package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseSSHConnection(t *testing.T) {
	for _, tc := range []struct {
		in           string
		client, serv string
		ok           bool
	}{
		{"203.0.113.9 51234 192.0.2.21 22", "203.0.113.9:51234", "192.0.2.21:22", true},
		{"2001:db8::9 51234 2001:db8::21 2222", "[2001:db8::9]:51234", "[2001:db8::21]:2222", true},
		{"::ffff:203.0.113.9 51234 ::ffff:192.0.2.21 22", "203.0.113.9:51234", "192.0.2.21:22", true},
		{"fe80::1%eth0 51234 fe80::2%eth0 22", "[fe80::1%eth0]:51234", "[fe80::2%eth0]:22", true},
		{"", "", "", false},
		{"203.0.113.9 51234 192.0.2.21", "", "", false},
		{"203.0.113.9 51234 192.0.2.21 22 extra", "", "", false},
		{"203.0.113.9  51234 192.0.2.21 22", "", "", false},
		{"203.0.113.9 0 192.0.2.21 22", "", "", false},
		{"203.0.113.9 51234 192.0.2.21 65536", "", "", false},
		{"host.example 51234 192.0.2.21 22", "", "", false},
		{"203.0.113.9 -1 192.0.2.21 22", "", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSSHConnection(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseSSHConnection(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if got.Client.String() != tc.client || got.Server.String() != tc.serv {
				t.Errorf("ParseSSHConnection(%q) = %s → %s, want %s → %s", tc.in, got.Client, got.Server, tc.client, tc.serv)
			}
		})
	}
}

func TestCheckSSH(t *testing.T) {
	open := defaultTopology(t)
	restricted := defaultTopology(t)
	restricted.SSHFrom = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	moved := defaultTopology(t)
	moved.SSHPort = 2222
	for _, tc := range []struct {
		name string
		topo *Topology
		host string
		conn string
		ok   bool
	}{
		{"open to anywhere", open, "web1", "198.51.100.7 50000 192.0.2.21 22", true},
		{"open to anywhere, v6", open, "web1", "2001:db8::7 50000 2001:db8::21 22", true},
		{"inside --ssh-from", restricted, "web1", "203.0.113.200 50000 192.0.2.21 22", true},
		{"outside --ssh-from", restricted, "web1", "198.51.100.7 50000 192.0.2.21 22", false},
		{"v6 with only v4 allowed", restricted, "web1", "2001:db8::7 50000 2001:db8::21 22", false},
		{"mapped v4 inside --ssh-from", restricted, "web1", "::ffff:203.0.113.200 50000 ::ffff:192.0.2.21 22", true},
		{"session on another port than --ssh-port", moved, "db1", "198.51.100.7 50000 192.0.2.31 22", false},
		{"session on --ssh-port", moved, "db1", "198.51.100.7 50000 192.0.2.31 2222", true},
		{"session through a port the roles open", moved, "lb1", "198.51.100.7 50000 192.0.2.11 443", true},
		{"over loopback", restricted, "web1", "127.0.0.1 50000 127.0.0.1 22", true},
		{"link-local with a zone", restricted, "web1", "fe80::1%eth0 50000 fe80::2%eth0 22", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Plan(tc.topo, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseSSHConnection(tc.conn)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckSSH(rs, c)
			if (err == nil) != tc.ok {
				t.Errorf("CheckSSH(%q) = %v, want ok %v", tc.conn, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrSSHCutOff) {
				t.Errorf("CheckSSH(%q) = %v, want ErrSSHCutOff", tc.conn, err)
			}
		})
	}
}

func TestSSHConnectionEnv(t *testing.T) {
	proc := t.TempDir()
	// 40 (fulcrum) ← 30 (sudo, env reset) ← 20 (login shell) ← 10 (sshd) ← 1
	for _, p := range []struct {
		pid, ppid int
		environ   string
	}{
		{40, 30, "PATH=/usr/bin\x00"},
		{30, 20, "SUDO_USER=ops\x00"},
		{20, 10, "HOME=/home/ops\x00SSH_CONNECTION=203.0.113.9 50000 192.0.2.21 22\x00"},
		{10, 1, ""},
		{50, 60, ""}, // 60 has exited
	} {
		dir := filepath.Join(proc, strconv.Itoa(p.pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		status := fmt.Sprintf("Name:\tx\nPid:\t%d\nPPid:\t%d\n", p.pid, p.ppid)
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "environ"), []byte(p.environ), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	none := func(string) string { return "" }
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		pid    int
		want   string
	}{
		{"own environment first", func(string) string { return "198.51.100.7 1 192.0.2.21 22" }, 40, "198.51.100.7 1 192.0.2.21 22"},
		{"from the login shell under sudo", none, 40, "203.0.113.9 50000 192.0.2.21 22"},
		{"no session", none, 10, ""},
		{"ancestor gone", none, 50, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SSHConnectionEnv(tc.getenv, proc, tc.pid); got != tc.want {
				t.Errorf("SSHConnectionEnv() = %q, want %q", got, tc.want)
			}
		})
	}
}
