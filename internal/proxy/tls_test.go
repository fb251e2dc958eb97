package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/balance"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLSFrontendHTTP2AndHTTP1(t *testing.T) {
	seen := make(chan string, 4)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-Proto") + " " + r.Proto
		w.Header().Set("X-Server", "a")
		io.WriteString(w, "hello "+r.URL.Path)
	})
	bal, _ := balance.New("roundrobin", []balance.Server{{Weight: 1}})
	b := NewBackend("b", bal, []*Server{NewServer("a", addr, 0)}, BackendConfig{Retries: 1, ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second})
	cert, pool := selfSigned(t)
	f := NewHTTPFrontend("f", &HTTPConfig{Default: b, TimeoutClient: 5 * time.Second, TimeoutRequestHeader: 2 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}, HSTS: time.Hour})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.Serve(raw)
	t.Cleanup(func() { raw.Close() })
	url := "https://" + raw.Addr().String() + "/p"

	for _, tc := range []struct {
		name      string
		protos    []string
		wantMajor int
	}{
		{"h2", []string{"h2"}, 2},
		{"http/1.1", []string{"http/1.1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: tc.protos}, ForceAttemptHTTP2: tc.wantMajor == 2}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != tc.wantMajor || string(body) != "hello /p" || resp.Header.Get("X-Server") != "a" {
				t.Errorf("got HTTP/%d %q (X-Server %q), want HTTP/%d \"hello /p\" from a", resp.ProtoMajor, body, resp.Header.Get("X-Server"), tc.wantMajor)
			}
			if tc.wantMajor == 1 && resp.Header.Get("Strict-Transport-Security") != "max-age=3600" {
				t.Errorf("Strict-Transport-Security = %q, want max-age=3600", resp.Header.Get("Strict-Transport-Security"))
			}
			if got := <-seen; !strings.HasPrefix(got, "https HTTP/1.1") {
				t.Errorf("server saw %q, want X-Forwarded-Proto https over HTTP/1.1", got)
			}
		})
	}
	// A client that fails the handshake is counted and closed.
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	io.ReadAll(c)
	c.Close()
	if n := f.Stats.TLSErrors.Load(); n != 1 {
		t.Errorf("TLS handshake failures = %d, want 1", n)
	}
}
