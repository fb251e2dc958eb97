package config

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fulcrum/internal/testenv"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	_, k, certPEM := testenv.CA(t, "127.0.0.1")
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestDBTLS(t *testing.T) {
	dir := t.TempDir()
	ca, key := selfSigned(t, dir)
	pw := writePw(t, "x")
	dbBase := "admin_user: a\nadmin_password_file: " + pw + "\nrepl_user: r\nrepl_password_file: " + pw + "\nnodes: [{address: 127.0.0.1:3306}]\n"
	webBase := "name: w\nlisten: 127.0.0.1:9101\napp: guestbook\ndatabase: {nodes: [127.0.0.1:3306], user: u, name: d"
	lbBase := "frontends: [{name: db, mode: tcp, bind: [\"127.0.0.1:3300\"], default_backend: db}]\n" +
		"backends:\n  - name: db\n    mode: tcp\n    servers: [{name: s, address: \"127.0.0.1:3306\"}]\n    health: {type: mysql, role: primary, user: u"
	tests := []struct {
		name, file, yaml string
		want             string // "" : accepted
	}{
		{"db ok", "db", dbBase + "tls: {ca: " + ca + ", server_name: db.example}\n", ""},
		{"db no ca", "db", dbBase + "tls: {server_name: db.example}\n", "tls.ca: a CA file is required"},
		{"db missing ca", "db", dbBase + "tls: {ca: /nonexistent/ca.pem}\n", `tls.ca: "/nonexistent/ca.pem"`},
		{"db ca not PEM", "db", dbBase + "tls: {ca: " + pw + "}\n", "holds no PEM certificate"},
		{"db bad name", "db", dbBase + "tls: {ca: " + ca + ", server_name: \"a b\"}\n", "tls.server_name: \"a b\": not a DNS name or IP address"},
		{"db unknown key", "db", dbBase + "tls: {ca: " + ca + ", verify: false}\n", "unknown key"},
		{"web database ok", "web", webBase + ", tls: {ca: " + ca + "}}\n", ""},
		{"web database no ca", "web", webBase + ", tls: {}}\n", "database.tls.ca: a CA file is required"},
		{"web serves tls", "web", webBase + "}\ntls: {cert: " + ca + ", key: " + key + "}\n", ""},
		{"web tls without key", "web", webBase + "}\ntls: {cert: " + ca + "}\n", "tls: cert and key are both required"},
		{"mysql check ok", "lb", lbBase + ", tls: {ca: " + ca + "}}\n", ""},
		{"mysql check no ca", "lb", lbBase + ", tls: {}}\n", "backends[0].health.tls.ca: a CA file is required"},
		{"http check tls", "lb", "frontends: [{name: w, bind: [\"127.0.0.1:8080\"], default_backend: w}]\nbackends:\n  - name: w\n" +
			"    servers: [{name: s, address: \"127.0.0.1:80\"}]\n    health: {type: http, path: /, tls: {ca: " + ca + "}}\n",
			"backends[0].health.tls: only mysql checks take tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			switch tt.file {
			case "db":
				var c *DB
				if c, err = ParseDB("db.yaml", []byte(tt.yaml)); err == nil {
					if tc, cerr := c.TLS.ClientConfig(); cerr != nil || tc.RootCAs == nil || tc.ServerName != "db.example" {
						t.Errorf("ClientConfig() = %+v, %v; want the CA and server name db.example", tc, cerr)
					}
				}
			case "web":
				_, err = ParseWeb("web.yaml", []byte(tt.yaml))
			case "lb":
				_, err = ParseLB("lb.yaml", []byte(tt.yaml))
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Parse = %v, want it accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if tc, err := (*DBTLS)(nil).ClientConfig(); tc != nil || err != nil {
		t.Errorf("nil ClientConfig() = %v, %v; want nil, nil", tc, err)
	}
}

func TestLoadWebResolvesTLSPaths(t *testing.T) {
	dir := t.TempDir()
	selfSigned(t, dir)
	path := filepath.Join(dir, "web.yaml")
	y := "name: w\nlisten: 127.0.0.1:9101\napp: guestbook\ntls: {cert: cert.pem, key: key.pem}\n" +
		"database: {nodes: [127.0.0.1:3306], user: u, name: d, tls: {ca: cert.pem}}\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWeb(path)
	if err != nil {
		t.Fatalf("LoadWeb() = %v", err)
	}
	for key, got := range map[string]string{"tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key, "database.tls.ca": c.Database.TLS.CA} {
		if want := filepath.Join(dir, filepath.Base(got)); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}
