package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"fulcrum/internal/config"
)

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange (forward
// secrecy) with an AEAD cipher only, as in Mozilla's "intermediate"
// configuration. TLS 1.3 suites are all AEAD and not configurable in Go.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Options are what a frontend's TLS needs beyond its tls section.
type Options struct {
	// StateDir holds the local CA (self_signed) and ACME's account and
	// certificates.
	StateDir string
	// Log receives certificate events (nil: discarded).
	Log *slog.Logger
	// OCSPAddr is the host:port of a plain-HTTP server that serves
	// NewLocalOCSP(StateDir) under LocalOCSPPath: the load balancer's
	// admin address. Certificates from the local CA name
	// http://OCSPAddr/ocsp/ as their OCSP responder; an unspecified host
	// (":9901") is replaced by the certificate's first name. Empty, or
	// port 0: they name none. They are stapled either way.
	OCSPAddr string
}

// ServerTLS is ServerTLSWith(cfg, Options{StateDir: stateDir, Log: log}):
// certificates from the local CA name no OCSP responder.
func ServerTLS(cfg *config.TLS, stateDir string, log *slog.Logger) (*tls.Config, *Certs, error) {
	return ServerTLSWith(cfg, Options{StateDir: stateDir, Log: log})
}

// ServerTLSWith builds a frontend's TLS configuration: TLS 1.2 and 1.3
// only, ECDHE+AEAD suites, HTTP/2 and HTTP/1.1 by ALPN (RFC 7301), session
// tickets for resumption, and certificates chosen by SNI from the returned
// Certs. Call Certs.Run to reload changed files, staple OCSP answers
// (signed by the local CA itself for its certificates) and manage ACME
// certificates; until then the certificates are served as loaded, without
// staples.
func ServerTLSWith(cfg *config.TLS, opts Options) (*tls.Config, *Certs, error) {
	if cfg == nil {
		return nil, nil, errors.New("edge: no tls section")
	}
	log, stateDir := opts.Log, opts.StateDir
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ocsp := cfg.OCSPStapling == nil || *cfg.OCSPStapling
	certs := newCerts(log, cfg.ReloadInterval.D(), ocsp)
	nextProtos := []string{"h2", "http/1.1"}
	switch {
	case cfg.ACME != nil:
		m, err := newACME(cfg.ACME, stateDir, log)
		if err != nil {
			return nil, nil, err
		}
		certs.acme = m
		// RFC 8737: the TLS-ALPN-01 challenge arrives on this listener.
		nextProtos = append(nextProtos, acmeALPN)
	case cfg.SelfSigned:
		caPath, err := LocalCA(stateDir)
		if err != nil {
			return nil, nil, err
		}
		names := localNames(cfg.Names)
		url := localOCSPURL(opts.OCSPAddr, names[0])
		cert, ca, err := issueLocalCert(stateDir, names, url)
		if err != nil {
			return nil, nil, err
		}
		// The chain served is the leaf and the CA, so that clients and
		// tools told to trust the CA can check the staple against it.
		cert.Certificate = append(cert.Certificate, ca.cert.Raw)
		certs.addLocal(cert, ca)
		log.Info("serving a certificate from the local CA", "ca", caPath, "names", names, "serial", cert.Leaf.SerialNumber.Text(16), "ocsp_responder", url)
	default:
		pairs := cfg.Certificates
		if cfg.Cert != "" {
			pairs = append([]config.CertKey{{Cert: cfg.Cert, Key: cfg.Key}}, pairs...)
		}
		if len(pairs) == 0 {
			return nil, nil, errors.New("edge: tls: no certificate")
		}
		for _, p := range pairs {
			if err := certs.addFile(p.Cert, p.Key); err != nil {
				return nil, nil, fmt.Errorf("edge: tls: %w", err)
			}
		}
	}
	if certs.acme == nil {
		certs.publish()
	}
	minVersion := uint16(tls.VersionTLS12)
	if cfg.MinVersion == "1.3" {
		minVersion = tls.VersionTLS13
	}
	certs.conf = &tls.Config{
		MinVersion:     minVersion,
		CipherSuites:   cipherSuites,
		NextProtos:     nextProtos,
		GetCertificate: certs.GetCertificate,
	}
	return certs.conf, certs, nil
}
