package edge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

func TestLocalOCSPURL(t *testing.T) {
	tests := []struct {
		addr, host, want string
	}{
		{"127.0.0.1:9901", "localhost", "http://127.0.0.1:9901/ocsp/"},
		{"localhost:9901", "127.0.0.1", "http://localhost:9901/ocsp/"},
		{":9901", "site.example", "http://site.example:9901/ocsp/"},
		{"0.0.0.0:9901", "*.example.com", "http://example.com:9901/ocsp/"},
		{"[::]:9901", "::1", "http://[::1]:9901/ocsp/"},
		{"[::1]:9901", "localhost", "http://[::1]:9901/ocsp/"},
		{"", "localhost", ""},
		{"127.0.0.1:0", "localhost", ""},
		{"127.0.0.1", "localhost", ""},
	}
	for _, tt := range tests {
		if got := localOCSPURL(tt.addr, tt.host); got != tt.want {
			t.Errorf("localOCSPURL(%q, %q) = %q, want %q", tt.addr, tt.host, got, tt.want)
		}
	}
}

// localCAOf loads the local CA in dir for a test.
func localCAOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	ca, _, err := loadLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// A self-signed frontend names the responder, serves the CA after its
// leaf, and staples an answer the local CA signed: "good" for that leaf's
// serial.
func TestLocalOCSPStaple(t *testing.T) {
	dir := t.TempDir()
	conf, certs, err := ServerTLSWith(&config.TLS{SelfSigned: true}, Options{StateDir: dir, Log: testLogger(t), OCSPAddr: "127.0.0.1:9901"})
	if err != nil {
		t.Fatal(err)
	}
	runCerts(t, certs)
	waitFor(t, "the OCSP staple", 5*time.Second, func() bool {
		c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		return err == nil && len(c.OCSPStaple) > 0
	})
	addr := serveTLS(t, conf)
	ca := localCAOf(t, dir)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			st, err := handshake(addr, &tls.Config{ServerName: "localhost", RootCAs: roots, MinVersion: v, MaxVersion: v})
			if err != nil {
				t.Fatal(err)
			}
			leaf := st.PeerCertificates[0]
			if len(st.PeerCertificates) != 2 || !st.PeerCertificates[1].Equal(ca) {
				t.Errorf("chain of %d certificates, want the leaf and the local CA", len(st.PeerCertificates))
			}
			if want := []string{"http://127.0.0.1:9901/ocsp/"}; fmt.Sprint(leaf.OCSPServer) != fmt.Sprint(want) {
				t.Errorf("leaf OCSP responder = %v, want %v", leaf.OCSPServer, want)
			}
			if len(st.OCSPResponse) == 0 {
				t.Fatal("no OCSP staple in the handshake")
			}
			r, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, ca)
			if err != nil {
				t.Fatalf("staple does not verify against the local CA: %v", err)
			}
			if r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("staple = %s for serial %x, want good for %x", statusName(r.Status), r.SerialNumber, leaf.SerialNumber)
			}
			if now := time.Now(); now.Before(r.ThisUpdate) || !now.Before(r.NextUpdate) {
				t.Errorf("staple valid %v..%v, want now (%v) inside", r.ThisUpdate, r.NextUpdate, now)
			}
		})
	}
}

// The local staple is signed anew halfway to its NextUpdate, never served
// once expired, and not at all with ocsp_stapling: false.
func TestLocalOCSPRefresh(t *testing.T) {
	dir := t.TempDir()
	_, certs, err := ServerTLSWith(&config.TLS{SelfSigned: true}, Options{StateDir: dir, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ca := localCAOf(t, dir)
	now := time.Now()
	certs.now = func() time.Time { return now }
	staple := func() *ocsp.Response {
		t.Helper()
		c, _ := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		if len(c.OCSPStaple) == 0 {
			return nil
		}
		r, err := ocsp.ParseResponseForCert(c.OCSPStaple, c.Leaf, ca)
		if err != nil {
			t.Fatalf("staple: %v", err)
		}
		return r
	}
	ctx := context.Background()
	if staple() != nil {
		t.Fatal("stapled before Run")
	}
	certs.refreshStaples(ctx)
	first := staple()
	if first == nil || first.Status != ocsp.Good {
		t.Fatalf("staple after the first refresh = %+v, want good", first)
	}
	if got := certs.sources[0].stapleNext.Sub(now); got != localOCSPValidity/2 {
		t.Errorf("next refresh in %v, want %v", got, localOCSPValidity/2)
	}
	now = now.Add(localOCSPValidity/2 - time.Minute)
	certs.refreshStaples(ctx)
	if got := staple(); !got.ThisUpdate.Equal(first.ThisUpdate) {
		t.Errorf("staple re-signed at %v, before it was due", got.ThisUpdate)
	}
	now = now.Add(2 * time.Minute)
	certs.refreshStaples(ctx)
	if got := staple(); !got.ThisUpdate.After(first.ThisUpdate) || !now.Before(got.NextUpdate) {
		t.Errorf("staple after it was due: valid %v..%v, want re-signed at %v", got.ThisUpdate, got.NextUpdate, now)
	}

	off := false
	_, certs, err = ServerTLSWith(&config.TLS{SelfSigned: true, OCSPStapling: &off}, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	certs.refreshStaples(ctx)
	if c, _ := certs.GetCertificate(&tls.ClientHelloInfo{}); len(c.OCSPStaple) != 0 {
		t.Error("stapled with ocsp_stapling: false")
	}
}

// ocspQuery asks the responder at url about cert (issued by issuer) by
// POST or GET, with the CertID hashed by hash.
func ocspQuery(t *testing.T, url, method string, cert, issuer *x509.Certificate, hash crypto.Hash) (*http.Response, []byte) {
	t.Helper()
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: hash})
	if err != nil {
		t.Fatal(err)
	}
	var resp *http.Response
	if method == http.MethodGet {
		resp, err = http.Get(url + neturl.PathEscape(base64.StdEncoding.EncodeToString(req)))
	} else {
		resp, err = http.Post(url, "application/ocsp-request", bytes.NewReader(req))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// The responder answers for every certificate the CA issued, including
// those of another process sharing the state directory (the pair's other
// load balancer): good while unexpired, unknown for other serials,
// unauthorized for another issuer.
func TestLocalOCSPResponder(t *testing.T) {
	dir := t.TempDir()
	// It can start before the CA exists.
	responder := NewLocalOCSP(dir, testLogger(t))
	mux := http.NewServeMux()
	mux.Handle(LocalOCSPPath, responder)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	url := srv.URL + LocalOCSPPath

	other := newTestCA(t)
	otherChain, _ := other.issue(t, leafOpts{names: []string{"other.example"}})
	otherBlock, _ := pem.Decode(otherChain)
	otherLeaf, _ := x509.ParseCertificate(otherBlock.Bytes)
	if _, body := ocspQuery(t, url, http.MethodPost, otherLeaf, other.cert, crypto.SHA1); !bytes.Equal(body, ocsp.UnauthorizedErrorResponse) {
		t.Errorf("before the CA exists: answer %x, want unauthorized", body)
	}

	var leaves []*x509.Certificate
	for _, name := range []string{"lb1.example", "lb2.example"} {
		_, certs, err := ServerTLSWith(&config.TLS{SelfSigned: true, Names: []string{name}}, Options{StateDir: dir, OCSPAddr: "127.0.0.1:9901"})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := certs.GetCertificate(&tls.ClientHelloInfo{})
		leaves = append(leaves, c.Leaf)
	}
	ca := localCAOf(t, dir)
	unknown := *leaves[0]
	unknown.SerialNumber = big.NewInt(4711)

	tests := []struct {
		name   string
		cert   *x509.Certificate
		issuer *x509.Certificate
		method string
		hash   crypto.Hash
		status int   // when a signed answer
		err    error // when an error answer
	}{
		{"lb1 POST", leaves[0], ca, http.MethodPost, crypto.SHA1, ocsp.Good, nil},
		{"lb2 POST", leaves[1], ca, http.MethodPost, crypto.SHA1, ocsp.Good, nil},
		{"lb2 GET", leaves[1], ca, http.MethodGet, crypto.SHA1, ocsp.Good, nil},
		{"lb1 GET SHA-256", leaves[0], ca, http.MethodGet, crypto.SHA256, ocsp.Good, nil},
		{"never issued", &unknown, ca, http.MethodPost, crypto.SHA1, ocsp.Unknown, nil},
		{"another CA", otherLeaf, other.cert, http.MethodPost, crypto.SHA1, 0, ocsp.ResponseError{Status: ocsp.Unauthorized}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ocspQuery(t, url, tt.method, tt.cert, tt.issuer, tt.hash)
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/ocsp-response" {
				t.Errorf("HTTP %d %s, want 200 application/ocsp-response", resp.StatusCode, ct)
			}
			r, err := ocsp.ParseResponseForCert(body, tt.cert, ca)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("answer error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("answer does not verify against the local CA: %v", err)
			}
			if r.Status != tt.status || r.SerialNumber.Cmp(tt.cert.SerialNumber) != 0 || r.IssuerHash != tt.hash {
				t.Errorf("answer = %s for %x (CertID %v), want %s for %x (%v)", statusName(r.Status), r.SerialNumber, r.IssuerHash, statusName(tt.status), tt.cert.SerialNumber, tt.hash)
			}
			cc := resp.Header.Get("Cache-Control")
			if tt.method == http.MethodGet && !strings.HasPrefix(cc, "max-age=43200,") || tt.method == http.MethodPost && cc != "no-store" {
				t.Errorf("%s: Cache-Control = %q", tt.method, cc)
			}
		})
	}

	t.Run("malformed", func(t *testing.T) {
		resp, err := http.Post(url, "application/ocsp-request", strings.NewReader("not DER"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(body, ocsp.MalformedRequestErrorResponse) {
			t.Errorf("answer to garbage = %x, want malformedRequest", body)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT = %d, want 405", resp.StatusCode)
		}
	})
	t.Run("expired", func(t *testing.T) {
		responder.mu.Lock()
		responder.now = func() time.Time { return leaves[0].NotAfter.Add(time.Second) }
		responder.mu.Unlock()
		defer func() {
			responder.mu.Lock()
			responder.now = time.Now
			responder.mu.Unlock()
		}()
		_, body := ocspQuery(t, url, http.MethodPost, leaves[0], ca, crypto.SHA1)
		if r, err := ocsp.ParseResponseForCert(body, leaves[0], ca); err != nil || r.Status != ocsp.Unknown {
			t.Errorf("answer for an expired certificate = %v, %v; want unknown", r, err)
		}
	})
}

// The record of issued certificates drops expired ones and stays bounded;
// it survives a round trip through its file format.
func TestRecordIssued(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var b []byte
	b = appendIssued(b, issuedRecord{serial: big.NewInt(1), notAfter: now.Add(-time.Hour), names: "expired.example"})
	for i := 2; i <= maxIssued+5; i++ {
		b = appendIssued(b, issuedRecord{serial: big.NewInt(int64(i)), notAfter: now.Add(time.Hour)})
	}
	b = append(b, "zz not-a-line\n# comment\n\n"...)
	if err := os.WriteFile(filepath.Join(dir, localIssuedFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(0xabcdef), NotAfter: now.AddDate(0, 0, 90), DNSNames: []string{"new.example"}}
	if err := recordIssued(dir, leaf, now); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, localIssuedFile))
	recs := parseIssued(data)
	if len(recs) != maxIssued {
		t.Fatalf("%d certificates recorded, want %d", len(recs), maxIssued)
	}
	if first := recs[0].serial.Int64(); first != 7 {
		t.Errorf("oldest kept = %d, want 7 (expired and oldest dropped)", first)
	}
	last := recs[len(recs)-1]
	if last.serial.Cmp(leaf.SerialNumber) != 0 || !last.notAfter.Equal(leaf.NotAfter) || last.names != "new.example" {
		t.Errorf("newest = %x %v %q, want abcdef %v new.example", last.serial, last.notAfter, last.names, leaf.NotAfter)
	}
	if !bytes.Contains(data, []byte("\nabcdef 2026-08-30T00:00:00Z new.example\n")) {
		t.Errorf("record line not in the documented format:\n%s", data[len(data)-200:])
	}
}

// Differential: OpenSSL's OCSP client asks the local CA's responder about
// the frontend's certificate and verifies the signed answer.
func TestLocalOCSPOpenSSL(t *testing.T) {
	testenv.Short(t)
	bin := testenv.Program(t, "openssl")[0]
	dir := t.TempDir()
	_, certs, err := ServerTLSWith(&config.TLS{SelfSigned: true}, Options{StateDir: dir, OCSPAddr: "127.0.0.1:9901"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := certs.GetCertificate(&tls.ClientHelloInfo{})
	leafPath := filepath.Join(dir, "leaf.pem")
	os.WriteFile(leafPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
	mux := http.NewServeMux()
	mux.Handle(LocalOCSPPath, NewLocalOCSP(dir, testLogger(t)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	caPath := filepath.Join(dir, localCACert)
	for _, hash := range []string{"-sha1", "-sha256"} {
		t.Run(hash, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "ocsp", hash, "-issuer", caPath, "-cert", leafPath,
				"-url", srv.URL+LocalOCSPPath, "-CAfile", caPath, "-no_nonce").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl ocsp: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), leafPath+": good") {
				t.Errorf("openssl ocsp = %q, want the answer verified and good", out)
			}
		})
	}
}
