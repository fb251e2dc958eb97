package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"fulcrum/internal/config"
)

// ClientTLS builds the TLS configuration for connections to a backend's
// servers: TLS 1.2 or later; when verify is on (the default) the server's
// certificate must chain to ca (or the system roots) and name server_name;
// an optional client certificate; session resumption. When server_name is
// empty the caller sets ServerName on a Clone per server (the host of its
// address). ALPN is left to the caller.
func ClientTLS(cfg *config.BackendTLS) (*tls.Config, error) {
	if cfg == nil {
		return nil, errors.New("edge: no tls section")
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.ServerName,
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if cfg.Verify != nil && !*cfg.Verify {
		c.InsecureSkipVerify = true
	}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("edge: backend tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edge: backend tls: ca %s: no PEM certificate in it", cfg.CA)
		}
		c.RootCAs = pool
	}
	if cfg.Cert != "" || cfg.Key != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("edge: backend tls: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
