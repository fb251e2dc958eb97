package edge

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// The local CA answers for its own certificates (RFC 6960): every leaf it
// issues is recorded in the state directory, the frontend staples a "good"
// answer it signs itself (no responder to fetch from), and LocalOCSP serves
// the same answers over HTTP at the URL the leaves name, for clients that
// ask. Both load balancers of a pair share the state directory, so either
// answers for the other's certificate.

// LocalOCSPPath is the path under which an HTTP server mounts the local
// CA's responder (NewLocalOCSP); certificates from the local CA name
// http://ADDR/ocsp/ as their responder, ADDR being Options.OCSPAddr.
const LocalOCSPPath = "/ocsp/"

const (
	localIssuedFile = "ca-issued.txt" // the certificates the local CA issued
	// localOCSPValidity is how long a signed answer is valid; the staple is
	// refreshed halfway (ocspMaxNext).
	localOCSPValidity = 24 * time.Hour
	// localOCSPBackdate tolerates clients whose clocks run behind.
	localOCSPBackdate = 5 * time.Minute
	// maxIssued bounds the record: a reload issues a new leaf, so a
	// process reloaded very often would otherwise grow it without end.
	maxIssued = 10000
	// maxOCSPRequest bounds a request body; a request for one
	// certificate is about 100 bytes.
	maxOCSPRequest = 8 << 10
)

// localIssuer is the local CA's certificate and key, which sign its OCSP
// answers directly (RFC 6960 section 4.2.2.2: the CA itself may sign).
type localIssuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// answer signs the local CA's answer about serial (ocsp.Good, Unknown),
// with the CertID hashed by hash (ocsp's default, SHA-1, when 0), valid
// from now for localOCSPValidity.
func (ca *localIssuer) answer(serial *big.Int, status int, hash crypto.Hash, now time.Time) ([]byte, error) {
	return ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
		Status:       status,
		SerialNumber: serial,
		IssuerHash:   hash,
		ThisUpdate:   now.Add(-localOCSPBackdate),
		NextUpdate:   now.Add(localOCSPValidity),
	}, ca.key)
}

// localOCSPURL is the responder URL that certificates from the local CA
// name: the HTTP server at addr ("127.0.0.1:9901"). An unspecified host
// (":9901", "0.0.0.0:9901") is replaced by host, the certificate's first
// name, by which clients reach this machine. It is "" when addr is empty
// or has port 0, since no client could reach that.
func localOCSPURL(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if a, err := netip.ParseAddr(h); h == "" || err == nil && a.IsUnspecified() {
		h = strings.TrimPrefix(host, "*.")
	}
	return "http://" + net.JoinHostPort(h, port) + LocalOCSPPath
}

// issuedRecord is the list of certificates the local CA issued, one line
// each, oldest first:
//
//	# comment
//	<serial, hex> <not after, RFC 3339> <names, comma-separated>
//
// Lines that do not parse are dropped; the names are for people reading
// the file.
type issuedRecord struct {
	serial   *big.Int
	notAfter time.Time
	names    string
}

// parseIssued reads the record, skipping comments and malformed lines.
func parseIssued(data []byte) []issuedRecord {
	var out []issuedRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		serial, ok := new(big.Int).SetString(f[0], 16)
		if !ok || serial.Sign() <= 0 {
			continue
		}
		notAfter, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			continue
		}
		r := issuedRecord{serial: serial, notAfter: notAfter}
		if len(f) > 2 {
			r.names = f[2]
		}
		out = append(out, r)
	}
	return out
}

func appendIssued(b []byte, r issuedRecord) []byte {
	b = r.serial.Append(b, 16)
	b = append(b, ' ')
	b = r.notAfter.UTC().AppendFormat(b, time.RFC3339Nano)
	if r.names != "" {
		b = append(b, ' ')
		b = append(b, r.names...)
	}
	return append(b, '\n')
}

// recordIssued adds leaf to the record in stateDir, dropping certificates
// that have expired. The caller holds the CA lock.
func recordIssued(stateDir string, leaf *x509.Certificate, now time.Time) error {
	path := filepath.Join(stateDir, localIssuedFile)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	recs := slices.DeleteFunc(parseIssued(old), func(r issuedRecord) bool { return now.After(r.notAfter) })
	if len(recs) >= maxIssued {
		recs = recs[len(recs)-maxIssued+1:]
	}
	names := append(slices.Clone(leaf.DNSNames), ipStrings(leaf.IPAddresses)...)
	recs = append(recs, issuedRecord{serial: leaf.SerialNumber, notAfter: leaf.NotAfter, names: strings.Join(names, ",")})
	b := []byte("# Certificates issued by fulcrum's local CA (ca.pem), which its OCSP responder answers \"good\" for:\n# serial (hex), not after, names\n")
	for _, r := range recs {
		b = appendIssued(b, r)
	}
	return writeFileAtomic(path, b, 0o644)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// LocalOCSP is the local CA's OCSP responder over HTTP (RFC 6960 appendix
// A, RFC 5019): GET LocalOCSPPath + base64(request) or POST of the DER
// request. It answers "good", signed by the CA, for every unexpired
// certificate the CA issued (including those issued by other processes
// sharing the state directory), "unknown" for any other serial, and
// "unauthorized" for a request about another issuer or when there is no
// local CA. It reads the state directory when its files change, so it can
// be created before the CA exists.
type LocalOCSP struct {
	stateDir string
	log      *slog.Logger
	now      func() time.Time

	mu sync.Mutex
	// mu guards the fields below.
	ca       *localIssuer
	caStamp  fileStamp
	caErr    string // the last error loading the CA, logged once
	issued   map[string]time.Time
	recStamp fileStamp
}

var _ http.Handler = (*LocalOCSP)(nil)

// NewLocalOCSP returns the responder for the local CA in stateDir. A nil
// log discards.
func NewLocalOCSP(stateDir string, log *slog.Logger) *LocalOCSP {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LocalOCSP{stateDir: stateDir, log: log, now: time.Now}
}

// ServeHTTP answers one OCSP request. Errors are OCSP error responses with
// HTTP status 200, as RFC 5019 section 5 asks.
func (o *LocalOCSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var der []byte
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// RFC 6960 A.1: the path's last part is the URL-encoded base64 of
		// the request (whose "/" are escaped); the mux may or may not
		// have stripped LocalOCSPPath.
		p := r.URL.EscapedPath()
		if i := strings.Index(p, LocalOCSPPath); i >= 0 {
			p = p[i+len(LocalOCSPPath):]
		} else {
			p = strings.TrimPrefix(p, "/")
		}
		if p, err := url.PathUnescape(p); err == nil {
			der, _ = base64.StdEncoding.DecodeString(p)
		}
	case http.MethodPost:
		var err error
		der, err = io.ReadAll(io.LimitReader(r.Body, maxOCSPRequest+1))
		if err != nil {
			return
		}
		if len(der) > maxOCSPRequest {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "OCSP requests are GET or POST (RFC 6960 appendix A)", http.StatusMethodNotAllowed)
		return
	}
	resp, cacheable := o.respond(der)
	w.Header().Set("Content-Type", "application/ocsp-response")
	if cacheable && r.Method != http.MethodPost {
		// RFC 5019 section 6.2: caches may keep a GET answer until
		// halfway to its NextUpdate, when the staple is refreshed too.
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(localOCSPValidity/2/time.Second)))
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Write(resp)
}

// respond returns the DER answer to the DER request der, and whether it is
// a signed answer that caches may keep.
func (o *LocalOCSP) respond(der []byte) ([]byte, bool) {
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refresh()
	if o.ca == nil || !o.ca.covers(req) {
		return ocsp.UnauthorizedErrorResponse, false
	}
	now := o.now()
	status := ocsp.Unknown
	if na, ok := o.issued[req.SerialNumber.Text(16)]; ok && now.Before(na) {
		status = ocsp.Good
	}
	resp, err := o.ca.answer(req.SerialNumber, status, req.HashAlgorithm, now)
	if err != nil {
		o.log.Warn("local OCSP responder: cannot sign", "err", err)
		return ocsp.InternalErrorErrorResponse, false
	}
	return resp, true
}

// refresh rereads the CA and the record of issued certificates when their
// files changed. o.mu is held.
func (o *LocalOCSP) refresh() {
	if st, err := stampOf(filepath.Join(o.stateDir, localCAKey)); err != nil {
		o.ca = nil
	} else if o.ca == nil || st != o.caStamp {
		cert, key, err := loadLocalCA(o.stateDir)
		if err != nil {
			if err.Error() != o.caErr {
				o.log.Warn("local OCSP responder: no CA to answer for", "state_dir", o.stateDir, "err", err)
				o.caErr = err.Error()
			}
			o.ca = nil
		} else {
			o.ca, o.caStamp, o.caErr = &localIssuer{cert: cert, key: key}, st, ""
		}
	}
	path := filepath.Join(o.stateDir, localIssuedFile)
	st, err := stampOf(path)
	if err != nil {
		o.issued, o.recStamp = nil, fileStamp{}
		return
	}
	if o.issued != nil && st == o.recStamp {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	o.issued = map[string]time.Time{}
	for _, r := range parseIssued(data) {
		o.issued[r.serial.Text(16)] = r.notAfter
	}
	o.recStamp = st
}

// covers reports whether req asks about a certificate issued by ca: the
// CertID's issuer name and key hashes (RFC 6960 section 4.1.1) are ca's.
func (ca *localIssuer) covers(req *ocsp.Request) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(ca.cert.RawSubject)
	name := h.Sum(nil)
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	return bytes.Equal(name, req.IssuerNameHash) && bytes.Equal(h.Sum(nil), req.IssuerKeyHash)
}
