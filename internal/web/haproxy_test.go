package web

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// TestHealthzWithHAProxy lets the real checker judge /healthz: HAProxy's
// HTTP check, with its default method (OPTIONS), marks a server without a
// database UP and one whose database has no primary DOWN.
func TestHealthzWithHAProxy(t *testing.T) {
	testenv.Short(t)
	haproxy := testenv.Program(t, "haproxy")[0]

	up := newTestServer(t, &config.Web{Name: "up", Static: &config.Static{Root: t.TempDir()}})
	upAddr, _ := serve(t, up)
	down := newTestServer(t, &config.Web{Name: "nodb", App: "guestbook",
		Database: &config.WebDatabase{Nodes: []string{"127.0.0.1:1"}, User: "app", Name: "guestbook", Password: "x"}})
	downAddr, _ := serve(t, down)

	dir, err := os.MkdirTemp("", "fulcrum-hc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	conf := fmt.Sprintf(`global
  stats socket %s mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
backend web
  option httpchk
  http-check send uri /healthz
  server up %s check inter 100ms rise 1 fall 1
  server nodb %s check inter 100ms rise 1 fall 1
`, sock, upAddr, downAddr)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-db", "-f", cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	want := map[string]string{"up": "UP", "nodb": "DOWN"}
	var got map[string]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = serverStates(sock)
		if got["up"] == want["up"] && got["nodb"] == want["nodb"] {
			t.Logf("HAProxy states: %v", got)
			return
		}
	}
	t.Errorf("HAProxy states = %v, want %v", got, want)
}

// serverStates reads "show stat" from HAProxy's admin socket: the status of
// each server of backend web.
func serverStates(sock string) map[string]string {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	fmt.Fprintln(c, "show stat")
	sc := bufio.NewScanner(c)
	states := map[string]string{}
	status := -1
	for sc.Scan() {
		f := strings.Split(strings.TrimPrefix(sc.Text(), "# "), ",")
		if status < 0 {
			for i, name := range f {
				if name == "status" {
					status = i
				}
			}
			continue
		}
		if len(f) > status && f[0] == "web" && f[1] != "BACKEND" {
			states[f[1]] = f[status]
		}
	}
	return states
}
