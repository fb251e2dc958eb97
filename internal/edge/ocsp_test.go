package edge

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"fulcrum/internal/config"
)

// A staple is refreshed halfway to its NextUpdate, a failed fetch is
// retried a minute later while the old staple stays until it expires, and a
// revoked answer is never stapled.
func TestOCSPRefresh(t *testing.T) {
	ca := newTestCA(t)
	var mu sync.Mutex // guards status and mode, read by the responder
	status, mode := ocsp.Good, "ok"
	set := func(st int, m string) { mu.Lock(); status, mode = st, m; mu.Unlock() }
	thisUpdate := time.Now().Add(-time.Minute)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, m := status, mode
		mu.Unlock()
		if m == "down" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		resp, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: st, SerialNumber: bigSerial(42), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(2 * time.Hour),
			RevokedAt: thisUpdate, RevocationReason: ocsp.KeyCompromise,
		}, ca.key)
		if err != nil {
			t.Error(err)
		}
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ch, ky := ca.issue(t, leafOpts{names: []string{"s.example"}, ocsp: srv.URL, serial: 42})
	c, k := writePair(t, dir, "s", ch, ky)
	_, certs, err := ServerTLS(&config.TLS{Cert: c, Key: k}, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certs.now = func() time.Time { return now }
	staple := func() []byte {
		cert, _ := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "s.example"})
		return cert.OCSPStaple
	}
	ctx := context.Background()

	certs.refreshStaples(ctx)
	first := staple()
	if len(first) == 0 {
		t.Fatal("no staple after the first fetch")
	}
	next := certs.sources[0].stapleNext
	if want := thisUpdate.Add(2*time.Hour).Sub(now) / 2; next.Sub(now) < want-time.Second || next.Sub(now) > want+time.Second {
		t.Errorf("next refresh in %v, want halfway to NextUpdate, %v", next.Sub(now), want)
	}

	// Not due yet: nothing is fetched.
	set(ocsp.Good, "down")
	now = now.Add(10 * time.Minute)
	certs.refreshStaples(ctx)
	if certs.sources[0].stapleFailed {
		t.Error("fetched before the staple was due")
	}
	// Due, responder down: the old staple stays, retry in a minute.
	now = next.Add(time.Second)
	certs.refreshStaples(ctx)
	if got := staple(); string(got) != string(first) {
		t.Error("staple dropped while still valid because the responder was down")
	}
	if d := certs.sources[0].stapleNext.Sub(now); d != ocspRetry {
		t.Errorf("retry in %v, want %v", d, ocspRetry)
	}
	// Past NextUpdate and still down: the expired staple is withdrawn.
	now = thisUpdate.Add(2*time.Hour + time.Minute)
	certs.refreshStaples(ctx)
	if len(staple()) != 0 {
		t.Error("expired staple still served")
	}
	// Revoked: never stapled.
	set(ocsp.Revoked, "ok")
	now = now.Add(ocspRetry)
	certs.refreshStaples(ctx)
	if len(staple()) != 0 {
		t.Error("revoked status stapled")
	}
	if _, _, err := fetchStaple(ctx, http.DefaultClient, certs.sources[0].cert.Leaf, ca.cert, now); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("fetchStaple(revoked) error = %v, want revoked", err)
	}
}
