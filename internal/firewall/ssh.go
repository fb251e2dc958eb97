package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrSSHCutOff is returned by CheckSSH when the ruleset would refuse a new
// connection like the SSH session it is applied from.
var ErrSSHCutOff = errors.New("firewall: the ruleset would refuse this SSH session")

// SSHConn is the session described by OpenSSH's $SSH_CONNECTION.
type SSHConn struct {
	Client, Server netip.AddrPort
}

// ParseSSHConnection parses $SSH_CONNECTION: "CLIENT_IP CLIENT_PORT
// SERVER_IP SERVER_PORT", separated by single spaces (sshd(8),
// ENVIRONMENT). IPv4-mapped addresses are unmapped; a zone is kept.
func ParseSSHConnection(s string) (SSHConn, error) {
	f := strings.Split(s, " ")
	if len(f) != 4 {
		return SSHConn{}, fmt.Errorf("firewall: SSH_CONNECTION %q: want 4 fields, client ip and port, server ip and port", s)
	}
	var ap [2]netip.AddrPort
	for i := range ap {
		a, err := netip.ParseAddr(f[2*i])
		if err != nil {
			return SSHConn{}, fmt.Errorf("firewall: SSH_CONNECTION %q: address %q: %w", s, f[2*i], err)
		}
		p, err := strconv.ParseUint(f[2*i+1], 10, 16)
		if err != nil || p == 0 {
			return SSHConn{}, fmt.Errorf("firewall: SSH_CONNECTION %q: port %q: must be 1..65535", s, f[2*i+1])
		}
		ap[i] = netip.AddrPortFrom(a.Unmap(), uint16(p))
	}
	return SSHConn{Client: ap[0], Server: ap[1]}, nil
}

// CheckSSH reports whether rs's input chain accepts a new connection from
// the session's client to its server port. The session itself would
// survive as an established connection; what the check protects is the
// next login, and any session that has to reconnect.
func CheckSSH(rs *Ruleset, c SSHConn) error {
	in := rs.Chain("input")
	if in == nil {
		return fmt.Errorf("firewall: ruleset has no input chain")
	}
	p := Packet{Src: c.Client.Addr(), Dst: c.Server.Addr(), Proto: TCP, DPort: c.Server.Port(), CtState: CtNew}
	if c.Client.Addr().Unmap().WithZone("").IsLoopback() {
		p.IIFName = "lo"
	}
	if v, _ := Evaluate(in, p); v != Accept {
		return fmt.Errorf("%w: a new connection from %s to port %d would be dropped (open SSH to it with --ssh-from or --ssh-port, or use --force)",
			ErrSSHCutOff, c.Client.Addr(), c.Server.Port())
	}
	return nil
}

// SSHConnectionEnv returns $SSH_CONNECTION of the session the process
// runs in: getenv's answer, else that of the nearest ancestor process that
// has it in its initial environment (read from procDir, normally /proc).
// The fallback matters because sudo, with Debian's default env_reset, drops
// the variable while the user's login shell still holds it. It gives up
// after 32 ancestors or at pid 1.
func SSHConnectionEnv(getenv func(string) string, procDir string, pid int) string {
	if s := getenv("SSH_CONNECTION"); s != "" {
		return s
	}
	for range 32 {
		ppid, err := parentPID(procDir, pid)
		if err != nil || ppid <= 1 {
			return ""
		}
		pid = ppid
		environ, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("SSH_CONNECTION=")); ok && len(v) > 0 {
				return string(v)
			}
		}
	}
	return ""
}

// parentPID reads the PPid line of /proc/PID/status (proc(5)).
func parentPID(procDir string, pid int) (int, error) {
	status, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("firewall: %s/%d/status: no PPid line", procDir, pid)
}
