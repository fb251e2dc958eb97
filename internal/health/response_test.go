package health

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// parse runs the check's response reader over data, as to a GET.
func parse(data []byte) (status int, err error) {
	br := bufio.NewReader(bytes.NewReader(data))
	h, err := readHead(br)
	if err != nil {
		return 0, err
	}
	return h.status, discardBody(br, h, "GET")
}

// parseNetHTTP is the same with net/http, skipping interim responses as
// the check does.
func parseNetHTTP(data []byte) (status int, err error) {
	br := bufio.NewReader(bytes.NewReader(data))
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 200 || resp.StatusCode == 101 {
			return resp.StatusCode, err
		}
	}
}

// validResponses are well-formed responses both readers must accept with
// the same status.
var validResponses = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\nuntil close",
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbusy",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nTrailer: x\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nCONTENT-LENGTH: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
	"HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n",
}

func TestResponseMatchesNetHTTP(t *testing.T) {
	for _, resp := range validResponses {
		t.Run(strings.SplitN(resp, "\r\n", 2)[0], func(t *testing.T) {
			got, err := parse([]byte(resp))
			want, herr := parseNetHTTP([]byte(resp))
			if err != nil || herr != nil || got != want {
				t.Errorf("parse() = %d, %v; net/http = %d, %v; want the same status, no error", got, err, want, herr)
			}
		})
	}
}

func TestParseChunkSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1a", 26, false},
		{"FF", 255, false},
		{"10;name=value", 16, false},
		{"10 ;x", 16, false},
		{"fffffffffffffff", 1<<60 - 1, false},
		{"", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"0x10", 0, true},
		{"g", 0, true},
		{"1_0", 0, true},
		{"ffffffffffffffff", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseChunkSize([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseChunkSize(%q) = %d, %v, want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzReadResponse: the reader never panics or loops, accepts only status
// codes 100-599, and agrees with net/http on the status whenever both
// read a whole response.
func FuzzReadResponse(f *testing.F) {
	for _, r := range validResponses {
		f.Add([]byte(r))
	}
	f.Add([]byte("garbage\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		status, err := parse(data)
		if err != nil {
			return
		}
		if status < 100 || status > 599 {
			t.Fatalf("parse(%q) = status %d, want 100-599", data, status)
		}
		if want, herr := parseNetHTTP(data); herr == nil && want != status {
			t.Errorf("parse(%q) = status %d, net/http = %d", data, status, want)
		}
	})
}
