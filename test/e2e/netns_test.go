package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/edge"
	"fulcrum/internal/netns"
	"fulcrum/internal/testenv"
)

// Issue 9's proof: `fulcrum up --netns` runs every host of the default
// stack as a network namespace with its firewall. From the client host
// only the VIP's ports 80 and 443 answer (nmap agrees), the parts reach
// what they need, and the failover scenarios pass as on one machine.
func TestNetnsStack(t *testing.T) {
	testenv.Short(t)
	testenv.Root(t)
	testenv.Program(t, "ip", "nmap", "mariadbd", "mariadb-install-db")
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"fulcrum-sw", "fulcrum-client"} {
		if _, err := os.Stat(filepath.Join(netns.Dir, ns)); err == nil {
			t.Fatalf("namespace %s exists: is a `fulcrum up --netns` running on this machine?", ns)
		}
	}
	// Three database nodes, as in the one-machine proof: after a failover
	// a replica is left to acknowledge semi-sync commits.
	cfg := config.DefaultStack()
	cfg.Replicas = 2
	if err := cfg.Check("replicas: 2"); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	u := &upProcess{bin: bin, dir: filepath.Join(tmp, "state"), dashboard: testenv.FreeAddr(t, "tcp"), done: make(chan struct{}),
		front: net.JoinHostPort(cfg.VIP, "80"), frontTLS: net.JoinHostPort(cfg.VIP, "443")}
	file := filepath.Join(tmp, "stack.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("dashboard: %q\nreplicas: 2\n", u.dashboard)), 0o600); err != nil {
		t.Fatal(err)
	}
	if u.out, err = os.Create(filepath.Join(tmp, "up.out")); err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command(bin, "up", "--netns", "-c", file, "--dir", u.dir, "--fresh")
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.cmd.Wait(); close(u.done) }()
	t.Cleanup(func() {
		u.stop(t)
		left, _ := filepath.Glob(filepath.Join(netns.Dir, "fulcrum-*"))
		for _, ns := range left {
			t.Errorf("namespace %s left behind after fulcrum up stopped; removing it", filepath.Base(ns))
			exec.Command("ip", "netns", "del", filepath.Base(ns)).Run()
		}
	})
	st := u.waitFor(t, "the stack to be healthy", 120*time.Second, healthy)
	t.Logf("stack up: active %s, primary %s", st.ActiveLB, st.Primary)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dialer := func(host string) *netns.Dialer {
		d, err := netns.NewDialer(ctx, "fulcrum-"+host)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	client := dialer("client")

	// Reachability: what each host may and may not reach, by connecting.
	reach := func(from *netns.Dialer, addr string) error {
		dctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		c, err := from.DialContext(dctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	host := func(part string) string { return cfg.HostOf(part).Address }
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{"client", u.front, true},
		{"client", u.frontTLS, true},
		{"lb1", net.JoinHostPort(host("web1"), port(cfg.Webs[0].Listen)), true},
		{"lb2", net.JoinHostPort(host("web2"), port(cfg.Webs[1].Listen)), true},
		{"web1", net.JoinHostPort(host("db1"), "3306"), true},
		{"web2", net.JoinHostPort(host("db2"), "3306"), true},
		{"client", net.JoinHostPort(host("web1"), port(cfg.Webs[0].Listen)), false},
		{"client", net.JoinHostPort(host("web1"), port(cfg.Webs[0].Admin)), false},
		{"client", net.JoinHostPort(host("db1"), "3306"), false},
		{"client", net.JoinHostPort(host("lb1"), port(cfg.LBs[0].Admin)), false},
		{"client", net.JoinHostPort(host("db-manager"), port(cfg.DB.Manager)), false},
		{"lb1", net.JoinHostPort(host("db1"), "3306"), false}, // the LBs serve no database ports here
		{"web1", net.JoinHostPort(host("web2"), port(cfg.Webs[1].Listen)), false},
	} {
		err := reach(dialer(tc.from), tc.to)
		switch {
		case tc.want && err != nil:
			t.Errorf("%s → %s: %v, want a connection", tc.from, tc.to, err)
		case !tc.want && err == nil:
			t.Errorf("%s → %s: connected, want it dropped by the firewall", tc.from, tc.to)
		case !tc.want && !timedOut(err):
			t.Errorf("%s → %s: %v, want silence (dropped), not an answer", tc.from, tc.to, err)
		}
	}

	// nmap from the client: every port any part of the stack uses, and
	// the well-known ones, on every host and the VIP.
	addrs := []string{cfg.VIP}
	for _, h := range cfg.Hosts {
		addrs = append(addrs, h.Address)
	}
	args := append([]string{"netns", "exec", "fulcrum-client", "nmap", "-Pn", "-n", "-T5", "--max-retries", "1",
		"-p", "1-1024,3306,7401,7402,8080,8443,9000-9999,13300-13310", "--open", "-oG", "-"}, addrs...)
	begin := time.Now()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nmap: %v: %s", err, out)
	}
	var open []string
	for _, line := range strings.Split(string(out), "\n") {
		h, ports, ok := strings.Cut(line, "Ports: ")
		if !ok {
			continue
		}
		addr := strings.Fields(strings.TrimPrefix(h, "Host: "))[0]
		for _, p := range strings.Split(ports, ", ") {
			f := strings.Split(p, "/")
			if len(f) > 1 && f[1] == "open" {
				open = append(open, addr+":"+f[0])
			}
		}
	}
	want := []string{u.front, u.frontTLS}
	sort.Strings(open)
	sort.Strings(want)
	if !slices.Equal(open, want) {
		t.Errorf("nmap from the client: open %v, want only %v\n%s", open, want, out)
	} else {
		t.Logf("nmap from the client over %d addresses in %v: open %v", len(addrs), time.Since(begin).Round(time.Millisecond), open)
	}

	// HTTPS from the client, trusting the local CA: the certificate names
	// the VIP.
	caPath, err := edge.LocalCA(u.dir)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: client.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	if resp, err := hc.Get("https://" + cfg.VIP + "/healthz"); err != nil {
		t.Errorf("https://%s from the client: %v", cfg.VIP, err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("https://%s from the client: %d over HTTP/%d, want 200 over HTTP/2", cfg.VIP, resp.StatusCode, resp.ProtoMajor)
		}
	}

	// The failover scenarios, with the traffic from the client host.
	survivesChaos(t, u, newClient(u.front, client.DialContext), func() {})
}

// timedOut reports a dial that got no answer at all.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
