package edge

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP stapling (RFC 6066 section 8, RFC 6960): when a certificate names an
// OCSP responder, fetch a signed "good" answer and send it in the handshake,
// so clients need not ask the responder themselves. A certificate from the
// local CA is stapled with an answer the CA signs here (localocsp.go).

const (
	ocspRetry   = time.Minute    // after a failed fetch
	ocspMinNext = time.Minute    // never refresh more often
	ocspMaxNext = 12 * time.Hour // nor less often
)

// refreshStaples fetches the staples that are due and publishes them.
func (c *Certs) refreshStaples(ctx context.Context) {
	if !c.ocsp {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	changed := false
	for _, s := range c.sources {
		leaf := s.cert.Leaf
		if leaf == nil || now.Before(s.stapleNext) {
			continue
		}
		if s.local != nil {
			raw, err := s.local.answer(leaf.SerialNumber, ocsp.Good, 0, now)
			if err != nil {
				// Not expected: the key signed the certificate.
				c.log.Warn("OCSP staple not signed by the local CA", "names", leaf.DNSNames, "err", err)
				s.stapleNext = now.Add(ocspRetry)
				changed = dropExpired(s, s.local.cert, now) || changed
				continue
			}
			s.staple, s.stapleNext = raw, now.Add(localOCSPValidity/2)
			changed = true
			continue
		}
		if len(leaf.OCSPServer) == 0 {
			continue
		}
		if len(s.cert.Certificate) < 2 {
			if !s.stapleFailed {
				c.log.Warn("no OCSP staple: the certificate file has no issuer certificate after the leaf", "names", leaf.DNSNames)
				s.stapleFailed = true
			}
			s.stapleNext = now.Add(ocspMaxNext)
			continue
		}
		issuer, err := x509.ParseCertificate(s.cert.Certificate[1])
		if err == nil {
			var raw []byte
			var next time.Time
			raw, next, err = fetchStaple(ctx, c.client, leaf, issuer, now)
			if err == nil {
				s.staple, s.stapleNext = raw, next
				if s.stapleFailed {
					c.log.Info("OCSP staple fetched again", "names", leaf.DNSNames)
				}
				s.stapleFailed = false
				changed = true
				continue
			}
		}
		if !s.stapleFailed {
			c.log.Warn("OCSP staple not refreshed", "names", leaf.DNSNames, "responder", leaf.OCSPServer[0], "err", err)
			s.stapleFailed = true
		}
		s.stapleNext = now.Add(ocspRetry)
		changed = dropExpired(s, issuer, now) || changed
	}
	if changed {
		c.publish()
	}
}

// dropExpired withdraws s's staple if it is past its NextUpdate (or no
// longer parses): an expired staple must not be served. It reports whether
// it did.
func dropExpired(s *certSource, issuer *x509.Certificate, now time.Time) bool {
	if s.staple == nil {
		return false
	}
	if r, err := ocsp.ParseResponse(s.staple, issuer); err == nil && (r.NextUpdate.IsZero() || !now.After(r.NextUpdate)) {
		return false
	}
	s.staple = nil
	return true
}

// fetchStaple asks leaf's responder about leaf and returns the response if
// it is a valid "good" answer, and when to ask again: halfway to its
// NextUpdate.
func fetchStaple(ctx context.Context, client *http.Client, leaf, issuer *x509.Certificate, now time.Time) ([]byte, time.Time, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return nil, time.Time{}, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, fmt.Errorf("responder answered %s", resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, time.Time{}, err
	}
	r, err := ocsp.ParseResponseForCert(raw, leaf, issuer)
	if err != nil {
		return nil, time.Time{}, err
	}
	if r.Status != ocsp.Good {
		return nil, time.Time{}, fmt.Errorf("certificate status is %s", statusName(r.Status))
	}
	if !r.NextUpdate.IsZero() && now.After(r.NextUpdate) {
		return nil, time.Time{}, fmt.Errorf("response expired at %v", r.NextUpdate)
	}
	wait := ocspMaxNext
	if !r.NextUpdate.IsZero() {
		wait = r.NextUpdate.Sub(now) / 2
	}
	return raw, now.Add(min(max(wait, ocspMinNext), ocspMaxNext)), nil
}

func statusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}
