package edge

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
)

// LocalCAFile is where LocalCA keeps the local CA's certificate in
// stateDir, for configurations written before it is created.
func LocalCAFile(stateDir string) string { return filepath.Join(stateDir, localCACert) }

// IssueLocalFiles writes a server certificate for names (DNS names or IP
// addresses; the first is its common name) signed by the local CA in
// stateDir to certFile (PEM, 0644) and its private key to keyFile (PEM
// PKCS #8, 0600), for programs that read certificates from files (mariadbd,
// the web servers of `fulcrum up`). The CA is created first when stateDir
// has none. It returns the path of the CA's certificate, which clients
// verify the server with. The certificate is valid 90 days: call it at
// every start.
func IssueLocalFiles(stateDir string, names []string, certFile, keyFile string) (caFile string, err error) {
	if len(names) == 0 {
		return "", errors.New("edge: local certificate: no names")
	}
	if caFile, err = LocalCA(stateDir); err != nil {
		return "", err
	}
	cert, err := issueLocal(stateDir, names)
	if err != nil {
		return "", fmt.Errorf("edge: local certificate for %v: %w", names, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", fmt.Errorf("edge: local certificate for %v: %w", names, err)
	}
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", fmt.Errorf("edge: local certificate: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", fmt.Errorf("edge: local certificate: %w", err)
	}
	return filepath.Clean(caFile), nil
}

// LocalIssuer returns the local CA's certificate file in stateDir (created
// when it has none) and a function issuing certificate files from it, as
// IssueLocalFiles does: what a local database cluster's TLS needs
// (dbha.LocalTLS).
func LocalIssuer(stateDir string) (caFile string, issue func(names []string, certFile, keyFile string) error, err error) {
	if caFile, err = LocalCA(stateDir); err != nil {
		return "", nil, err
	}
	return caFile, func(names []string, certFile, keyFile string) error {
		_, err := IssueLocalFiles(stateDir, names, certFile, keyFile)
		return err
	}, nil
}
