package lb

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/edge"
	"fulcrum/internal/testenv"
)

// TLS, redirect to HTTPS and an ACL, all from the configuration file.
func TestEdgeFromConfig(t *testing.T) {
	a1, _ := counting(t, "web1")
	state := t.TempDir()
	l := startLB(t, fmt.Sprintf(`
state_dir: %s
frontends:
  - name: https
    bind: ["127.0.0.1:0"]
    default_backend: web
    access_log: false
    tls: {self_signed: true}
    hsts: 24h
    acl: [{action: deny, path_prefix: [/private]}]
  - name: http
    bind: ["127.0.0.1:0"]
    default_backend: web
    access_log: false
    redirect_https: true
backends: [{name: web, servers: [{name: web1, address: "%s"}]}]
`, state, a1))
	caPath, err := edge.LocalCA(state)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("local CA: no certificate")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	https := "https://" + l.Addrs("https")[0].String()
	for _, tt := range []struct {
		url  string
		code int
	}{
		{https + "/", 200},
		{https + "/private/x", 403},
		{"http://" + l.Addrs("http")[0].String() + "/a?b", 308},
	} {
		resp, err := c.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.code)
		}
		if tt.code == 200 && (resp.ProtoMajor != 2 || resp.Header.Get("Strict-Transport-Security") != "max-age=86400") {
			t.Errorf("GET %s: HTTP/%d, HSTS %q; want HTTP/2 and max-age=86400", tt.url, resp.ProtoMajor, resp.Header.Get("Strict-Transport-Security"))
		}
	}
	st := l.Status().Frontends[0].Counts
	if st.Denied != 1 {
		t.Errorf("denied = %d, want 1", st.Denied)
	}
}

// h2specKnown are the h2spec cases the HTTP/2 server (golang.org/x/net/http2)
// fails, with why. Any other failing case fails the test.
var h2specKnown = map[string]string{
	// x/net answers a header block larger than SETTINGS_MAX_FRAME_SIZE
	// with a connection error only for some frame sizes.
	"Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE": "x/net/http2 frame-size handling",
	// x/net applies only the last of several values in one SETTINGS frame
	// to open streams' windows, so the test's flow-control check fails.
	"Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE": "x/net/http2 settings handling",
	// x/net answers a malformed request (connection-specific fields, TE
	// other than trailers) with a 400 response instead of the stream
	// error h2spec expects; the request never reaches a server either way.
	"Sends a HEADERS frame that contains the connection-specific header field":                       "x/net/http2 answers 400, not RST_STREAM",
	"Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"": "x/net/http2 answers 400, not RST_STREAM",
}

// h2spec (HTTP/2 conformance) against an HTTPS frontend.
func TestH2Spec(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "h2spec")[0]
	a1, _ := counting(t, "web1")
	l := startLB(t, fmt.Sprintf(`
state_dir: %s
frontends: [{name: https, bind: ["127.0.0.1:0"], default_backend: web, access_log: false, tls: {self_signed: true}}]
backends: [{name: web, servers: [{name: web1, address: "%s"}]}]
`, t.TempDir(), a1))
	_, port, _ := net.SplitHostPort(l.Addrs("https")[0].String())
	out, _ := exec.Command(bin, "-h", "127.0.0.1", "-p", port, "-t", "-k", "-o", "3").CombinedOutput()
	summary := string(out)
	i := strings.LastIndex(summary, "Finished in")
	if i < 0 {
		t.Fatalf("h2spec did not finish:\n%s", out)
	}
	summary = summary[i:]
	failed := map[string]bool{}
	for _, line := range strings.Split(summary, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "× "); ok {
			if _, desc, ok := strings.Cut(rest, ": "); ok {
				failed[desc] = true
			}
		}
	}
	for desc := range failed {
		if _, known := h2specKnown[desc]; !known {
			t.Errorf("h2spec case failed: %s", desc)
		}
	}
	t.Logf("h2spec: %s", strings.TrimSpace(summary))
}
