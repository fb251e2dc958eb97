package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 from clients (negotiated by ALPN on TLS frontends) is served by
// x/net/http2, with a handler that forwards each stream to a backend server
// over pooled HTTP/1.1, with the same balancing, retries and counters as the
// HTTP/1.1 path.

// serveH2 serves an HTTP/2 connection until it ends.
func (f *HTTPFrontend) serveH2(c *tls.Conn, fc *HTTPConfig) {
	f.h2once.Do(func() {
		// The base server is never served: it carries the graceful
		// shutdown (GOAWAY) that http2 hooks onto it.
		f.h2base = &http.Server{ErrorLog: log.New(io.Discard, "", 0)} // clients' protocol errors are theirs
		f.h2 = &http2.Server{IdleTimeout: fc.TimeoutClient}
		http2.ConfigureServer(f.h2base, f.h2)
	})
	f.h2.ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(f.serveStream), BaseConfig: f.h2base})
}

// shutdownH2 sends GOAWAY on every HTTP/2 connection: each ends once its
// streams have.
func (f *HTTPFrontend) shutdownH2(ctx context.Context) {
	f.h2once.Do(func() {}) // no HTTP/2 connection may start after this
	if f.h2base != nil {
		go f.h2base.Shutdown(ctx)
	}
}

// transport returns the backend's HTTP/1.1 client for HTTP/2 streams.
func (b *Backend) transport(bc *BackendConfig) *http.Transport {
	b.h2once.Do(func() {
		d := &net.Dialer{Timeout: bc.ConnectTimeout}
		b.h2rt = &http.Transport{
			DialContext:           d.DialContext,
			MaxIdleConnsPerHost:   poolMaxIdle,
			IdleConnTimeout:       poolIdleTimeout,
			ResponseHeaderTimeout: bc.ServerTimeout,
			DisableCompression:    true,
			TLSClientConfig:       bc.TLS,
		}
	})
	return b.h2rt
}

// hopHeaders are removed in both directions (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			h.Del(textproto.TrimString(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

func (f *HTTPFrontend) serveStream(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	fc := f.cfg.Load()
	f.Stats.Requests.Add(1)
	status := 0
	defer func() { f.Stats.countStatus(status) }()
	b := fc.backendFor([]byte(r.Host), []byte(r.URL.Path))
	fail := func(code int) {
		status = code
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, strconv.Itoa(code)+" "+statusText[code]+"\n")
	}
	if b == nil {
		fail(503)
		return
	}
	bc := b.cfg.Load()
	b.Stats.Requests.Add(1)
	defer func() { b.Stats.countStatus(status) }()
	if code := f.streamRules(fc, r); code != 0 {
		fail(code)
		return
	}
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	if bc.TLS != nil {
		out.URL.Scheme = "https"
	}
	out.Close = false
	removeHop(out.Header)
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		out.Header.Del(h)
	}
	out.Header.Set("X-Forwarded-For", clientIP)
	out.Header.Set("X-Forwarded-Proto", "https")
	out.Header.Set("X-Forwarded-Host", r.Host)
	fwd := "for=" + clientIP
	if strings.Contains(clientIP, ":") {
		fwd = `for="[` + clientIP + `]"`
	}
	out.Header.Set("Forwarded", fwd+";proto=https")
	if r.ContentLength == 0 {
		out.Body = nil
	}
	var key []byte
	switch {
	case bc.HashURI:
		key = []byte(r.URL.RequestURI())
	case bc.HashSource:
		key = []byte(clientIP)
	}
	hasBody := out.Body != nil
	var prev *Server
	var lastErr error
	for attempt := 0; attempt <= bc.Retries; attempt++ {
		var avoid *Server
		if attempt > 0 {
			b.Stats.Retries.Add(1)
			if bc.Redispatch {
				avoid = prev
			}
		}
		srv := b.pick(key, avoid)
		if srv == nil {
			fail(503)
			return
		}
		if attempt > 0 && srv != prev {
			b.Stats.Redispatch.Add(1)
		}
		prev = srv
		out.URL.Host = srv.Addr
		srv.Active.Add(1)
		srv.Stats.Requests.Add(1)
		resp, err := b.transport(bc).RoundTrip(out)
		if err != nil {
			srv.Active.Add(-1)
			b.release(srv)
			lastErr = err
			srv.observe(err)
			srv.Stats.ConnErrors.Add(1)
			b.Stats.ConnErrors.Add(1)
			// Retry what the server cannot have acted on twice: a stream
			// without a body that failed to connect, or an idempotent one
			// that failed before any response.
			if !hasBody && (isDialError(err) || idempotent([]byte(r.Method)) && !isTimeout(err)) {
				continue
			}
			break
		}
		status = resp.StatusCode
		srv.Stats.countStatus(resp.StatusCode)
		srv.observe(nil)
		removeHop(resp.Header)
		h := w.Header()
		for k, v := range resp.Header {
			h[k] = v
		}
		for k := range resp.Trailer {
			h.Add("Trailer", k)
		}
		if fc.HSTS > 0 && h.Get("Strict-Transport-Security") == "" {
			h.Set("Strict-Transport-Security", "max-age="+strconv.FormatInt(int64(fc.HSTS/time.Second), 10))
		}
		w.WriteHeader(resp.StatusCode)
		n, _ := copyFlush(w, resp.Body)
		resp.Body.Close()
		for k, v := range resp.Trailer {
			h[k] = v
		}
		srv.Active.Add(-1)
		b.release(srv)
		srv.Stats.observeTime(time.Since(start))
		for _, cs := range []*Counters{&f.Stats, &b.Stats, &srv.Stats} {
			cs.BytesOut.Add(uint64(n))
		}
		if l := fc.AccessLog; l != nil {
			l.Info("request", "frontend", f.Name, "backend", b.Name, "server", srv.Name, "client", clientIP,
				"method", r.Method, "uri", r.URL.RequestURI(), "proto", r.Proto, "status", status, "bytes_out", n,
				"retries", attempt, "total", time.Since(start))
		}
		return
	}
	if isTimeout(lastErr) {
		fail(504)
	} else {
		fail(502)
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// copyFlush copies a response body to an HTTP/2 stream, flushing after
// each read so that streamed responses stay streamed.
func copyFlush(w http.ResponseWriter, body io.Reader) (int64, error) {
	fl, _ := w.(http.Flusher)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var n int64
	for {
		k, err := body.Read(*bp)
		if k > 0 {
			if _, werr := w.Write((*bp)[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
			if fl != nil {
				fl.Flush()
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// streamRules applies the ACL and the rate limit to an HTTP/2 stream; it
// returns 0 or the status to answer with.
func (f *HTTPFrontend) streamRules(fc *HTTPConfig, r *http.Request) int {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return 0
	}
	client := ap.Addr().Unmap()
	if fc.Trusted != nil && fc.Trusted.Contains(client) {
		client = fc.Trusted.ClientIP(client, []byte(strings.Join(r.Header.Values("X-Forwarded-For"), ",")))
	}
	if fc.ACL != nil && !fc.ACL.Allow(client, []byte(r.Host), []byte(r.URL.Path)) {
		f.Stats.Denied.Add(1)
		return 403
	}
	if fc.Limiter != nil {
		if ok, _ := fc.Limiter.Allow(client, time.Now()); !ok {
			f.Stats.RateLimited.Add(1)
			return 429
		}
	}
	return 0
}
