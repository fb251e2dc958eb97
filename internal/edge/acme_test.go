package edge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"fulcrum/internal/config"
)

// startPebble runs Let's Encrypt's test ACME server in this process on
// loopback. PEBBLE_VA_ALWAYS_VALID makes it accept every challenge without
// connecting anywhere, so nothing leaves the machine. It returns the
// directory URL, a PEM file of the roots its HTTPS uses, and the root that
// issued certificates chain to.
func startPebble(t *testing.T) (dir, httpsRoot string, issuing *x509.CertPool) {
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(tWriter{t}, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	// The validation ports are never dialled when every challenge is valid.
	validator := va.New(logger, 1, 1, false, "127.0.0.1:1", store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)
	httpsRoot = filepath.Join(t.TempDir(), "pebble-https.pem")
	if err := os.WriteFile(httpsRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	issuing = x509.NewCertPool()
	issuing.AddCert(authority.GetRootCert(0).Cert)
	return srv.URL + wfe.DirectoryPath, httpsRoot, issuing
}

func TestServerTLSACME(t *testing.T) {
	testShort(t)
	dir, root, issuing := startPebble(t)
	cfg := &config.TLS{ACME: &config.ACME{Email: "ops@example.com", Directory: dir, CARoot: root, Names: []string{"acme.example"}}}
	state := t.TempDir()
	conf, certs, err := ServerTLS(cfg, state, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if conf.NextProtos[len(conf.NextProtos)-1] != acmeALPN {
		t.Errorf("NextProtos = %v, want %s last for TLS-ALPN-01", conf.NextProtos, acmeALPN)
	}
	addr := serveTLS(t, conf)
	runCerts(t, certs)
	client := &tls.Config{ServerName: "acme.example", RootCAs: issuing}
	var st tls.ConnectionState
	waitFor(t, "a certificate from the ACME server", 60*time.Second, func() bool {
		st, err = handshake(addr, client)
		return err == nil
	})
	leaf := st.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "acme.example" {
		t.Errorf("certificate names = %v, want [acme.example]", leaf.DNSNames)
	}
	if st.NegotiatedProtocol != "" {
		t.Errorf("ALPN = %q without client protocols, want none", st.NegotiatedProtocol)
	}
	// The account and certificate are kept in the state directory, so a
	// restart does not ask the CA again.
	matches, _ := filepath.Glob(filepath.Join(state, "acme", "certificates", "*", "acme.example", "acme.example.crt"))
	if len(matches) != 1 {
		t.Errorf("stored certificates = %v, want one for acme.example under %s/acme", matches, state)
	}
}
