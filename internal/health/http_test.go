package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer answers every connection with resp after reading the request
// head, which it passes to got (if not nil). With hang it then keeps the
// connection open until the test ends; otherwise it closes it.
func rawServer(t *testing.T, resp string, hang bool, got chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		close(done)
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					head.WriteString(line)
					if err != nil || line == "\r\n" {
						break
					}
				}
				if got != nil {
					got <- head.String()
				}
				c.Write([]byte(resp))
				if hang {
					<-done
				}
			})
		}
	})
	return ln.Addr().String()
}

func checkHTTP(addr string, c HTTPCheck, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return NewHTTP(addr, c).Check(ctx)
}

func TestHTTPStatus(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		case "/broken":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "/notfound":
			http.NotFound(w, r)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			w.Write([]byte("part one "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/big":
			w.Write(make([]byte, 1<<20))
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/slowbody":
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("only ten b"))
			w.(http.Flusher).Flush()
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
	})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name    string
		addr    string // "" for srv
		check   HTTPCheck
		wantErr string
	}{
		{"200", "", HTTPCheck{Method: "GET", Path: "/ok"}, ""},
		{"301 is healthy by default", "", HTTPCheck{Method: "GET", Path: "/moved"}, ""},
		{"500", "", HTTPCheck{Method: "GET", Path: "/broken"}, "http check: status 500, want 200-399"},
		{"404", "", HTTPCheck{Method: "GET", Path: "/notfound"}, "http check: status 404, want 200-399"},
		{"204 without body", "", HTTPCheck{Method: "GET", Path: "/nocontent"}, ""},
		{"exact status expected", "", HTTPCheck{Method: "GET", Path: "/nocontent", ExpectLo: 204}, ""},
		{"exact status missed", "", HTTPCheck{Method: "GET", Path: "/ok", ExpectLo: 204}, "http check: status 200, want 204"},
		{"301 outside 200-299", "", HTTPCheck{Method: "GET", Path: "/moved", ExpectLo: 200, ExpectHi: 299}, "status 301, want 200-299"},
		{"404 accepted by range", "", HTTPCheck{Method: "GET", Path: "/notfound", ExpectLo: 200, ExpectHi: 499}, ""},
		{"chunked body", "", HTTPCheck{Method: "GET", Path: "/chunked"}, ""},
		{"1 MiB body", "", HTTPCheck{Method: "GET", Path: "/big"}, ""},
		{"HEAD", "", HTTPCheck{Method: "HEAD", Path: "/big"}, ""},
		{"default OPTIONS /", "", HTTPCheck{}, ""},
		{"slow headers", "", HTTPCheck{Method: "GET", Path: "/slow"}, "timeout"},
		{"slow body", "", HTTPCheck{Method: "GET", Path: "/slowbody"}, "http check: status 200, body: read tcp"},
		{"closed port", closedAddr(t), HTTPCheck{}, "connection refused"},
		{"bad method", "", HTTPCheck{Method: "GE T"}, `method "GE T"`},
		{"bad path", "", HTTPCheck{Path: "/a b"}, `path "/a b"`},
		{"relative path", "", HTTPCheck{Path: "healthz"}, `path "healthz"`},
		{"bad host", "", HTTPCheck{Host: "a\r\nX-Evil: 1"}, "host"},
		{"bad range", "", HTTPCheck{ExpectLo: 300, ExpectHi: 200}, "expect 300-200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := addr
			if tt.addr != "" {
				a = tt.addr
			}
			start := time.Now()
			err := checkHTTP(a, tt.check, 300*time.Millisecond)
			checkErr(t, err, tt.wantErr)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("Check() took %v, want it bounded by the 300ms deadline", el)
			}
		})
	}
}

func TestHTTPRequest(t *testing.T) {
	tests := []struct {
		name  string
		check HTTPCheck
		want  func(addr string) string
	}{
		{"defaults", HTTPCheck{}, func(addr string) string {
			return "OPTIONS / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: fulcrum-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
		}},
		{"method path host", HTTPCheck{Method: "GET", Path: "/healthz?full=1", Host: "www.example.test"}, func(string) string {
			return "GET /healthz?full=1 HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: fulcrum-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			addr := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, got)
			if err := checkHTTP(addr, tt.check, time.Second); err != nil {
				t.Fatalf("Check() = %v, want nil", err)
			}
			if req, want := <-got, tt.want(addr); req != want {
				t.Errorf("request = %q, want %q", req, want)
			}
		})
	}
}

// TestHTTPRawResponses feeds responses no well-behaved server library
// would write.
func TestHTTPRawResponses(t *testing.T) {
	tests := []struct {
		name    string
		resp    string
		hang    bool
		wantErr string
	}{
		{"garbage", "garbage\r\n\r\n", false, `http check: malformed response: status line "garbage"`},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false, "unexpected EOF"},
		{"empty reply", "", false, "http check: status line: unexpected EOF"},
		{"HTTP/1.0 without reason", "HTTP/1.0 200\r\n\r\nbody until close", false, ""},
		{"body until close", "HTTP/1.1 200 OK\r\n\r\nsome body", false, ""},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, "http check: status 200, body: 3 of 10 bytes: unexpected EOF"},
		{"truncated chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false, "chunk data: unexpected EOF"},
		{"unterminated chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", false, "chunk size: unexpected EOF"},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nX-T: 1\r\n\r\n", true, ""},
		{"body never completes", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, "i/o timeout"},
		{"headers never complete", "HTTP/1.1 200 OK\r\nServer: x\r\n", true, "header section: read tcp"},
		{"complete but kept open", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", true, ""},
		{"interim 103 then 200", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, ""},
		{"interim 100 then 503", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", false, "status 503, want 200-399"},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\n\r\n", false, "status 101, want 200-399"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false, "conflicting Content-Length 1 and 2"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, `Content-Length "-1"`},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false, `header name "Content-Length "`},
		{"obsolete folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n", false, "header"},
		{"status 600", "HTTP/1.1 600 Odd\r\n\r\n", false, "status code 600"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, ""},
		{"CR inside a line", "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n", false, "CR or NUL"},
		{"huge header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", false, "more than 65536 bytes"},
		{"long header line", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 10<<10) + "\r\nContent-Length: 0\r\n\r\n", false, ""},
		{"TE not chunked reads to close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nmore than one byte", false, ""},
		{"TE wins over CL", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, tt.resp, tt.hang, nil)
			err := checkHTTP(addr, HTTPCheck{Method: "GET"}, 300*time.Millisecond)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != "" && err != nil && !strings.HasPrefix(err.Error(), "http check: ") {
				t.Errorf("Check() = %q, want the prefix \"http check: \"", err)
			}
		})
	}
}

// TestHTTPCancel: a cancel without a deadline still ends a check that
// waits on the server.
func TestHTTPCancel(t *testing.T) {
	addr := rawServer(t, "HTTP/1.1 200 OK\r\n", true, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := NewHTTP(addr, HTTPCheck{}).Check(ctx)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("Check() = %v after %v, want an error soon after the cancel at 50ms", err, time.Since(start))
	}
}

// TestHTTPMonitor runs a Monitor with the real clock against a server that
// breaks and recovers.
func TestHTTPMonitor(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	set := func(s int) {
		mu.Lock()
		status = s
		mu.Unlock()
	}
	changes := make(chan string, 10)
	m := NewMonitor(Config{Interval: 10 * time.Millisecond, Rise: 2, Fall: 2},
		NewHTTP(srv.Listener.Addr().String(), HTTPCheck{}), nil,
		func(up bool, reason string) {
			if up {
				changes <- "up: " + reason
			} else {
				changes <- "down: " + reason
			}
		})
	run(t, m)
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("onChange = %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no onChange within 5s, want %q", want)
		}
	}
	set(http.StatusServiceUnavailable)
	wait("down: 2 failed checks in a row, last: http check: status 503, want 200-399")
	set(http.StatusOK)
	wait("up: 2 passed checks in a row")
	if last := m.Last(); !last.OK || last.Duration <= 0 || last.At.IsZero() {
		t.Errorf("Last() = %+v, want OK with a duration and a time", last)
	}
}

func TestErrHTTPWrapped(t *testing.T) {
	addr := rawServer(t, "nonsense\r\n", false, nil)
	if err := checkHTTP(addr, HTTPCheck{}, time.Second); !errors.Is(err, errHTTP) {
		t.Errorf("Check() = %v, want an error wrapping errHTTP", err)
	}
}

// TestHTTPCheckTLS checks an HTTPS-only server: over TLS, verified, the
// check passes; plain HTTP gets the server's 400; an unknown CA or a
// wrong name fails the handshake.
func TestHTTPCheckTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	for _, tt := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"verified", &tls.Config{RootCAs: pool}, ""},
		{"plain", nil, "status 400"},
		{"unknown CA", &tls.Config{}, "http check: tls: "},
		{"wrong name", &tls.Config{RootCAs: pool, ServerName: "web.example"}, "web.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			checkErr(t, NewHTTP(addr, HTTPCheck{Path: "/healthz", Method: "GET", TLS: tt.tls}).Check(ctx), tt.want)
		})
	}
}
