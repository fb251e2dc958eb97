package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
)

// rawBackend answers every request on a keep-alive connection with a fixed
// small response, parsing nothing but the blank line that ends the head, so
// the benchmark measures the proxy rather than the server.
func rawBackend(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhello from backend 1\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkProxyKeepAlive sends small GETs over keep-alive connections
// through the HTTP proxy to two raw backends.
func BenchmarkProxyKeepAlive(b *testing.B) {
	p := startProxy(b, []string{rawBackend(b), rawBackend(b)}, nil)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			n := -1
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if len(line) <= 2 {
					break
				}
				if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
					n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
				}
			}
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkParseRequest measures request head parsing alone.
func BenchmarkParseRequest(b *testing.B) {
	raw := []byte("GET /index.html?q=1 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nCookie: a=b; c=d\r\n\r\n")
	r := bytes.NewReader(raw)
	br := bufio.NewReaderSize(r, 4096)
	var h head
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		r.Reset(raw)
		br.Reset(r)
		if err := readHead(br, &h, 16384); err != nil {
			b.Fatal(err)
		}
		if err := parseRequest(&h); err != nil {
			b.Fatal(err)
		}
	}
}
