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
// so clients need not ask the responder themselves.

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
		if leaf == nil || len(leaf.OCSPServer) == 0 || now.Before(s.stapleNext) {
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
		// A staple past its NextUpdate must not be served.
		if s.staple != nil {
			if r, perr := ocsp.ParseResponse(s.staple, issuer); perr != nil || !r.NextUpdate.IsZero() && now.After(r.NextUpdate) {
				s.staple = nil
				changed = true
			}
		}
	}
	if changed {
		c.publish()
	}
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
