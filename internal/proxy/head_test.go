package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func parse(raw string) (*head, error) {
	var h head
	br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
	if err := readHead(br, &h, 16384); err != nil {
		return &h, err
	}
	return &h, parseRequest(&h)
}

func TestParseRequestFraming(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		length  int64
		chunked bool
		err     error
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, nil},
		{"length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 5, false, nil},
		{"same length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 5, false, nil},
		{"chunked any case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", -1, true, nil},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", -1, false, nil},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, nil},
		{"1.0 without host", "GET / HTTP/1.0\r\n\r\n", -1, false, nil},
		{"length with plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 0, false, errBadLength},
		{"length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 0, false, errBadLength},
		{"huge length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 0, false, errBadLength},
		{"chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 0, false, errBadTE},
		{"TE with space trick", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 0, false, errBadRequest},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, false, errAmbiguousBody},
		{"two empty lines first", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, errBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parse(tt.raw)
			if err != tt.err {
				t.Fatalf("parse() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if h.contentLength != tt.length || h.chunked != tt.chunked {
				t.Errorf("framing = length %d chunked %v, want %d %v", h.contentLength, h.chunked, tt.length, tt.chunked)
			}
		})
	}
}

func TestHopByHop(t *testing.T) {
	h, err := parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"Connection": true, "keep-alive": true, "TE": true, "Trailer": true, "Upgrade": true,
		"Transfer-Encoding": true, "Proxy-Connection": true, "Proxy-Authorization": true,
		"x-private": true, "X-Public": false, "Host": false,
	} {
		if got := h.hopByHop([]byte(name)); got != want {
			t.Errorf("hopByHop(%s) = %v, want %v", name, got, want)
		}
	}
	if !h.connClose {
		t.Errorf("Connection: close not seen")
	}
}

// FuzzParseRequest feeds arbitrary bytes to the request head parser: it
// must never panic, and what it accepts must be well framed.
func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n x: folded\r\n\r\n",
		"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h head
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		if readHead(br, &h, 16384) != nil || parseRequest(&h) != nil {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatalf("accepted both chunked and Content-Length %d", h.contentLength)
		}
		if h.minor == 1 && h.host == nil {
			t.Fatalf("accepted HTTP/1.1 without Host")
		}
		for _, fl := range h.fields {
			if bytes.ContainsAny(fl.value, "\r\n\x00") {
				t.Fatalf("accepted a field value with CR, LF or NUL: %q", fl.value)
			}
		}
	})
}
