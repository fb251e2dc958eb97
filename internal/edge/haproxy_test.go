package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/testenv"
)

// startHAProxy runs haproxy in the foreground on cfg until the test ends.
func startHAProxy(t *testing.T, cfg string) {
	t.Helper()
	bin := testenv.Program(t, "haproxy")[0]
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy stderr:\n%s", stderr.String())
		}
	})
}

func dialRetry(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial haproxy at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyHeaderFromHAProxy: what haproxy's send-proxy and send-proxy-v2
// write, ReadProxyHeader reads as the client's and haproxy's addresses.
func TestProxyHeaderFromHAProxy(t *testing.T) {
	testenv.Short(t)
	for _, opt := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(opt, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			front := testenv.FreeAddr(t, "tcp")
			startHAProxy(t, fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend f
  bind %s
  default_backend b
backend b
  server s1 %s %s
`, front, ln.Addr(), opt))
			type result struct {
				src, dst netip.AddrPort
				rest     string
				err      error
			}
			got := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- result{err: err}
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				src, dst, err := ReadProxyHeader(br)
				line, _ := br.ReadString('\n')
				got <- result{src, dst, line, err}
			}()
			c := dialRetry(t, front)
			defer c.Close()
			io.WriteString(c, "hello\n")
			r := <-got
			if r.err != nil {
				t.Fatalf("ReadProxyHeader(haproxy %s) error = %v", opt, r.err)
			}
			if want := c.LocalAddr().String(); r.src.String() != want {
				t.Errorf("src = %s, want the client %s", r.src, want)
			}
			if r.dst.String() != front {
				t.Errorf("dst = %s, want haproxy's frontend %s", r.dst, front)
			}
			if r.rest != "hello\n" {
				t.Errorf("data after the header = %q, want hello", r.rest)
			}
		})
	}
}

// TestProxyHeaderToHAProxy: haproxy with accept-proxy believes what
// AppendProxyV1 and AppendProxyV2 write, IPv4 and IPv6 alike.
func TestProxyHeaderToHAProxy(t *testing.T) {
	testenv.Short(t)
	front := testenv.FreeAddr(t, "tcp")
	startHAProxy(t, fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend f
  bind %s accept-proxy
  http-request return status 200 content-type text/plain lf-string "%%[src] %%[src_port] %%[dst] %%[dst_port]\n"
`, front))
	tests := []struct {
		name     string
		src, dst string
		want     string
	}{
		{"ipv4", "203.0.113.7:4242", "198.51.100.1:443", "203.0.113.7 4242 198.51.100.1 443"},
		{"ipv6", "[2001:db8::7]:1", "[2001:db8::1]:65535", "2001:db8::7 1 2001:db8::1 65535"},
	}
	for _, tt := range tests {
		for _, v := range []struct {
			name string
			fn   func([]byte, netip.AddrPort, netip.AddrPort) []byte
		}{{"v1", AppendProxyV1}, {"v2", AppendProxyV2}} {
			t.Run(tt.name+" "+v.name, func(t *testing.T) {
				c := dialRetry(t, front)
				defer c.Close()
				req := v.fn(nil, netip.MustParseAddrPort(tt.src), netip.MustParseAddrPort(tt.dst))
				req = append(req, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...)
				if _, err := c.Write(req); err != nil {
					t.Fatal(err)
				}
				resp, err := io.ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				_, body, _ := strings.Cut(string(resp), "\r\n\r\n")
				if strings.TrimSpace(body) != tt.want {
					t.Errorf("haproxy saw %q, want %q (response %q)", strings.TrimSpace(body), tt.want, resp)
				}
			})
		}
	}
}
