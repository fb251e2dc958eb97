package lb

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"fulcrum/internal/edge"
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
