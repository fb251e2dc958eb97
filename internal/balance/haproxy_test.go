package balance

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

// haproxyBackend is a real haproxy with one HTTP backend "b" whose servers
// s0..sN-1 are small Go servers that answer with their own name.
type haproxyBackend struct {
	t      *testing.T
	url    string
	sock   string
	client *http.Client
	spare  []string // addresses of started servers not in the config, for `add server`
}

// nameServer starts a Go HTTP server on 127.0.0.1:0 that answers name
// (and the test's token, so that an answer from another test's server
// could never pass for one of ours).
func nameServer(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, name+" "+t.Name())
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// closedAddr returns a loopback address where nothing listens: a
// connection to it is refused at once. The port stays reserved by a
// socket that is bound but never listens, so no other test's listener
// can take it for the duration of the test.
func closedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// startHAProxy runs haproxy -db with `balance algo` over servers of the
// given weights, plus spare servers s<N>.. started but not configured.
// Servers marked dead point at a closed port; with `retries 1` and
// `option redispatch`, a request sent there is redispatched to another
// server, which exercises the avoid argument of the LB code.
func startHAProxy(t *testing.T, algo string, weights []int, dead []bool, spare int) *haproxyBackend {
	t.Helper()
	bin := testenv.Program(t, "haproxy")[0]

	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "fulcrum-balance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
    nbthread 1
    stats socket %s level admin

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    retries 1
    option redispatch

frontend fe
    bind fd@3
    default_backend b

backend b
    balance %s
`, filepath.Join(dir, "admin.sock"), algo)
	for i, w := range weights {
		addr := ""
		if i < len(dead) && dead[i] {
			addr = closedAddr(t)
		} else {
			addr = nameServer(t, fmt.Sprintf("s%d", i))
		}
		fmt.Fprintf(&cfg, "    server s%d %s weight %d\n", i, addr, w)
	}
	h := &haproxyBackend{t: t, sock: filepath.Join(dir, "admin.sock")}
	for i := range spare {
		h.spare = append(h.spare, nameServer(t, fmt.Sprintf("s%d", len(weights)+i)))
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// haproxy inherits the listening socket as fd 3: no port to guess.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + l.Addr().String() + "/"
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.ExtraFiles = []*os.File{lf}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	l.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // by pid: only the haproxy this test started
		<-done
		if t.Failed() {
			t.Logf("haproxy output:\n%s", stderr.String())
		}
	})

	h.client = &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
		Timeout:   10 * time.Second,
	}
	t.Cleanup(h.client.CloseIdleConnections)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", h.sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy admin socket: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

// get sends one request and returns the index of the server that
// answered, or -1 on 503 (no server).
func (h *haproxyBackend) get() int {
	h.t.Helper()
	resp, err := h.client.Get(h.url)
	if err != nil {
		h.t.Fatalf("GET %s: %v", h.url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		h.t.Fatalf("GET %s: %v", h.url, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return -1
	}
	name, token, _ := strings.Cut(string(body), " ")
	if resp.StatusCode == http.StatusOK && token != h.t.Name() {
		h.t.Fatalf("GET %s: answer %q from another test's server", h.url, body)
	}
	i, err := strconv.Atoi(strings.TrimPrefix(name, "s"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(name, "s") || err != nil {
		h.t.Fatalf("GET %s: %s %q", h.url, resp.Status, body)
	}
	return i
}

// admin runs one command on the stats socket and fails the test unless
// the answer is empty or starts with okPrefix.
func (h *haproxyBackend) admin(line, okPrefix string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", h.sock)
	if err != nil {
		h.t.Fatalf("admin %q: %v", line, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		h.t.Fatalf("admin %q: %v", line, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		h.t.Fatalf("admin %q: %v", line, err)
	}
	ans := strings.TrimSpace(string(out))
	if ans != "" && (okPrefix == "" || !strings.HasPrefix(ans, okPrefix)) {
		h.t.Fatalf("admin %q: %q", line, ans)
	}
}
