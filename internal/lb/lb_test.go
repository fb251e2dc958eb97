package lb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// TestMain doubles as a backend server process, so tests can kill -9 a real
// process: FULCRUM_TEST_BACKEND=name serves HTTP on the listener passed as
// fd 3 until killed.
func TestMain(m *testing.M) {
	if name := os.Getenv("FULCRUM_TEST_BACKEND"); name != "" {
		ln, err := net.FileListener(os.NewFile(3, "listener"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Server", name)
			io.WriteString(w, name)
		}))
		os.Exit(0)
	}
	code := m.Run()
	testenv.RemoveBuild()
	os.Exit(code)
}

// backendProcess starts a backend server process named name and returns its
// address and process.
func backendProcess(t *testing.T, name string) (string, *os.Process) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FULCRUM_TEST_BACKEND="+name)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	addr := ln.Addr().String()
	ln.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return addr, cmd.Process
}

func startLB(t *testing.T, yaml string) *LB {
	t.Helper()
	cfg, err := config.ParseLB("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	l, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l
}

// Acceptance: a sustained load of GETs while one of two backends is killed
// with SIGKILL fails no client request.
func TestKillBackendUnderLoad(t *testing.T) {
	testenv.Short(t)
	a1, p1 := backendProcess(t, "web1")
	a2, _ := backendProcess(t, "web2")
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web, access_log: false}]
backends:
  - name: web
    health: {type: http, path: /healthz, interval: 500ms, rise: 2, fall: 3}
    retries: 3
    redispatch: true
    servers:
      - {name: web1, address: "%s"}
      - {name: web2, address: "%s"}
`, a1, a2))
	url := "http://" + l.Addrs("www")[0].String() + "/"
	const total = 24000
	load := (&testenv.Load{URL: url, Clients: 20, Limit: total, Deadline: time.Now().Add(90 * time.Second)}).Start()
	for load.Sent() < total/4 {
		time.Sleep(time.Millisecond)
	}
	p1.Signal(syscall.SIGKILL)
	load.Wait()
	n, failed, first := load.Result()
	if n < 20000 {
		t.Fatalf("sent %d requests before the deadline, want at least 20000", n)
	}
	if failed != 0 {
		t.Errorf("%d of %d requests failed (first: %v), want 0", failed, n, first)
	}
	web1 := l.backend("web").servers[0]
	if web1.up() {
		t.Errorf("web1 still UP after being killed")
	}
	t.Logf("%d requests, %d failed, retries %d, redispatches %d", n, failed,
		l.backend("web").Proxy.Stats.Retries.Load(), l.backend("web").Proxy.Stats.Redispatch.Load())
}

// TCP mode: connections are spread, relayed both ways with half-close, and
// new connections avoid a dead server.
func TestTCPMode(t *testing.T) {
	echo := func() (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					b, _ := io.ReadAll(c) // until the client half-closes
					c.Write([]byte(strings.ToUpper(string(b)) + " from " + ln.Addr().String()))
				}()
			}
		}()
		return ln.Addr().String(), func() { ln.Close() }
	}
	a1, stop1 := echo()
	a2, stop2 := echo()
	defer stop2()
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: db, mode: tcp, bind: ["127.0.0.1:0"], default_backend: pool, access_log: false}]
backends:
  - name: pool
    mode: tcp
    health: {type: tcp, interval: 100ms, fall: 1, rise: 1}
    redispatch: true
    servers: [{name: s1, address: "%s"}, {name: s2, address: "%s"}]
`, a1, a2))
	addr := l.Addrs("db")[0].String()
	ask := func() string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("ping"))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		got := ask()
		if !strings.HasPrefix(got, "PING from ") {
			t.Fatalf("reply = %q, want PING from a server (half-close relayed)", got)
		}
		seen[strings.TrimPrefix(got, "PING from ")]++
	}
	if seen[a1] != 2 || seen[a2] != 2 {
		t.Errorf("connections per server = %v, want 2 each", seen)
	}
	stop1()
	for i := 0; i < 4; i++ {
		if got := ask(); got != "PING from "+a2 {
			t.Errorf("after s1 stopped: reply = %q, want PING from %s", got, a2)
		}
	}
}

// A large transfer through TCP mode arrives whole in both
// directions.
func TestTCPModeLargeTransfer(t *testing.T) {
	const size = 16 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c) // the upload, until the client half-closes
		fmt.Fprintf(c, "%d\n", n)
		io.CopyN(c, zeroReader{}, size) // then the download
	}()
	l := startLB(t, fmt.Sprintf(`
frontends: [{name: t, mode: tcp, bind: ["127.0.0.1:0"], default_backend: b, access_log: false}]
backends: [{name: b, mode: tcp, servers: [{name: s, address: "%s"}]}]
`, ln.Addr()))
	c, err := net.Dial("tcp", l.Addrs("t")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.CopyN(c, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d\n", size)
	if !strings.HasPrefix(string(got), want) || len(got) != len(want)+size {
		t.Errorf("got %d bytes starting %q, want %q then %d bytes", len(got), got[:min(len(got), 12)], want, size)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
