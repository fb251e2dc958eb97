package lb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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

	"golang.org/x/crypto/ocsp"

	"fulcrum/internal/testenv"
)

// testsslFinding is one entry of testssl.sh's flat JSON output.
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// TestTestssl scans the HTTPS frontends of a real `fulcrum lb` process
// with testssl.sh (Debian package testssl.sh): one serving a certificate
// from files that names an OCSP responder (the test's), one self_signed
// from the local CA in its state directory, which staples answers the CA
// signs itself. testssl checks protocols (-p), cipher categories (-s),
// forward secrecy (-f), server defaults (-S: ALPN, certificate, OCSP
// stapling, which it verifies with openssl against the CA given by
// --add-ca), HTTP headers (-h) and the known vulnerabilities (-U). It
// targets 127.0.0.1 with DNS off (--nodns none) and without --phone-out,
// so it contacts nothing but the frontends. The two scans run at once.
func TestTestssl(t *testing.T) {
	testenv.Short(t)
	testssl := testenv.Program(t, "testssl")[0]
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(backend.Close)

	// A certificate as a public CA would issue it: 90 days, naming an
	// OCSP responder, whose answer the frontend fetches and staples.
	ca := newTestsslCA(t)
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, ca.pem, 0o644)
	serial := big.NewInt(time.Now().UnixNano()) // the leaf's
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		resp, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: serial,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, ca.key)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(responder.Close)
	certPath, keyPath := ca.issueFiles(t, dir, serial, responder.URL)

	files, local, admin := testsslFreeAddr(t), testsslFreeAddr(t), testsslFreeAddr(t)
	state := filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`admin: %s
state_dir: %s
frontends:
  - {name: files, bind: ["%s"], default_backend: web, access_log: false, hsts: 8760h, tls: {cert: %s, key: %s}}
  - {name: local, bind: ["%s"], default_backend: web, access_log: false, hsts: 8760h, tls: {self_signed: true}}
backends: [{name: web, servers: [{name: s, address: "%s"}]}]
`, admin, state, files, certPath, keyPath, local, backend.Listener.Addr())
	cfgPath := filepath.Join(dir, "lb.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "lb.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "lb", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("fulcrum lb log:\n%s", b)
		}
	})

	// Both frontends staple before the scans start; the local CA's staple
	// is checked here too: it verifies against the CA, "good" for the leaf.
	localCA := filepath.Join(state, "ca.pem")
	for _, fe := range []struct{ addr, ca string }{{files, caPath}, {local, localCA}} {
		st := testsslStapled(t, fe.addr, fe.ca)
		leaf, issuer := st.PeerCertificates[0], st.VerifiedChains[0][len(st.VerifiedChains[0])-1]
		r, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, issuer)
		if err != nil || r.Status != ocsp.Good {
			t.Fatalf("%s: staple %v, %v; want good, signed by %s", fe.addr, r, err, issuer.Subject)
		}
		if fe.addr == local && (len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != "http://"+admin+"/ocsp/") {
			t.Errorf("self-signed leaf names OCSP responder %v, want http://%s/ocsp/", leaf.OCSPServer, admin)
		}
	}

	var wg sync.WaitGroup
	for _, sc := range []struct{ name, addr, ca string }{{"files", files, caPath}, {"self_signed", local, localCA}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sc.name, func(t *testing.T) { testsslScan(t, testssl, sc.addr, sc.ca) })
		}()
	}
	wg.Wait()
}

// testsslScan runs testssl.sh against the HTTPS server at addr, trusting
// caPath, and judges its findings.
func testsslScan(t *testing.T, testssl, addr, caPath string) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "testssl.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, testssl,
		"--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
		"--add-ca", caPath, "--connect-timeout", "10", "--openssl-timeout", "10",
		"--jsonfile", jsonPath,
		"-p", "-s", "-f", "-S", "-h", "-U",
		"https://"+addr+"/")
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
	counts := map[string]int{}
	for _, f := range findings {
		byID[f.ID] = f
		counts[f.Severity]++
		switch f.Severity {
		case "HIGH", "CRITICAL":
			t.Errorf("testssl: %s %s: %s", f.Severity, f.ID, f.Finding)
		case "MEDIUM", "WARN", "LOW":
			t.Logf("testssl: %s %s: %s", f.Severity, f.ID, f.Finding)
		}
	}
	t.Logf("testssl: %d findings by severity: %v", len(findings), counts)
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
	want := map[string]string{
		"OCSP_stapling":    "offered",
		"cert_ocspRevoked": "not revoked", // openssl verified the staple against the CA
		"ALPN_HTTP2":       "h2",
		"HSTS_time":        "365 days",
	}
	for id, w := range want {
		if f := byID[id]; !strings.HasPrefix(f.Finding, w) {
			t.Errorf("testssl: %s = %q, want %q", id, f.Finding, w)
		}
	}
	// testssl 3.0 calls it PFS, later versions FS.
	if f := byID["PFS"]; f.Severity != "OK" && byID["FS"].Severity != "OK" {
		t.Errorf("testssl: forward secrecy = %s %q, want OK", f.Severity, f.Finding)
	}
}

// testsslStapled waits until the HTTPS server at addr completes a
// handshake verified against caPath and staples an OCSP answer.
func testsslStapled(t *testing.T, addr, caPath string) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		pool := x509.NewCertPool()
		if b, err := os.ReadFile(caPath); err == nil {
			pool.AppendCertsFromPEM(b)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err == nil {
			st := c.ConnectionState()
			c.Close()
			if len(st.OCSPResponse) > 0 {
				return st
			}
			err = fmt.Errorf("no OCSP staple")
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: no verified, stapled handshake within 15s: %v", addr, last)
	return tls.ConnectionState{}
}

func testsslFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testsslCA is a CA for the certificate-from-files frontend.
type testsslCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestsslCA(t *testing.T) *testsslCA {
	t.Helper()
	cert, key, pem := testenv.CA(t, "lb testssl CA")
	return &testsslCA{cert: cert, key: key, pem: pem}
}

// issueFiles writes a 90-day certificate for localhost and 127.0.0.1 with
// serial, naming the OCSP responder at responder, followed by the CA, and
// its key, into dir.
func (ca *testsslCA) issueFiles(t *testing.T, dir string, serial *big.Int, responder string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(0, 0, 90),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer:   []string{responder},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "site.pem"), filepath.Join(dir, "site-key.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	if err := os.WriteFile(certPath, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}
