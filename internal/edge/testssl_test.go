package edge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// testsslFinding is one entry of testssl.sh's flat JSON output.
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// TestTestssl scans an HTTPS server built from ServerTLS with testssl.sh
// (Debian package testssl.sh): protocols (-p), cipher categories (-s),
// forward secrecy (-f), server defaults (-S), HTTP headers (-h) and the
// known vulnerabilities (-U). It targets 127.0.0.1 with DNS off (--nodns
// none) and without --phone-out, so it contacts nothing but the server.
func TestTestssl(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "testssl")[0]
	ca := newTestCA(t)
	dir := t.TempDir()
	// A certificate as a public CA would issue it: 90 days, naming an OCSP
	// responder (a local one), whose answer the frontend staples.
	responder, _ := ocspResponder(t, ca)
	chain, key := ca.issue(t, leafOpts{names: []string{"localhost", "127.0.0.1"}, days: 90, ocsp: responder})
	certPath, keyPath := writePair(t, dir, "site", chain, key)
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	conf, certs, err := ServerTLS(&config.TLS{Cert: certPath, Key: keyPath}, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCerts(t, certs)
	waitFor(t, "the OCSP staple", 10*time.Second, func() bool {
		c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		return err == nil && len(c.OCSPStaple) > 0
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// What the frontend adds with hsts: set.
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
			io.WriteString(w, "ok\n")
		}),
		TLSConfig:         conf,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	go srv.Serve(tls.NewListener(ln, conf))
	t.Cleanup(func() { srv.Close() })

	jsonPath := filepath.Join(dir, "testssl.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin,
		"--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
		"--add-ca", caPath, "--connect-timeout", "10", "--openssl-timeout", "10",
		"--jsonfile", jsonPath,
		"-p", "-s", "-f", "-S", "-h", "-U",
		"https://"+ln.Addr().String()+"/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=dumb")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	t.Logf("testssl ran %v", time.Since(start).Round(time.Second))
	if testing.Verbose() {
		t.Logf("testssl output:\n%s", out)
	}
	// testssl exits with the number of findings it considers bad (or
	// more); the JSON below is what is judged.
	if ctx.Err() != nil {
		t.Fatalf("testssl did not finish in time: %v\n%s", err, out)
	}
	data, rerr := os.ReadFile(jsonPath)
	if rerr != nil {
		t.Fatalf("testssl wrote no JSON (%v, exit %v):\n%s", rerr, err, out)
	}
	var findings []testsslFinding
	if err := json.Unmarshal(data, &findings); err != nil {
		t.Fatalf("testssl JSON: %v", err)
	}
	if len(findings) < 20 {
		t.Fatalf("testssl reported %d findings, want a full scan:\n%s", len(findings), out)
	}
	byID := map[string]testsslFinding{}
	for _, f := range findings {
		byID[f.ID] = f
		switch f.Severity {
		case "HIGH", "CRITICAL":
			t.Errorf("testssl: %s %s: %s", f.Severity, f.ID, f.Finding)
		case "MEDIUM", "WARN", "LOW":
			t.Logf("testssl: %s %s: %s", f.Severity, f.ID, f.Finding)
		}
	}
	// No weak protocol and no weak cipher category may be offered.
	for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1",
		"cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
		"cipherlist_3DES_IDEA", "cipherlist_AVERAGE"} {
		f, ok := byID[id]
		if !ok {
			t.Errorf("testssl: no %s finding, want \"not offered\"", id)
		} else if !strings.HasPrefix(f.Finding, "not offered") {
			t.Errorf("testssl: %s = %q, want not offered", id, f.Finding)
		}
	}
	for _, id := range []string{"TLS1_2", "TLS1_3"} {
		if f := byID[id]; !strings.HasPrefix(f.Finding, "offered") {
			t.Errorf("testssl: %s = %q, want offered", id, f.Finding)
		}
	}
	if f := byID["OCSP_stapling"]; !strings.HasPrefix(f.Finding, "offered") {
		t.Errorf("testssl: OCSP_stapling = %q, want offered", f.Finding)
	}
	// testssl 3.0 calls it PFS, later versions FS.
	if f := byID["PFS"]; f.Severity != "OK" && byID["FS"].Severity != "OK" {
		t.Errorf("testssl: forward secrecy = %s %q, want OK", f.Severity, f.Finding)
	}
}
