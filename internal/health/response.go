package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The response reader of the HTTP check: just enough HTTP/1.1 (RFC 9112) to
// find the status and consume the whole message, strict where a lenient
// reading could mistake a broken server for a healthy one.

// maxHead caps the bytes of a response's status line and header section,
// interim (1xx) responses included.
const maxHead = 64 << 10

// head is what the check needs from a response's header section.
type head struct {
	status        int
	contentLength int64 // -1: none
	chunked       bool  // Transfer-Encoding ends with chunked
	encoded       bool  // Transfer-Encoding present
}

// readHead reads the status line and header fields of the final response,
// skipping interim 1xx responses (RFC 9110 section 15.2) other than 101.
func readHead(r *bufio.Reader) (head, error) {
	budget := maxHead
	for {
		h, err := readOneHead(r, &budget)
		if err != nil {
			return head{}, err
		}
		if h.status >= 200 || h.status == 101 {
			return h, nil
		}
	}
}

func readOneHead(r *bufio.Reader, budget *int) (head, error) {
	h := head{contentLength: -1}
	line, err := readLine(r, budget)
	if err != nil {
		return h, fmt.Errorf("status line: %w", err)
	}
	h.status, err = parseStatusLine(line)
	if err != nil {
		return h, err
	}
	for {
		line, err := readLine(r, budget)
		if err != nil {
			return h, fmt.Errorf("header section: %w", err)
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, err := parseField(line)
		if err != nil {
			return h, err
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := parseContentLength(value)
			if err != nil {
				return h, err
			}
			// RFC 9112 section 6.3: differing lengths are unrecoverable.
			if h.contentLength >= 0 && h.contentLength != n {
				return h, fmt.Errorf("%w: conflicting Content-Length %d and %d", errHTTP, h.contentLength, n)
			}
			h.contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			h.encoded = true
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = value[i+1:]
			}
			h.chunked = asciiEqualFold(bytes.Trim(last, " \t"), "chunked")
		}
	}
}

// parseStatusLine parses `HTTP/1.x 200 reason` (RFC 9112 section 4); the
// reason may be absent.
func parseStatusLine(line []byte) (int, error) {
	// "HTTP/1.1 200" is the shortest valid line.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/")) ||
		!isDigit(line[5]) || line[6] != '.' || !isDigit(line[7]) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
		len(line) > 12 && line[12] != ' ' {
		return 0, fmt.Errorf("%w: status line %q", errHTTP, clip(line))
	}
	code := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if code < 100 || code > 599 {
		return 0, fmt.Errorf("%w: status code %d", errHTTP, code)
	}
	return code, nil
}

// parseField splits `name: value` (RFC 9112 section 5), rejecting
// whitespace before the colon and obsolete line folding.
func parseField(line []byte) (name, value []byte, err error) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, fmt.Errorf("%w: header line %q", errHTTP, clip(line))
	}
	name = line[:i]
	for _, c := range name {
		if !isTchar(c) {
			return nil, nil, fmt.Errorf("%w: header name %q", errHTTP, clip(name))
		}
	}
	return name, bytes.Trim(line[i+1:], " \t"), nil
}

func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, fmt.Errorf("%w: Content-Length %q", errHTTP, clip(v))
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, fmt.Errorf("%w: Content-Length %q", errHTTP, clip(v))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// discardBody reads and drops the body of a response to method, following
// RFC 9112 section 6.3, and fails unless all of it arrived.
func discardBody(r *bufio.Reader, h head, method string) error {
	switch {
	case method == "HEAD", h.status < 200, h.status == 204, h.status == 304:
		return nil
	case h.encoded && h.chunked:
		return discardChunked(r)
	case h.encoded:
		// Not chunked: the body runs to the end of the connection.
	case h.contentLength >= 0:
		n, err := io.CopyN(io.Discard, r, h.contentLength)
		if err == io.EOF {
			return fmt.Errorf("%d of %d bytes: %w", n, h.contentLength, io.ErrUnexpectedEOF)
		}
		return err
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// discardChunked reads a chunked body (RFC 9112 section 7.1) and its
// trailer section.
func discardChunked(r *bufio.Reader) error {
	budget := maxHead // for chunk-size lines and trailers
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			for {
				line, err := readLine(r, &budget)
				if err != nil {
					return fmt.Errorf("trailer section: %w", err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(io.Discard, r, size); err != nil {
			return fmt.Errorf("chunk data: %w", eofIsUnexpected(err))
		}
		line, err = readLine(r, &budget)
		if err != nil {
			return fmt.Errorf("chunk end: %w", err)
		}
		if len(line) != 0 {
			return fmt.Errorf("%w: chunk data longer than its size", errHTTP)
		}
	}
}

// parseChunkSize parses `hex-size[;extensions]`.
func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 { // 15 hex digits cannot overflow int64
		return 0, fmt.Errorf("%w: chunk size %q", errHTTP, clip(line))
	}
	n, err := strconv.ParseInt(string(line), 16, 64)
	if err != nil || line[0] == '+' || line[0] == '-' {
		return 0, fmt.Errorf("%w: chunk size %q", errHTTP, clip(line))
	}
	return n, nil
}

// readLine returns one line without its CRLF (or bare LF, which RFC 9112
// section 2.2 lets a recipient accept), charging its length to budget. The
// line is valid until the next read from r.
func readLine(r *bufio.Reader, budget *int) ([]byte, error) {
	var long []byte // only for lines longer than r's buffer
	for {
		frag, err := r.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return nil, fmt.Errorf("%w: more than %d bytes", errHTTP, maxHead)
		}
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, frag...)
			continue
		default:
			return nil, eofIsUnexpected(err)
		}
		line := frag
		if long != nil {
			line = append(long, frag...)
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("%w: CR or NUL inside line %q", errHTTP, clip(line))
		}
		return line, nil
	}
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// asciiEqualFold compares b with the lower-case ASCII string s, ignoring
// the case of b.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
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

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
