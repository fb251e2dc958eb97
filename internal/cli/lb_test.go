package cli

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

func TestLBCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("frontends: [{name: f, bind: [\"127.0.0.1:8080\"], default_backend: b}]\nbackends: [{name: b, servers: [{name: s, address: \"127.0.0.1:9101\"}]}]\n"), 0o600)
	os.WriteFile(bad, []byte("frontends: [{name: f, bind: [\"127.0.0.1:8080\"], default_backend: b}]\nbackends:\n  - name: b\n    servers: [{name: s, address: \"127.0.0.1:9101\", weight: 999}]\n"), 0o600)
	tests := []struct {
		args   []string
		status int
		out    string
	}{
		{[]string{"lb", "-c", good, "--check"}, 0, "valid"},
		{[]string{"lb", "-c", bad, "--check"}, 2, bad + ":4: backends[0].servers[0].weight: 999: must be 0..256"},
		{[]string{"lb", "-c", bad}, 2, "must be 0..256"},
		{[]string{"lb", "-c", filepath.Join(dir, "missing.yaml")}, 2, "no such file"},
		{[]string{"lb"}, 2, "-c FILE is required"},
		{[]string{"lb", "--help"}, 0, "Usage: fulcrum lb"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"version"}, 0, "fulcrum"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			st := Main(tt.args, nil, &out, &out)
			if st != tt.status {
				t.Errorf("exit status = %d, want %d (output %q)", st, tt.status, out.String())
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Errorf("output = %q, want it to contain %q", out.String(), tt.out)
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuild()
	os.Exit(code)
}

func fulcrumBinary(t *testing.T) string {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Acceptance: SIGUSR2 starts the new binary, hands it the sockets and the
// old process drains: no request fails across the upgrade. SIGHUP with a
// broken file keeps the running configuration; SIGTERM exits 0.
func TestLBUpgradeReloadAndStop(t *testing.T) {
	testenv.Short(t)
	bin := fulcrumBinary(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	front, adminAddr := testenv.FreeAddr(t, "tcp"), testenv.FreeAddr(t, "tcp")
	dir := t.TempDir()
	file := filepath.Join(dir, "lb.yaml")
	cfg := fmt.Sprintf("admin: %s\nfrontends: [{name: www, bind: [\"%s\"], default_backend: web, access_log: false}]\nbackends: [{name: web, servers: [{name: s, address: \"%s\"}]}]\n", adminAddr, front, backend.Listener.Addr())
	os.WriteFile(file, []byte(cfg), 0o600)
	// A file, not a pipe: the successor inherits it, and Wait would wait
	// for a pipe to close.
	lf, err := os.Create(filepath.Join(dir, "lb.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	logs := logFile{lf}
	cmd := exec.Command(bin, "lb", "-c", file)
	cmd.Stdout, cmd.Stderr = logs.f, logs.f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// The successor, should the test stop before it does.
		if i := strings.Index(logs.String(), `started the new process" pid=`); i >= 0 {
			var pid int
			fmt.Sscanf(logs.String()[i+len(`started the new process" pid=`):], "%d", &pid)
			if p, err := os.FindProcess(pid); err == nil && pid > 0 {
				p.Kill()
			}
		}
	})
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// Load throughout.
	load := (&testenv.Load{URL: "http://" + front + "/"}).Start()
	time.Sleep(300 * time.Millisecond)

	// A broken file on SIGHUP: rejected, still serving.
	os.WriteFile(file, []byte("frontends: [\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "reload rejected") })
	os.WriteFile(file, []byte(cfg), 0o600)
	// The admin API reloads too.
	resp, err := http.Post("http://"+adminAddr+"/api/reload", "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /api/reload = %v %v, want 200", resp, err)
	}
	resp.Body.Close()

	cmd.Process.Signal(syscall.SIGUSR2)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("old process exit = %v, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("old process did not exit after the upgrade; logs:\n%s", logs.String())
	}
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	sent, failed, first := load.Result()
	if failed != 0 {
		t.Errorf("%d of %d requests failed across reload and upgrade (first: %v)", failed, sent, first)
	}
	// The successor serves; SIGTERM stops it with status 0.
	pid := successorPID(t, logs.String())
	for _, u := range []string{"http://" + front + "/", "http://" + adminAddr + "/api/status"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after upgrade: GET %s = %v %v, want 200 (admin socket handed over too)", u, resp, err)
		}
		resp.Body.Close()
	}
	p, _ := os.FindProcess(pid)
	p.Signal(syscall.SIGTERM)
	waitFor(t, func() bool { return p.Signal(syscall.Signal(0)) != nil })
	t.Logf("%d requests, %d failed; successor pid %d", sent, failed, pid)
}

func successorPID(t *testing.T, logs string) int {
	t.Helper()
	i := strings.Index(logs, `started the new process" pid=`)
	if i < 0 {
		t.Fatalf("no successor in logs:\n%s", logs)
	}
	var pid int
	fmt.Sscanf(logs[i+len(`started the new process" pid=`):], "%d", &pid)
	return pid
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 10s")
}

type logFile struct {
	f *os.File
}

func (l logFile) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}
