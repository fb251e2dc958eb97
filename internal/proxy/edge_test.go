package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/edge"
	"fulcrum/internal/testenv"
)

// from dials addr from the local address src (any 127.0.0.0/8 address is
// this machine), so one test can play several clients.
func from(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
}

func status(t *testing.T, c *http.Client, url string) (int, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestACLDenies(t *testing.T) {
	acl, err := edge.NewACL([]config.ACLRule{
		{Action: "deny", CIDR: []string{"127.0.0.2/32"}},
		{Action: "deny", PathPrefix: []string{"/admin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, []string{backend(t, named("a"))}, func(f *HTTPConfig, b *BackendConfig) { f.ACL = acl })
	url := "http://" + p.addr
	for _, tt := range []struct {
		src, path string
		want      int
	}{
		{"127.0.0.1", "/", 200},
		{"127.0.0.2", "/", 403},
		{"127.0.0.1", "/admin/x", 403},
	} {
		if got, _ := status(t, clientFrom(tt.src), url+tt.path); got != tt.want {
			t.Errorf("GET %s from %s = %d, want %d", tt.path, tt.src, got, tt.want)
		}
	}
	if n := p.f.Stats.Denied.Load(); n != 2 {
		t.Errorf("denied = %d, want 2", n)
	}
}

// A flood from one address is limited while another address is served.
func TestRateLimitPerClient(t *testing.T) {
	lim := edge.NewLimiter(config.RateLimit{Rate: 5, Burst: 5, TableSize: 1000})
	p := startProxy(t, []string{backend(t, named("a"))}, func(f *HTTPConfig, b *BackendConfig) { f.Limiter = lim })
	url := "http://" + p.addr + "/"
	flood := clientFrom("127.0.0.3")
	limited := 0
	for i := 0; i < 50; i++ {
		code, h := status(t, flood, url)
		if code == 429 {
			limited++
			if h.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After")
			}
		}
	}
	if limited < 40 {
		t.Errorf("flood: %d of 50 requests limited, want at least 40 (burst 5, 5/s)", limited)
	}
	other := clientFrom("127.0.0.4")
	for i := 0; i < 5; i++ {
		if code, _ := status(t, other, url); code != 200 {
			t.Errorf("another client's request %d = %d, want 200", i, code)
		}
	}
}

func TestTrustedProxyAndProxyProtocol(t *testing.T) {
	seen := make(chan string, 4)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Get("X-Forwarded-For") })
	trusted, err := edge.NewTrusted([]string{"127.0.0.5/32"})
	if err != nil {
		t.Fatal(err)
	}
	acl, _ := edge.NewACL([]config.ACLRule{{Action: "deny", CIDR: []string{"192.0.2.66/32"}}})
	p := startProxy(t, []string{addr}, func(f *HTTPConfig, b *BackendConfig) {
		f.Trusted, f.AcceptProxy, f.ACL = trusted, true, acl
	})
	// Untrusted peer: its X-Forwarded-For is replaced.
	c := from(t, "127.0.0.6", p.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	http.ReadResponse(bufio.NewReader(c), nil)
	if got := <-seen; got != "127.0.0.6" {
		t.Errorf("untrusted peer: server saw X-Forwarded-For %q, want 127.0.0.6", got)
	}
	// Trusted peer with a PROXY v1 header naming the client; the ACL judges
	// that client.
	c = from(t, "127.0.0.5", p.addr)
	io.WriteString(c, "PROXY TCP4 198.51.100.7 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("via PROXY header: %v %v", resp, err)
	}
	// The client named by the PROXY header is not trusted: its own
	// X-Forwarded-For is replaced.
	if got := <-seen; got != "198.51.100.7" {
		t.Errorf("behind a PROXY header: server saw X-Forwarded-For %q, want 198.51.100.7", got)
	}
	c = from(t, "127.0.0.5", p.addr)
	io.WriteString(c, "PROXY TCP4 192.0.2.66 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 403 {
		t.Errorf("denied client behind the PROXY header: %v %v, want 403", resp, err)
	}
}

// A trusted proxy's X-Forwarded-For is kept and extended, and the client it
// names is the one the ACL judges.
func TestTrustedXFF(t *testing.T) {
	seen := make(chan string, 4)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Get("X-Forwarded-For") })
	trusted, _ := edge.NewTrusted([]string{"127.0.0.5/32"})
	acl, _ := edge.NewACL([]config.ACLRule{{Action: "deny", CIDR: []string{"192.0.2.66/32"}}})
	p := startProxy(t, []string{addr}, func(f *HTTPConfig, b *BackendConfig) { f.Trusted, f.ACL = trusted, acl })
	for _, tt := range []struct {
		src, xff, want string
		code           int
	}{
		{"127.0.0.5", "203.0.113.9", "203.0.113.9, 127.0.0.5", 200},
		{"127.0.0.5", "192.0.2.66", "", 403},
		{"127.0.0.6", "192.0.2.66", "127.0.0.6", 200}, // untrusted: ignored
	} {
		c := from(t, tt.src, p.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "+tt.xff+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != tt.code {
			t.Fatalf("from %s with X-Forwarded-For %s: %v %v, want %d", tt.src, tt.xff, resp, err, tt.code)
		}
		if tt.code == 200 {
			if got := <-seen; got != tt.want {
				t.Errorf("from %s: server saw X-Forwarded-For %q, want %q", tt.src, got, tt.want)
			}
		}
	}
}

func TestRedirectHTTPS(t *testing.T) {
	p := startProxy(t, []string{backend(t, named("a"))}, func(f *HTTPConfig, b *BackendConfig) { f.RedirectHTTPS = true })
	c := client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get("http://" + p.addr + "/a/b?c=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1/a/b?c=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("redirect = %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// Slowloris: many connections from one address each sending a header byte
// every second. They cannot hold more than the configured connections, and
// a normal client's requests all succeed meanwhile.
func TestSlowloris(t *testing.T) {
	testenv.Short(t)
	lim := edge.NewLimiter(config.RateLimit{Rate: 1000, Burst: 1000, MaxConnsPerClient: 10, TableSize: 1000})
	p := startProxy(t, []string{backend(t, named("a"))}, func(f *HTTPConfig, b *BackendConfig) {
		f.Limiter = lim
		f.TimeoutRequestHeader = 2 * time.Second
		f.MaxConns = 200
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
			for {
				c, err := d.Dial("tcp", p.addr)
				if err != nil {
					return
				}
				io.WriteString(c, "GET / HTTP/1.1\r\n")
				for {
					select {
					case <-stop:
						c.Close()
						return
					case <-time.After(time.Second):
					}
					if _, err := io.WriteString(c, "X"); err != nil {
						break
					}
					c.SetReadDeadline(time.Now().Add(time.Millisecond))
					if b, _ := io.ReadAll(io.LimitReader(c, 64)); strings.Contains(string(b), "429") {
						refused.Add(1)
						break
					}
				}
				c.Close()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	// Connections held for the attacker: at most its limit.
	held := 0
	for cc := range p.f.conns.snapshot() {
		if c, ok := cc.(*clientConn); ok && c.peer == netip.MustParseAddr("127.0.0.9") {
			held++
		}
	}
	if held > 10 {
		t.Errorf("slowloris holds %d connections, want at most 10", held)
	}
	good := clientFrom("127.0.0.1")
	ok := 0
	for i := 0; i < 50; i++ {
		if code, _ := status(t, good, "http://"+p.addr+"/"); code == 200 {
			ok++
		}
		time.Sleep(40 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if ok != 50 {
		t.Errorf("normal client: %d of 50 requests succeeded during the attack, want 50", ok)
	}
	if refused.Load() == 0 {
		t.Errorf("no slowloris connection was refused")
	}
	t.Logf("slowloris held %d connections; %d refused; normal client %d/50", held, refused.Load(), ok)
}

func TestSendProxyAndBackendTLS(t *testing.T) {
	// A server that expects a PROXY v2 header, then answers with the
	// client it names.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				src, _, err := edge.ReadProxyHeader(br)
				if err != nil {
					return
				}
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				body := src.Addr().String()
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body)
			}()
		}
	}()
	p := startProxy(t, []string{ln.Addr().String()}, func(f *HTTPConfig, b *BackendConfig) { b.SendProxy = "v2" })
	c := from(t, "127.0.0.7", p.addr)
	for i := 0; i < 2; i++ { // two requests on one client connection
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "127.0.0.7" {
			t.Errorf("request %d: server saw PROXY source %q, want 127.0.0.7", i, body)
		}
	}

	// TLS to the server, verified against its certificate.
	ts := httptest.NewTLSServer(named("tls"))
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	p2 := startProxy(t, []string{ts.Listener.Addr().String()}, func(f *HTTPConfig, b *BackendConfig) {
		b.TLS = &tls.Config{RootCAs: pool, ServerName: "example.com"}
	})
	if code, h := status(t, client(), "http://"+p2.addr+"/"); code != 200 || h.Get("X-Server") != "tls" {
		t.Errorf("through TLS to the server: %d from %q, want 200 from tls", code, h.Get("X-Server"))
	}
	p3 := startProxy(t, []string{ts.Listener.Addr().String()}, func(f *HTTPConfig, b *BackendConfig) {
		b.TLS = &tls.Config{RootCAs: x509.NewCertPool()} // trusts nothing
	})
	if code, _ := status(t, client(), "http://"+p3.addr+"/"); code != 502 {
		t.Errorf("server certificate not trusted: status %d, want 502", code)
	}
}

// A POST carrying Idempotency-Key is sent again to another server when the
// first one dies with the request (reset before any response byte); one
// without it gets a 502, since the server may have acted on it.
func TestIdempotencyKeyRetry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // reads each request whole, then resets the connection
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					io.Copy(io.Discard, req.Body)
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	got := make(chan string, 4)
	good := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
		w.WriteHeader(201)
	})
	p := startProxy(t, []string{ln.Addr().String(), good}, nil)
	post := func(key string) int {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/api/messages", strings.NewReader(`{"m":"hi"}`))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("k1"); code != 201 {
		t.Errorf("POST with Idempotency-Key = %d, want 201 after a retry", code)
	} else if b := <-got; b != `{"m":"hi"}` {
		t.Errorf("retried body = %q, want the original", b)
	}
	if code := post(""); code != 502 {
		t.Errorf("POST without Idempotency-Key = %d, want 502 (not retried)", code)
	}
}

// Several X-Forwarded-For fields from a trusted proxy make one list, and the
// fields after them reach the server intact.
func TestTrustedXFFSeveralFields(t *testing.T) {
	seen := make(chan http.Header, 1)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
	trusted, _ := edge.NewTrusted([]string{"127.0.0.5/32"})
	p := startProxy(t, []string{addr}, func(f *HTTPConfig, b *BackendConfig) { f.Trusted = trusted })
	c := from(t, "127.0.0.5", p.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.1\r\nX-After: intact\r\nX-Forwarded-For: 203.0.113.2\r\nX-Last: also\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	h := <-seen
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.1,203.0.113.2, 127.0.0.5" {
		t.Errorf("X-Forwarded-For = %q, want the two fields joined, then the proxy", got)
	}
	if h.Get("X-After") != "intact" || h.Get("X-Last") != "also" {
		t.Errorf("fields after X-Forwarded-For = %q, %q; want intact, also", h.Get("X-After"), h.Get("X-Last"))
	}
}
