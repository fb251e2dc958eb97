package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// Parse errors. Each maps to the status the client gets (see statusFor).
var (
	errHeadTooLarge  = errors.New("proxy: request head too large")
	errBadRequest    = errors.New("proxy: malformed request")
	errBadVersion    = errors.New("proxy: unsupported HTTP version")
	errBadLength     = errors.New("proxy: invalid Content-Length")
	errBadTE         = errors.New("proxy: unsupported Transfer-Encoding")
	errAmbiguousBody = errors.New("proxy: both Content-Length and Transfer-Encoding")
	errBadResponse   = errors.New("proxy: malformed response from server")
)

// field is one header field; name and value are slices of head.buf.
type field struct {
	name, value []byte
}

// head is a parsed HTTP/1.x message head (request or response). Its slices
// point into buf, which is reused from message to message.
type head struct {
	buf    []byte
	fields []field

	// Start line: method, target and proto of a request, or proto, status
	// and reason of a response.
	startA, startB, startC []byte
	minor                  int // HTTP/1.minor
	status                 int // responses only

	// From the fields.
	contentLength int64 // -1: absent
	chunked       bool
	connClose     bool // Connection: close
	connKeepAlive bool // Connection: keep-alive
	connUpgrade   bool // Connection: upgrade
	upgrade       []byte
	host          []byte
	expect100     bool
	// idemKey: the client marked the request safe to repeat
	// (Idempotency-Key, draft-ietf-httpapi-idempotency-key-header).
	idemKey bool
	// connTokens are the other names listed in Connection: hop-by-hop too.
	connTokens [][]byte
}

func (h *head) reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
	h.startA, h.startB, h.startC = nil, nil, nil
	h.minor, h.status = 0, 0
	h.contentLength = -1
	h.chunked, h.connClose, h.connKeepAlive, h.connUpgrade, h.expect100 = false, false, false, false, false
	h.upgrade, h.host = nil, nil
	h.idemKey = false
	h.connTokens = h.connTokens[:0]
}

// readHead reads a message head (start line through the empty line) from br
// into h.buf, at most max bytes. Lines end in CRLF or a bare LF (RFC 9112
// section 2.2); a bare CR elsewhere is rejected by the parsers. An error
// with len(h.buf) == 0 means nothing of a new message had arrived.
func readHead(br byteSource, h *head, max int) error {
	h.reset()
	lineStart := 0
	skipped := false
	for {
		frag, err := br.ReadSlice('\n')
		if len(h.buf)+len(frag) > max {
			return errHeadTooLarge
		}
		h.buf = append(h.buf, frag...)
		if err == bufio.ErrBufferFull {
			continue // a line longer than the reader's buffer
		}
		if err != nil {
			return err
		}
		line := h.buf[lineStart:]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if lineStart > 0 {
				return nil
			}
			// Section 2.2: a server SHOULD ignore at least one empty line
			// received before the request line.
			if skipped {
				return errBadRequest
			}
			skipped = true
			h.buf = h.buf[:0]
			continue
		}
		lineStart = len(h.buf)
	}
}

// lines splits buf into lines without their line endings; fn returns false
// to stop.
func lines(buf []byte, fn func(line []byte) bool) {
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf) - 1
		}
		line := buf[:i]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		buf = buf[i+1:]
		if !fn(line) {
			return
		}
	}
}

// parseRequest parses h.buf as a request head.
func parseRequest(h *head) error {
	if err := parseHead(h, parseRequestLine); err != nil {
		return err
	}
	return checkFraming(h, true)
}

// parseResponse parses h.buf as a response head.
func parseResponse(h *head) error {
	if parseHead(h, parseStatusLine) != nil || checkFraming(h, false) != nil {
		return errBadResponse
	}
	return nil
}

// parseHead parses h.buf: the start line with start, then the fields.
func parseHead(h *head, start func(*head, []byte) error) error {
	var err error
	first := true
	lines(h.buf, func(line []byte) bool {
		if first {
			first = false
			err = start(h, line)
			return err == nil
		}
		if len(line) == 0 {
			return false
		}
		err = parseField(h, line)
		return err == nil
	})
	return err
}

// parseRequestLine: method SP request-target SP HTTP-version (RFC 9112 section 3).
func parseRequestLine(h *head, line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	method, target, proto := line[:sp1], rest[:sp2], rest[sp2+1:]
	for _, c := range method {
		if !isTokenChar(c) {
			return errBadRequest
		}
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return errBadRequest
		}
	}
	minor, ok := parseVersion(proto)
	if !ok {
		if len(proto) > 5 && string(proto[:5]) == "HTTP/" {
			return errBadVersion
		}
		return errBadRequest
	}
	h.startA, h.startB, h.startC, h.minor = method, target, proto, minor
	return nil
}

// parseStatusLine: HTTP-version SP status-code SP [reason-phrase].
func parseStatusLine(h *head, line []byte) error {
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return errBadResponse
	}
	minor, ok := parseVersion(line[:8])
	if !ok {
		return errBadResponse
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadResponse
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return errBadResponse
	}
	h.startA, h.startB = line[:8], line[9:12]
	if len(line) > 13 {
		h.startC = line[13:]
	}
	h.minor, h.status = minor, code
	return nil
}

func parseVersion(p []byte) (minor int, ok bool) {
	if len(p) != 8 || string(p[:7]) != "HTTP/1." {
		return 0, false
	}
	switch p[7] {
	case '0':
		return 0, true
	case '1':
		return 1, true
	}
	return 0, false
}

// parseField parses one field line and records what the proxy needs to know.
func parseField(h *head, line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return errBadRequest // obsolete line folding (RFC 9112 section 5.2)
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return errBadRequest
	}
	name := line[:colon]
	for _, c := range name {
		if !isTokenChar(c) { // also rejects space before the colon (section 5.1)
			return errBadRequest
		}
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errBadRequest
		}
	}
	h.fields = append(h.fields, field{name: name, value: value})
	switch {
	case equalFold(name, "content-length"):
		n, ok := parseLength(value)
		if !ok || (h.contentLength >= 0 && h.contentLength != n) {
			return errBadLength
		}
		h.contentLength = n
	case equalFold(name, "transfer-encoding"):
		if h.chunked || !equalFold(value, "chunked") {
			return errBadTE
		}
		h.chunked = true
	case equalFold(name, "connection"):
		forEachToken(value, func(tok []byte) {
			switch {
			case equalFold(tok, "close"):
				h.connClose = true
			case equalFold(tok, "keep-alive"):
				h.connKeepAlive = true
			case equalFold(tok, "upgrade"):
				h.connUpgrade = true
			default:
				h.connTokens = append(h.connTokens, tok)
			}
		})
	case equalFold(name, "upgrade"):
		h.upgrade = value
	case equalFold(name, "host"):
		if h.host != nil {
			return errBadRequest // RFC 9112 section 3.2: more than one Host is a 400
		}
		h.host = value
	case equalFold(name, "idempotency-key"):
		h.idemKey = len(value) > 0
	case equalFold(name, "expect"):
		if equalFold(value, "100-continue") {
			h.expect100 = true
		}
	}
	return nil
}

// checkFraming applies RFC 9112 section 6 to decide how the body is delimited.
func checkFraming(h *head, request bool) error {
	if h.chunked && h.contentLength >= 0 {
		if request {
			// Section 6.1: a request with both is a smuggling attempt or
			// a broken client; reject it and close.
			return errAmbiguousBody
		}
		h.contentLength = -1 // a response: Transfer-Encoding wins
	}
	if request {
		if h.chunked && h.minor == 0 {
			return errBadTE
		}
		if h.minor == 1 && h.host == nil {
			return errBadRequest // section 3.2: Host is required in HTTP/1.1
		}
	}
	return nil
}

func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// has reports whether the head has a field named name (lower case).
func (h *head) has(name string) bool {
	for _, fl := range h.fields {
		if equalFold(fl.name, name) {
			return true
		}
	}
	return false
}

// hopByHop reports whether a field must not be forwarded (RFC 9110 section 7.6.1).
func (h *head) hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		if equalFold(name, "connection") || equalFold(name, "keep-alive") {
			return true
		}
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	for _, t := range h.connTokens {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		if tok = trimOWS(tok); len(tok) > 0 {
			fn(tok)
		}
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in a token (RFC 9110 section 5.6.2).
func isTokenChar(c byte) bool {
	return tokenTable[c]
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// appendInt appends the decimal form of n.
func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
