package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/dbrouter"
	"fulcrum/internal/edge"
	"fulcrum/internal/testenv"
)

// TestTLSBothWays serves the guestbook over HTTPS only, on a cluster that
// refuses database logins without TLS: the site answers over TLS (HTTP/2)
// with the database reached, plain HTTP on the same port gets no page, and
// the application's database sessions are encrypted.
func TestTLSBothWays(t *testing.T) {
	testenv.Short(t)
	testenv.Program(t, "mariadbd", "mariadb-install-db")
	dir, err := os.MkdirTemp("", "fulcrum-web-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, issue, err := edge.LocalIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: filepath.Join(dir, "db"), Nodes: 2, FreePorts: true,
		SemiSyncTimeout: 3 * time.Second, TLS: &dbha.LocalTLS{CA: ca, Issue: issue}})
	if l != nil {
		t.Cleanup(func() { l.Stop() })
	}
	if err != nil {
		t.Fatalf("StartLocal() = %v", err)
	}
	cert, key := filepath.Join(dir, "web-cert.pem"), filepath.Join(dir, "web-key.pem")
	if err := issue([]string{"127.0.0.1"}, cert, key); err != nil {
		t.Fatal(err)
	}
	creds := l.Credentials()
	off := false
	s, err := New(&config.Web{Name: "web1", Listen: "127.0.0.1:0", App: "guestbook", AccessLog: &off,
		TLS: &config.WebTLS{Cert: cert, Key: key},
		Database: &config.WebDatabase{Nodes: l.Addrs(), User: creds.AppUser, Password: creds.AppPassword,
			Name: creds.Database, CheckInterval: config.Duration(100 * time.Millisecond), TLS: &config.DBTLS{CA: ca}}}, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	addr, _ := serve(t, s)

	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	var resp *http.Response
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err = client.Get("https://" + addr + "/healthz")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("https /healthz = %v, %q after 30s", err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.TLS == nil || resp.ProtoMajor != 2 {
		t.Errorf("https /healthz over HTTP/%d, TLS %v; want HTTP/2 over TLS", resp.ProtoMajor, resp.TLS != nil)
	}
	resp, err = client.Post("https://"+addr+"/api/messages", "application/json", strings.NewReader(`{"name":"tls","message":"over TLS both ways"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("POST over HTTPS = %d, want 201", resp.StatusCode)
	}

	// Plain HTTP on the TLS port: no page.
	plain := &http.Client{Timeout: 2 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "ok") {
			t.Errorf("plain HTTP to the TLS port = %d %q, want no page", resp.StatusCode, b)
		}
	}

	// The application's database sessions: the POST went to the primary,
	// which refuses sessions without TLS; reads show their cipher.
	for range 2 {
		rows, err := s.db.Query(context.Background(), dbrouter.Token{}, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
		if err != nil {
			t.Fatalf("Query() = %v", err)
		}
		var name, cipher string
		if !rows.Next() || rows.Scan(&name, &cipher) != nil || cipher == "" {
			t.Errorf("Ssl_cipher of the application's session on %s = %q, want a cipher", rows.Node, cipher)
		} else {
			t.Logf("application session on %s: %s", rows.Node, cipher)
		}
		rows.Close()
	}
}
