package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// File names of the local CA inside the state directory.
const (
	localCACert = "ca.pem"
	localCAKey  = "ca-key.pem"
	localCALock = "ca.lock"
)

// LocalCA returns the path of the local CA's certificate in stateDir,
// creating the CA (ECDSA P-256, valid 10 years) the first time. Later calls,
// and other processes sharing stateDir, reuse it; a file lock keeps two
// processes starting together from making two CAs. The key is written
// 0600.
func LocalCA(stateDir string) (caCertPEMPath string, err error) {
	if stateDir == "" {
		return "", errors.New("edge: local CA: no state directory")
	}
	unlock, err := lockLocalCA(stateDir)
	if err != nil {
		return "", err
	}
	defer unlock()

	certPath := filepath.Join(stateDir, localCACert)
	if _, _, err := loadLocalCA(stateDir); err == nil {
		return certPath, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			Organization:       []string{"fulcrum local CA"},
			OrganizationalUnit: []string{host},
			CommonName:         "fulcrum local CA " + host,
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", fmt.Errorf("edge: local CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	// The key first: a certificate without its key would be reused and fail.
	if err := writeFileAtomic(filepath.Join(stateDir, localCAKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", fmt.Errorf("edge: local CA: %w", err)
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", fmt.Errorf("edge: local CA: %w", err)
	}
	return certPath, nil
}

// lockLocalCA takes the lock that serialises changes to the local CA's
// files among processes sharing stateDir, creating stateDir if needed.
func lockLocalCA(stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: local CA: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(stateDir, localCALock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("edge: local CA: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("edge: local CA: lock: %w", err)
	}
	// Closing the file releases the lock.
	return func() { lock.Close() }, nil
}

func loadLocalCA(stateDir string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(stateDir, localCACert), filepath.Join(stateDir, localCAKey))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("edge: local CA in %s: %w (remove %s and %s to make a new one)", stateDir, err, localCACert, localCAKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("edge: local CA: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, nil, fmt.Errorf("edge: local CA in %s: not a CA certificate and key", stateDir)
	}
	return cert, signer, nil
}

// localNames are the names of a certificate from the local CA: names, or
// localhost and the loopback addresses when there are none.
func localNames(names []string) []string {
	if len(names) == 0 {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	return names
}

// issueLocal makes a server certificate for names (DNS names or IP
// addresses) signed by the local CA, valid 90 days, and records it among
// the certificates the CA issued. A new one is made at every start.
func issueLocal(stateDir string, names []string) (*tls.Certificate, error) {
	cert, _, err := issueLocalCert(stateDir, names, "")
	return cert, err
}

// issueLocalCert is issueLocal naming ocspURL as the certificate's OCSP
// responder when it is not empty; it also returns the CA, which signs the
// certificate's OCSP answers. The chain holds the leaf alone.
func issueLocalCert(stateDir string, names []string, ocspURL string) (*tls.Certificate, *localIssuer, error) {
	names = localNames(names)
	unlock, err := lockLocalCA(stateDir)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	ca, caKey, err := loadLocalCA(stateDir)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"fulcrum"}, CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, 90),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	for _, n := range names {
		if a, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("edge: self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	// Recorded before it is served: a client asking the responder about
	// it must hear "good".
	if err := recordIssued(stateDir, leaf, now); err != nil {
		return nil, nil, fmt.Errorf("edge: local CA: recording the certificate issued: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, &localIssuer{cert: ca, key: caKey}, nil
}

// TrustInstructions tells a person how to make browsers and tools trust
// the local CA at caPath.
func TrustInstructions(caPath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "fulcrum's local CA is %s. To trust it:\n", caPath)
	fmt.Fprintf(&b, "  curl:           curl --cacert %s https://127.0.0.1:8443/\n", caPath)
	fmt.Fprintf(&b, "  Debian, Ubuntu: sudo cp %s /usr/local/share/ca-certificates/fulcrum-local-ca.crt && sudo update-ca-certificates\n", caPath)
	fmt.Fprintf(&b, "  Fedora, RHEL:   sudo cp %s /etc/pki/ca-trust/source/anchors/fulcrum-local-ca.pem && sudo update-ca-trust\n", caPath)
	fmt.Fprintf(&b, "  macOS:          sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s\n", caPath)
	fmt.Fprintf(&b, "  Chrome on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n fulcrum-local-ca -i %s\n", caPath)
	b.WriteString("Only this machine's CA key (0600, in the same directory) can issue certificates it vouches for; delete both files to revoke it.\n")
	return b.String()
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
