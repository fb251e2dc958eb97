// Package e2e runs the whole stack as a user would: `fulcrum up` from the
// built binary, a client sending guestbook traffic through the front
// address, and `fulcrum chaos` killing and restoring one part after
// another (issue 5's proof).
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/stack"
	"fulcrum/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuild()
	os.Exit(code)
}

// upProcess is a running `fulcrum up`.
type upProcess struct {
	bin, dir, dashboard, front, frontTLS string
	cmd                                  *exec.Cmd
	out                                  *os.File
	done                                 chan struct{}
}

// startUp runs `fulcrum up` on free ports in a temporary directory. Its
// cleanup stops it and checks that nothing is left behind.
func startUp(t *testing.T, replicas int) *upProcess {
	t.Helper()
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db")
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	u := &upProcess{bin: bin, dir: filepath.Join(tmp, "state"), dashboard: testenv.FreeAddr(t, "tcp"), front: testenv.FreeAddr(t, "tcp"), frontTLS: testenv.FreeAddr(t, "tcp"), done: make(chan struct{})}
	cfg := fmt.Sprintf(`front: %q
front_tls: %q
dashboard: %q
lbs:
  - {name: lb1, admin: %q, vrrp_listen: %q}
  - {name: lb2, admin: %q, vrrp_listen: %q}
webs:
  - {name: web1, listen: %q, admin: %q}
  - {name: web2, listen: %q, admin: %q}
db: {base_port: %d, writes: %q, reads: %q, manager: %q}
`, u.front, u.frontTLS, u.dashboard, testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "udp"), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "udp"), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp"),
		testenv.FreeRange(t, replicas+1), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp"))
	file := filepath.Join(tmp, "stack.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if u.out, err = os.Create(filepath.Join(tmp, "up.out")); err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command(bin, "up", "-c", file, "--dir", u.dir, "--fresh", "--replicas", strconv.Itoa(replicas))
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.cmd.Wait(); close(u.done) }()
	t.Cleanup(func() { u.stop(t) })
	return u
}

// stop sends SIGTERM and checks that fulcrum up, its children and the
// database nodes are all gone within 15s; whatever is left is killed.
func (u *upProcess) stop(t *testing.T) {
	var pids []int
	if f, err := stack.ReadFile(u.dir); err == nil {
		for _, p := range f.Children {
			pids = append(pids, p)
		}
	}
	nodePIDs, _ := filepath.Glob(filepath.Join(u.dir, "db", "*", "mariadbd.pid"))
	for _, pf := range nodePIDs {
		if b, err := os.ReadFile(pf); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				pids = append(pids, p)
			}
		}
	}
	begin := time.Now()
	u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.done:
		t.Logf("fulcrum up stopped %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
		if d := time.Since(begin); d > 15*time.Second {
			t.Errorf("fulcrum up took %v to stop, want under 15s", d)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("fulcrum up still runs 20s after SIGTERM; killing it")
		u.cmd.Process.Kill()
		<-u.done
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d (%s) left behind after fulcrum up stopped; killing it", p, comm(p))
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	u.out.Close()
	if t.Failed() {
		out, _ := os.ReadFile(u.out.Name())
		t.Logf("fulcrum up output:\n%s", lastLines(string(out), 40))
		for _, name := range []string{"up", "lb1", "lb2", "web1", "web2", "manager"} {
			b, _ := os.ReadFile(filepath.Join(u.dir, "logs", name+".log"))
			t.Logf("%s.log (last lines):\n%s", name, lastLines(string(b), 25))
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// state reads the stack's /api/state.
func (u *upProcess) state(t *testing.T) *stack.State {
	t.Helper()
	c := &stack.Client{Addr: u.dashboard, HTTP: &http.Client{Timeout: 5 * time.Second}}
	st, err := c.State(context.Background())
	if err != nil {
		return nil
	}
	return st
}

// waitFor polls cond until it holds or limit passes.
func (u *upProcess) waitFor(t *testing.T, what string, limit time.Duration, cond func(*stack.State) bool) *stack.State {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-u.done:
			t.Fatalf("fulcrum up exited while waiting for %s", what)
		default:
		}
		st := u.state(t)
		if st != nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			if st != nil {
				stack.WriteStatus(&b, st, 20)
			}
			t.Fatalf("%s: not within %v; state:\n%s", what, limit, b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// healthy: the site answers through the front address, every component
// runs, every web server is healthy and every database node has a role.
func healthy(st *stack.State) bool {
	if !st.FrontUp || st.ActiveLB == "" || st.Primary == "" || !st.Manager.Running {
		return false
	}
	for _, l := range st.LBs {
		if !l.Running {
			return false
		}
	}
	for _, w := range st.Webs {
		if !w.Running || !w.Healthy {
			return false
		}
	}
	for _, n := range st.DB {
		if !n.Running || (n.Role != "primary" && n.Role != "replica") {
			return false
		}
	}
	return true
}

// chaos runs `fulcrum chaos ACTION NAME --dir DIR` and returns its output.
func (u *upProcess) chaos(t *testing.T, action, name string) string {
	t.Helper()
	out, err := exec.Command(u.bin, "chaos", action, name, "--dir", u.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("fulcrum chaos %s %s: %v: %s", action, name, err, out)
	}
	t.Logf("fulcrum chaos %s %s: %s", action, name, strings.TrimSpace(string(out)))
	return string(out)
}
