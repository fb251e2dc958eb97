package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// HTTPCheck configures an HTTP check (HAProxy option httpchk with
// http-check expect status).
type HTTPCheck struct {
	// Method of the request (default OPTIONS, as HAProxy's option httpchk).
	Method string
	// Path of the request, "/" by default; it may carry a query.
	Path string
	// Host header (default: the server's address).
	Host string
	// ExpectLo..ExpectHi is the healthy status range (default 200-399:
	// HAProxy's 2xx and 3xx). ExpectHi 0 means ExpectLo alone.
	ExpectLo, ExpectHi int
	// TLS sends the check over TLS with this configuration, as HAProxy's
	// check-ssl (nil: plain HTTP). ServerName empty: the host of the
	// server's address. A server that only speaks TLS answers a plain
	// request with 400, which would fail the check.
	TLS *tls.Config
}

// HTTP checks that a server answers a request with a status in range and a
// complete response.
type HTTP struct {
	addr   string
	req    []byte
	method string
	lo, hi int
	tls    *tls.Config // nil: plain HTTP
	err    error       // a configuration error, returned by every Check
}

var _ Checker = (*HTTP)(nil)

// NewHTTP returns a Checker that sends one HTTP/1.1 request to addr
// (host:port) on a new connection, with Host and Connection: close, and
// passes when the status is in range and the whole response, body
// included, arrives before the deadline. HAProxy's option httpchk sends
// HTTP/1.0; HTTP/1.1 with a Host header also reaches name-based virtual
// hosts. A configuration error is returned by every Check.
func NewHTTP(addr string, c HTTPCheck) Checker {
	h := &HTTP{addr: addr, method: c.Method, lo: c.ExpectLo, hi: c.ExpectHi}
	if c.TLS != nil {
		h.tls = c.TLS.Clone()
		if h.tls.ServerName == "" {
			h.tls.ServerName, _, _ = net.SplitHostPort(addr)
		}
		// The check speaks HTTP/1.1 on its own.
		h.tls.NextProtos = []string{"http/1.1"}
	}
	if h.method == "" {
		h.method = "OPTIONS"
	}
	path := c.Path
	if path == "" {
		path = "/"
	}
	host := c.Host
	if host == "" {
		host = addr
	}
	if h.lo == 0 && h.hi == 0 {
		h.lo, h.hi = 200, 399
	} else if h.hi == 0 {
		h.hi = h.lo
	}
	switch {
	case !isToken(h.method):
		h.err = fmt.Errorf("http check: method %q: not an HTTP token", h.method)
	case path != "*" && !strings.HasPrefix(path, "/") || !isVisible(path):
		h.err = fmt.Errorf("http check: path %q: must start with / and hold no space or control character", path)
	case !isVisible(host):
		h.err = fmt.Errorf("http check: host %q: must hold no space or control character", host)
	case h.lo < 100 || h.hi > 599 || h.lo > h.hi:
		h.err = fmt.Errorf("http check: expect %d-%d: want a range within 100-599", h.lo, h.hi)
	}
	h.req = fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		h.method, path, host)
	return h
}

// Check sends the request and reads the response.
func (h *HTTP) Check(ctx context.Context) error {
	if h.err != nil {
		return h.err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// A cancel without a deadline still unblocks reads and writes.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if h.tls != nil {
		tc := tls.Client(c, h.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("http check: tls: %w", err)
		}
		c = tc
	}

	if _, err := c.Write(h.req); err != nil {
		return fmt.Errorf("http check: sending request: %w", err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := readHead(br)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	if resp.status < h.lo || resp.status > h.hi {
		return fmt.Errorf("http check: status %d, want %s", resp.status, statusRange(h.lo, h.hi))
	}
	if err := discardBody(br, resp, h.method); err != nil {
		return fmt.Errorf("http check: status %d, body: %w", resp.status, err)
	}
	return nil
}

func statusRange(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// isToken reports whether s is an RFC 9110 section 5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isVisible reports whether s is non-empty and holds only visible ASCII.
func isVisible(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// errHTTP is wrapped by every malformed-response error.
var errHTTP = errors.New("malformed response")
