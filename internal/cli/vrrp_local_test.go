package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

// lbProcess is a `fulcrum lb` child process.
type lbProcess struct {
	cmd  *exec.Cmd
	logs logFile
}

func startLBProcess(t *testing.T, dir, name, cfg string) *lbProcess {
	t.Helper()
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fulcrumBinary(t), "lb", "-c", file)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lbProcess{cmd: cmd, logs: logFile{lf}}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		lf.Close()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logs.String())
		}
	})
	return p
}

// Two LBs in VRRP local mode share a front address: kill -9 the master while
// a client sends requests; the backup takes the address over. The longest
// gap the client sees is reported.
func TestVRRPLocalFailover(t *testing.T) {
	testenv.Short(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	front := testenv.FreeAddr(t, "tcp")
	udp1, udp2 := testenv.FreeAddr(t, "udp"), testenv.FreeAddr(t, "udp")
	dir := t.TempDir()
	cfg := func(prio int, listen, peer, admin string) string {
		return fmt.Sprintf(`
admin: %s
vrrp:
  mode: local
  virtual_router_id: 51
  priority: %d
  advert_interval: 100ms
  local: {address: "%s", listen: "%s", peers: ["%s"]}
frontends: [{name: www, bind: ["%s"], default_backend: web, access_log: false}]
backends: [{name: web, servers: [{name: s, address: "%s"}]}]
`, admin, prio, front, listen, peer, front, backend.Listener.Addr())
	}
	admin2 := testenv.FreeAddr(t, "tcp")
	lb1 := startLBProcess(t, dir, "lb1", cfg(150, udp1, udp2, testenv.FreeAddr(t, "tcp")))
	waitFor(t, func() bool { return dialOK(front) })
	lb2 := startLBProcess(t, dir, "lb2", cfg(100, udp2, udp1, admin2))
	time.Sleep(500 * time.Millisecond) // lb2 hears lb1 and stays backup
	vrrpState := func() string {
		resp, err := http.Get("http://" + admin2 + "/api/vrrp")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var st []struct{ State string }
		if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st) != 1 {
			return "?"
		}
		return st[0].State
	}
	if got := vrrpState(); got != "backup" {
		t.Errorf("lb2 /api/vrrp state = %q before the kill, want backup", got)
	}

	// A client sending continuously; record the longest run of failures.
	stop := make(chan struct{})
	var mu sync.Mutex
	var lastOK time.Time
	var gap time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://" + front + "/")
			now := time.Now()
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if !lastOK.IsZero() && now.Sub(lastOK) > gap {
					gap = now.Sub(lastOK)
				}
				lastOK = now
				mu.Unlock()
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	lb1.cmd.Process.Signal(syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !lastOK.After(killed) {
		t.Fatalf("no request succeeded after the master was killed")
	}
	// Master_Down_Interval at 100ms adverts is 3×100ms + skew ≈ 361ms.
	if gap > time.Second {
		t.Errorf("client-side gap = %v, want under 1s", gap)
	}
	t.Logf("client-side gap after kill -9 of the master: %v", gap)
	if got := vrrpState(); got != "master" {
		t.Errorf("lb2 /api/vrrp state = %q after the kill, want master", got)
	}
	if got := lb2.logs.String(); !strings.Contains(strings.ToLower(got), "master") {
		t.Errorf("lb2 log does not mention becoming master:\n%s", got)
	}
}

func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}
