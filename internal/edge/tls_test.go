package edge

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"fulcrum/internal/config"
)

// sniServer serves three certificates chosen by SNI: a.example (ECDSA and
// RSA), b.example and *.wild.example.
func sniServer(t *testing.T) (addr string, ca *testCA) {
	ca = newTestCA(t)
	dir := t.TempDir()
	var pairs []config.CertKey
	for i, o := range []leafOpts{
		{names: []string{"a.example", "127.0.0.1"}, serial: 1},
		{names: []string{"a.example"}, rsa: true, serial: 2},
		{names: []string{"b.example"}, serial: 3},
		{names: []string{"*.wild.example"}, serial: 4},
	} {
		ch, ky := ca.issue(t, o)
		c, k := writePair(t, dir, string(rune('a'+i)), ch, ky)
		pairs = append(pairs, config.CertKey{Cert: c, Key: k})
	}
	cfg := &config.TLS{Certificates: pairs}
	conf, _, err := ServerTLS(cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	return serveTLS(t, conf), ca
}

func TestServerTLSHandshake(t *testing.T) {
	addr, ca := sniServer(t)
	rsaOnly12 := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name       string
		conf       *tls.Config
		wantErr    bool
		wantSerial int64
		wantProto  string
		wantVer    uint16
	}{
		{name: "tls 1.3 default", conf: &tls.Config{ServerName: "a.example"}, wantSerial: 1, wantVer: tls.VersionTLS13},
		{name: "tls 1.2 aead", conf: &tls.Config{ServerName: "b.example", MaxVersion: tls.VersionTLS12}, wantSerial: 3, wantVer: tls.VersionTLS12},
		{name: "tls 1.1 refused", conf: &tls.Config{ServerName: "a.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, wantErr: true},
		{name: "tls 1.0 refused", conf: &tls.Config{ServerName: "a.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, wantErr: true},
		{name: "cbc suite refused", conf: &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA}}, wantErr: true},
		{name: "static rsa key exchange refused", conf: &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, wantErr: true},
		{name: "h2 by alpn", conf: &tls.Config{ServerName: "a.example", NextProtos: []string{"h2", "http/1.1"}}, wantSerial: 1, wantProto: "h2"},
		{name: "http/1.1 by alpn", conf: &tls.Config{ServerName: "a.example", NextProtos: []string{"http/1.1"}}, wantSerial: 1, wantProto: "http/1.1"},
		{name: "sni b", conf: &tls.Config{ServerName: "b.example"}, wantSerial: 3},
		{name: "sni case and dot", conf: &tls.Config{ServerName: "B.Example."}, wantSerial: 3},
		{name: "sni wildcard", conf: &tls.Config{ServerName: "x.wild.example"}, wantSerial: 4},
		{name: "sni unknown gets the first", conf: &tls.Config{ServerName: "unknown.example", InsecureSkipVerify: true}, wantSerial: 1},
		{name: "no sni gets the first", conf: &tls.Config{InsecureSkipVerify: true}, wantSerial: 1},
		{name: "rsa-only client gets the rsa certificate", conf: &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12, CipherSuites: rsaOnly12}, wantSerial: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := tt.conf.Clone()
			conf.RootCAs = ca.pool()
			st, err := handshake(addr, conf)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handshake succeeded with %s %s, want it refused", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := st.PeerCertificates[0].SerialNumber.Int64(); got != tt.wantSerial {
				t.Errorf("served certificate serial %d (%v), want %d", got, st.PeerCertificates[0].DNSNames, tt.wantSerial)
			}
			if st.NegotiatedProtocol != tt.wantProto {
				t.Errorf("ALPN = %q, want %q", st.NegotiatedProtocol, tt.wantProto)
			}
			if tt.wantVer != 0 && st.Version != tt.wantVer {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.wantVer))
			}
		})
	}
}

func TestServerTLSResumption(t *testing.T) {
	addr, ca := sniServer(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			conf := &tls.Config{ServerName: "a.example", RootCAs: ca.pool(), MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			first, err := handshake(addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			second, err := handshake(addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			if first.DidResume || !second.DidResume {
				t.Errorf("DidResume = %v then %v, want false then true", first.DidResume, second.DidResume)
			}
		})
	}
}

// Run rotates ticket keys: a ticket resumes while its key is kept, and no
// longer once ticketKeep newer keys replaced it.
func TestServerTLSTicketRotation(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ch, ky := ca.issue(t, leafOpts{names: []string{"t.example"}})
	c, k := writePair(t, dir, "t", ch, ky)
	conf, certs, err := ServerTLS(&config.TLS{Cert: c, Key: k}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	certs.ticketEvery, certs.ticketKeep = 200*time.Millisecond, 3
	addr := serveTLS(t, conf)
	runCerts(t, certs)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			client := &tls.Config{ServerName: "t.example", RootCAs: ca.pool(), MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			if _, err := handshake(addr, client); err != nil {
				t.Fatal(err)
			}
			st, err := handshake(addr, client)
			if err != nil || !st.DidResume {
				t.Fatalf("immediately: DidResume = %v, %v; want true", st.DidResume, err)
			}
			client.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			if _, err := handshake(addr, client); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // 5 rotations, 3 keys kept
			st, err = handshake(addr, client)
			if err != nil || st.DidResume {
				t.Errorf("after the key was dropped: DidResume = %v, %v; want false", st.DidResume, err)
			}
		})
	}
}

func TestServerTLSReload(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ch, ky := ca.issue(t, leafOpts{names: []string{"site.example"}, serial: 100})
	certPath, keyPath := writePair(t, dir, "site", ch, ky)
	cfg := &config.TLS{Cert: certPath, Key: keyPath, ReloadInterval: config.Duration(100 * time.Millisecond)}
	conf, certs, err := ServerTLS(cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, conf)
	runCerts(t, certs)
	client := &tls.Config{ServerName: "site.example", RootCAs: ca.pool()}
	serial := func() int64 {
		st, err := handshake(addr, client)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serial = %d, want 100", got)
	}
	// A connection open across the reload keeps working.
	open, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	// A half-written pair (certificate replaced, key not yet) keeps the old
	// certificate in service; the complete pair is served next.
	newChain, newKey := ca.issue(t, leafOpts{names: []string{"site.example"}, serial: 101})
	if err := writeFileAtomic(certPath, newChain, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := serial(); got != 100 {
		t.Errorf("with a mismatched pair on disk, serial = %d, want the old 100", got)
	}
	writePair(t, dir, "site", newChain, newKey)
	waitFor(t, "the new certificate", 5*time.Second, func() bool { return serial() == 101 })

	open.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Write([]byte("still\n")); err != nil {
		t.Fatalf("open connection after reload: %v", err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(open, buf); err != nil || string(buf) != "still\n" {
		t.Fatalf("open connection after reload read %q, %v", buf, err)
	}
	if got := open.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 100 {
		t.Errorf("open connection's certificate = %d, want 100", got)
	}
}

// ocspResponder answers for every certificate of ca: good.
func ocspResponder(t *testing.T, ca *testCA) (url string, hits func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status:       ocsp.Good,
			SerialNumber: req.SerialNumber,
			ThisUpdate:   now.Add(-time.Minute),
			NextUpdate:   now.Add(time.Hour),
		}, ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestServerTLSOCSPStapling(t *testing.T) {
	ca := newTestCA(t)
	url, hits := ocspResponder(t, ca)
	dir := t.TempDir()
	ch1, ky1 := ca.issue(t, leafOpts{names: []string{"stapled.example"}, ocsp: url, serial: 7})
	c1, k1 := writePair(t, dir, "stapled", ch1, ky1)
	ch2, ky2 := ca.issue(t, leafOpts{names: []string{"plain.example"}, serial: 8})
	c2, k2 := writePair(t, dir, "plain", ch2, ky2)
	cfg := &config.TLS{Certificates: []config.CertKey{{Cert: c1, Key: k1}, {Cert: c2, Key: k2}}, ReloadInterval: config.Duration(100 * time.Millisecond)}
	conf, certs, err := ServerTLS(cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, conf)
	runCerts(t, certs)
	var staple []byte
	waitFor(t, "an OCSP staple", 5*time.Second, func() bool {
		st, err := handshake(addr, &tls.Config{ServerName: "stapled.example", RootCAs: ca.pool()})
		if err != nil {
			t.Fatal(err)
		}
		staple = st.OCSPResponse
		return len(staple) > 0
	})
	r, err := ocsp.ParseResponse(staple, ca.cert)
	if err != nil || r.Status != ocsp.Good || r.SerialNumber.Cmp(big.NewInt(7)) != 0 {
		t.Errorf("staple = %+v, %v, want good for serial 7", r, err)
	}
	st, err := handshake(addr, &tls.Config{ServerName: "plain.example", RootCAs: ca.pool()})
	if err != nil || len(st.OCSPResponse) != 0 {
		t.Errorf("certificate without a responder: staple %d bytes, %v; want none", len(st.OCSPResponse), err)
	}
	if n := hits(); n != 1 {
		t.Errorf("responder asked %d times, want once (the staple is fresh for an hour)", n)
	}
}

func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	chain, key := ca.issue(t, leafOpts{names: []string{"x.example"}})
	_, otherKey := ca.issue(t, leafOpts{names: []string{"x.example"}})
	certPath, _ := writePair(t, dir, "x", chain, key)
	badKey := filepath.Join(dir, "other-key.pem")
	os.WriteFile(badKey, otherKey, 0o600)
	tests := []struct {
		name string
		cfg  *config.TLS
		want string
	}{
		{"nil", nil, "no tls section"},
		{"missing file", &config.TLS{Cert: filepath.Join(dir, "none.pem"), Key: badKey}, "none.pem"},
		{"mismatched key", &config.TLS{Cert: certPath, Key: badKey}, "private key does not match"},
		{"nothing", &config.TLS{}, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ServerTLS(tt.cfg, dir, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ServerTLS() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestServerTLSConfig(t *testing.T) {
	conf, _, err := ServerTLS(&config.TLS{SelfSigned: true, MinVersion: "1.3"}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if conf.MinVersion != tls.VersionTLS13 || conf.SessionTicketsDisabled || !slices.Equal(conf.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("config = min %x tickets-off %v alpn %v, want TLS 1.3, tickets on, h2 and http/1.1", conf.MinVersion, conf.SessionTicketsDisabled, conf.NextProtos)
	}
	for _, id := range conf.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("cipher suite %s offered, want ECDHE with AEAD only", name)
		}
	}
}

func TestGetCertificateAllocations(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ch, ky := ca.issue(t, leafOpts{names: []string{"one.example"}})
	c, k := writePair(t, dir, "one", ch, ky)
	_, certs, err := ServerTLS(&config.TLS{Cert: c, Key: k}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "one.example"}
	if n := testing.AllocsPerRun(100, func() { certs.GetCertificate(hello) }); n != 0 {
		t.Errorf("GetCertificate allocates %v times, want 0", n)
	}
}

func TestLocalCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	// Several processes starting together make one CA.
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range paths {
		wg.Add(1)
		go func() { defer wg.Done(); paths[i], errs[i] = LocalCA(dir) }()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != filepath.Join(dir, "ca.pem") {
			t.Fatalf("LocalCA() = %q, %v, want %s", paths[i], errs[i], filepath.Join(dir, "ca.pem"))
		}
	}
	first, _ := os.ReadFile(paths[0])
	again, err := LocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(again)
	if !bytes.Equal(first, second) {
		t.Error("LocalCA() made a new CA on the second call, want the first reused")
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem mode = %v, %v, want 0600", fi.Mode().Perm(), err)
	}
	ca, _, err := loadLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 || !ca.IsCA {
		t.Errorf("CA validity %.1f years, IsCA %v; want 10 years, a CA", years, ca.IsCA)
	}
	if ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA key = %v, want ECDSA", ca.PublicKeyAlgorithm)
	}

	// A self-signed frontend is trusted by a client that trusts the CA.
	conf, _, err := ServerTLS(&config.TLS{SelfSigned: true, Names: []string{"localhost", "127.0.0.1", "::1"}}, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, conf)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(first)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := handshake(addr, &tls.Config{ServerName: name, RootCAs: roots}); err != nil {
			t.Errorf("handshake as %s with the local CA trusted: %v", name, err)
		}
	}
	if _, err := handshake(addr, &tls.Config{ServerName: "localhost"}); err == nil {
		t.Error("handshake without trusting the local CA succeeded, want an unknown authority")
	}
	if s := TrustInstructions(paths[0]); !strings.Contains(s, paths[0]) || !strings.Contains(s, "update-ca-certificates") {
		t.Errorf("TrustInstructions() = %q, want the path and the Debian command", s)
	}
}

func TestLocalCACorrupt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, "ca-key.pem"), []byte("junk"), 0o600)
	if _, err := LocalCA(dir); err == nil || !strings.Contains(err.Error(), "remove ca.pem and ca-key.pem") {
		t.Errorf("LocalCA(corrupt) error = %v, want one that says what to remove", err)
	}
}

func TestClientTLS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, ca.pem, 0o644)
	chain, key := ca.issue(t, leafOpts{names: []string{"web.internal"}})
	serverCert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	cch, cky := ca.issue(t, leafOpts{names: []string{"lb.internal"}, client: true})
	clientCert, clientKey := writePair(t, dir, "client", cch, cky)
	var gotClient string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			gotClient = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f := false
	tests := []struct {
		name       string
		cfg        config.BackendTLS
		wantErr    string
		wantClient string
	}{
		{"verified", config.BackendTLS{CA: caPath, ServerName: "web.internal"}, "", ""},
		{"wrong server_name", config.BackendTLS{CA: caPath, ServerName: "db.internal"}, "not db.internal", ""},
		{"system roots do not know the CA", config.BackendTLS{ServerName: "web.internal"}, "unknown authority", ""},
		{"verify off", config.BackendTLS{Verify: &f}, "", ""},
		{"client certificate", config.BackendTLS{CA: caPath, ServerName: "web.internal", Cert: clientCert, Key: clientKey}, "", "lb.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotClient = ""
			conf, err := ClientTLS(&tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			st, err := handshakeHTTP(srv.Listener.Addr().String(), conf)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("handshake error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st != "ok" || gotClient != tt.wantClient {
				t.Errorf("response %q, client certificate %q; want ok, %q", st, gotClient, tt.wantClient)
			}
		})
	}
	if _, err := ClientTLS(&config.BackendTLS{CA: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("ClientTLS(missing ca) = nil error, want one")
	}
	if _, err := ClientTLS(&config.BackendTLS{CA: clientKey}); err == nil {
		t.Error("ClientTLS(ca without certificates) = nil error, want one")
	}
}

func handshakeHTTP(addr string, conf *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.internal\r\nConnection: close\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, _ := strings.Cut(string(b), "\r\n\r\n")
	return body, nil
}
