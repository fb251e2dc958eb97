package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"fulcrum/internal/edge"
)

// Route sends requests whose Host and path match to Backend. Empty Host and
// PathPrefix match anything. Host is compared without port, ignoring case.
type Route struct {
	Host       string
	PathPrefix string
	Backend    *Backend
}

// HTTPConfig is an HTTP frontend's routing table and tunables; it is
// replaced whole on reload.
type HTTPConfig struct {
	Routes  []Route
	Default *Backend // nil: requests that match no route get 503
	// TimeoutClient is the longest a client connection may idle between
	// requests or while sending one; TimeoutRequestHeader bounds the time to
	// receive a whole request head (a slow-header defence). Zero: none.
	TimeoutClient, TimeoutRequestHeader time.Duration
	// MaxHeaderBytes limits a request head (zero: 16384).
	MaxHeaderBytes int
	// Proto is the value of X-Forwarded-Proto (default http).
	Proto string
	// AccessLog, when set, gets one line per request.
	AccessLog *slog.Logger

	// TLS, when set, terminates TLS on every connection (HTTP/2 by ALPN).
	TLS *tls.Config
	// HSTS, on a TLS frontend, adds Strict-Transport-Security with this
	// max-age to responses that lack it (zero: none).
	HSTS time.Duration
	// RedirectHTTPS answers every request with a 308 to its https URL.
	RedirectHTTPS bool
	// MaxConns caps concurrent client connections (zero: none). Beyond it
	// the frontend stops accepting: new connections wait in the kernel's
	// accept queue until one ends, as with HAProxy's maxconn.
	MaxConns int
	// ACL allows or denies requests (nil: all allowed; denied: 403).
	ACL *edge.ACL
	// Limiter limits requests per second (429 with Retry-After) and
	// concurrent connections (429, then close) per client address.
	Limiter *edge.Limiter
	// Trusted are the proxies whose X-Forwarded-For (and PROXY protocol
	// header, with AcceptProxy) name the real client.
	Trusted     *edge.Trusted
	AcceptProxy bool
}

func (r *HTTPConfig) backendFor(host, path []byte) *Backend {
	if len(r.Routes) > 0 {
		if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.LastIndexByte(host, ']') < i {
			host = host[:i]
		}
		for i := range r.Routes {
			rt := &r.Routes[i]
			if rt.Host != "" && !bytes.EqualFold(host, []byte(rt.Host)) {
				continue
			}
			if rt.PathPrefix != "" && !bytes.HasPrefix(path, []byte(rt.PathPrefix)) {
				continue
			}
			return rt.Backend
		}
	}
	return r.Default
}

// HTTPFrontend proxies HTTP/1.x connections to backends.
type HTTPFrontend struct {
	Name  string
	Stats Counters

	cfg    atomic.Pointer[HTTPConfig]
	conns  connSet
	parker parker // idle plain HTTP/1.1 connections, without goroutines
	// parkAfter is the idle time after which a connection parks (zero:
	// defaultParkAfter).
	parkAfter time.Duration

	h2once sync.Once
	h2     *http2.Server
	h2base *http.Server // carries the GOAWAY on shutdown
}

// NewHTTPFrontend returns a frontend with the given configuration.
func NewHTTPFrontend(name string, cfg *HTTPConfig) *HTTPFrontend {
	f := &HTTPFrontend{Name: name}
	f.Configure(cfg)
	return f
}

// Configure replaces the routing table and tunables; requests already
// routed are not affected, and each connection picks up the new timeouts at
// its next request.
func (f *HTTPFrontend) Configure(c *HTTPConfig) { f.cfg.Store(c) }

// Serve accepts connections on ln until it is closed.
func (f *HTTPFrontend) Serve(ln net.Listener) error {
	return acceptLoop(ln, f.gate, func(c net.Conn) {
		cc := f.newConn(c)
		if !f.conns.add(cc) {
			cc.raw.Close()
			return
		}
		go f.run(cc, true)
	})
}

// run serves cc in the calling goroutine until it closes or parks. A
// connection that parks comes back here, in a new goroutine, when it has
// something to read, times out or is woken (see parker).
func (f *HTTPFrontend) run(cc *clientConn, opening bool) {
	var ok bool
	if opening {
		ok = cc.open()
	} else {
		ok = f.parker.resume(cc)
	}
	if ok {
		for cc.serve() {
			if f.parker.park(cc, cc.idleLeft(time.Now())) {
				return // cc belongs to the parker now
			}
			cc.noPark = true
		}
	}
	if cc.raw != nil {
		cc.raw.Close()
	}
	cc.recycle()
	cc.closeEdge()
	f.conns.remove(cc)
}

// gate holds the accept loop while the frontend is at MaxConns.
func (f *HTTPFrontend) gate() {
	for {
		max := f.cfg.Load().MaxConns
		if max <= 0 || f.conns.count() < max {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// open applies the connection-level edge rules: the per-client connection
// limit, the PROXY protocol header from a trusted peer, and TLS. It
// returns false when the connection must close.
func (cc *clientConn) open() bool {
	fc := cc.f.cfg.Load()
	cc.fc = fc
	if fc.Limiter != nil {
		if !fc.Limiter.Acquire(cc.peer) {
			cc.f.Stats.RateLimited.Add(1)
			cc.writeStatus(429, false, "Retry-After: 1\r\n")
			// Closed, but not before the client has read the answer:
			// its unread request would reset it away. Meanwhile the
			// connection no longer counts as held.
			cc.f.conns.remove(cc)
			cc.lingerClose()
			return false
		}
		cc.limiter = fc.Limiter
	}
	if fc.AcceptProxy && fc.Trusted != nil && fc.Trusted.Contains(cc.peer) {
		if d := fc.TimeoutRequestHeader; d > 0 {
			cc.c.SetReadDeadline(time.Now().Add(d))
		}
		// The PROXY header precedes everything else: read it on the raw
		// connection, and hand what follows to TLS or HTTP.
		br := bufio.NewReaderSize(cc.c, 512)
		src, _, err := edge.ReadProxyHeader(br)
		if err != nil {
			cc.f.Stats.ReqErrors.Add(1)
			return false
		}
		if src.IsValid() {
			cc.setClient(src.Addr())
		}
		cc.c = &bufConn{Conn: cc.c, r: br}
		cc.dl = deadlines{c: cc.c}
		cc.br.reset(cc.c)
	}
	if fc.TLS != nil {
		tc := tls.Server(cc.c, fc.TLS)
		cc.c = tc
		cc.dl = deadlines{c: tc}
		cc.br.reset(tc)
		return cc.f.handshake(cc, tc)
	}
	return true
}

// closeEdge gives back what open took.
func (cc *clientConn) closeEdge() {
	if cc.limiter != nil {
		cc.limiter.Release(cc.peer)
	}
}

// bufConn is a connection whose first bytes were read into r.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handshake completes a TLS handshake under the request-header timeout and
// serves HTTP/2 when ALPN chose it; it returns true when the connection
// goes on as HTTP/1.x.
func (f *HTTPFrontend) handshake(cc *clientConn, tc *tls.Conn) bool {
	fc := f.cfg.Load()
	if d := fc.TimeoutRequestHeader; d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	if err := tc.Handshake(); err != nil {
		f.Stats.TLSErrors.Add(1)
		tc.Close()
		return false
	}
	tc.SetDeadline(time.Time{})
	cc.proto = "https"
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		cc.active.Store(true) // served by http2 until it ends
		f.serveH2(tc, fc)
		tc.Close()
		return false
	}
	return true
}

// Shutdown makes every connection close after its current request, closes
// the idle ones, and waits for the rest until ctx is done, then closes them.
func (f *HTTPFrontend) Shutdown(ctx context.Context) error {
	f.shutdownH2(ctx)
	err := f.conns.shutdown(ctx)
	f.parker.close()
	return err
}

// CloseOn drains the connections accepted on local address addr, in the
// background: idle ones close at once, the others after their current
// request, and whatever is still open after grace is closed. A load
// balancer calls it when it gives up a virtual address, whose clients
// are answered by its peer from then on. It returns how many connections
// it drains.
func (f *HTTPFrontend) CloseOn(addr netip.Addr, grace time.Duration) int {
	return f.conns.closeOn(addr, grace)
}

// ActiveConns returns the number of open client connections.
func (f *HTTPFrontend) ActiveConns() int { return f.conns.count() }

// ParkedConns returns how many of the open client connections are idle and
// parked (held without a goroutine, see parker).
func (f *HTTPFrontend) ParkedConns() int { return f.parker.parked() }

// clientConn is one client connection and its reusable buffers.
type clientConn struct {
	f        *HTTPFrontend
	c        net.Conn // the connection requests are read from (TLS over raw)
	raw      net.Conn // the accepted connection
	br       *connReader
	bw       *bufio.Writer // nil between requests (see writer)
	remoteIP string        // the client's address as forwarded
	peer     netip.Addr    // the client (the PROXY header's source, if any)
	limiter  *edge.Limiter
	client   netip.Addr  // this request's client: peer, or from X-Forwarded-For of a trusted peer
	xff      []byte      // the request's X-Forwarded-For when the peer is trusted
	xffBuf   []byte      // holds xff
	proto    string      // "https" on TLS connections; else the frontend's Proto
	fc       *HTTPConfig // the frontend's configuration for the current request
	dl       deadlines
	*scratch // nil between requests (see getScratch)
	active   atomic.Bool
	closing  atomic.Bool

	// idleSince is when the connection began to wait for its next
	// request; a wait that parks and resumes goes on from it (resumed).
	idleSince time.Time
	resumed   bool
	noPark    bool // parking failed once: wait in the goroutine
	// The parker's (guarded by its mu; raw too once the connection has
	// parked once): the socket while parked and while resuming (-1: none),
	// the idle deadline and its index in the parker's heap (-1: none), and
	// whether the connection was closed while parked or resuming.
	parkedFD, resumeFD int32
	parkIdx            int32
	parkedAddr         [2]netip.AddrPort // the socket's local and remote address, for resuming
	parkDue            time.Duration
	killed             bool
}

func (f *HTTPFrontend) newConn(c net.Conn) *clientConn {
	c = wrapConn(c)
	cc := &clientConn{f: f, c: c, raw: c, dl: deadlines{c: c}, br: newConnReader(c),
		parkedFD: -1, resumeFD: -1, parkIdx: -1}
	if ap := remoteAddrPort(c); ap.IsValid() {
		cc.setClient(ap.Addr().Unmap())
	}
	return cc
}

func (cc *clientConn) setClient(a netip.Addr) {
	cc.peer = a
	cc.remoteIP = a.String()
}

// close ends the connection. A parked (or resuming) one is closed by the
// goroutine that resumes it, which also counts it out of the frontend.
func (cc *clientConn) close() { cc.f.parker.kill(cc) }

func (cc *clientConn) isActive() bool    { return cc.active.Load() }
func (cc *clientConn) local() netip.Addr { return cc.f.parker.local(cc) }
func (cc *clientConn) setClosing()       { cc.closing.Store(true) }
func (cc *clientConn) wantClose() bool   { return cc.closing.Load() }

// wake interrupts the wait for a next request (see serve), or resumes the
// connection if it is parked.
func (cc *clientConn) wake() { cc.f.parker.wake(cc) }

// canPark reports whether the connection may wait for its next request
// parked: plain TCP only (no TLS or PROXY header wrapping the socket).
func (cc *clientConn) canPark() bool {
	return !cc.noPark && cc.c == cc.raw && cc.br.pc != nil
}

// idleLeft returns how much of the idle timeout is left at now (zero: no
// timeout; negative: expired).
func (cc *clientConn) idleLeft(now time.Time) time.Duration {
	t := cc.fc.TimeoutClient
	if t <= 0 {
		return 0
	}
	if left := cc.idleSince.Add(t).Sub(now); left != 0 {
		return left
	}
	return -1
}

// shutdownLinger is how long an idle connection woken by a shutdown still
// waits for a request its client may have sent already.
const shutdownLinger = 100 * time.Millisecond

// serve reads and proxies requests until the connection must close
// (false) or has waited idle long enough to park (true).
func (cc *clientConn) serve() (park bool) {
	f := cc.f
	lingered := false
	for {
		// Wait for the first byte of the next request under the idle
		// timeout, then for the whole head under the header timeout.
		// Once the frontend shuts down, wait only a moment: a request
		// already on its way is served (and the connection closed after
		// it) rather than cut off.
		fc := f.cfg.Load()
		cc.fc = fc
		now := time.Now()
		parking := false
		if cc.wantClose() {
			if lingered {
				return false
			}
			lingered = true
			cc.dl.rd = now.Add(shutdownLinger)
			cc.c.SetReadDeadline(cc.dl.rd)
		} else if cc.canPark() {
			// Wait here for a short while, then park for the rest of
			// the idle timeout.
			if !cc.resumed {
				cc.idleSince = now
			}
			wait := cc.idleLeft(now)
			if wait < 0 {
				return false // the idle timeout passed while parked
			}
			if p := f.parkWait(); wait == 0 || wait > p {
				wait, parking = p, true
			}
			cc.dl.read(now, wait)
		} else {
			cc.dl.read(now, fc.TimeoutClient)
		}
		if err := cc.br.waitData(); err != nil {
			if cc.wantClose() && isTimeout(err) && !lingered {
				continue // woken by the shutdown
			}
			if parking && isTimeout(err) && !cc.wantClose() {
				if cc.idleLeft(time.Now()) < 0 {
					return false // the parking deadline's slack ran past the idle timeout
				}
				cc.resumed = true
				return true
			}
			return false
		}
		cc.resumed = false
		cc.active.Store(true)
		cc.getScratch()
		start := time.Now()
		fc = f.cfg.Load()
		cc.fc = fc
		// The header timeout matters only when the head has not arrived
		// whole with its first bytes, as it nearly always does. A
		// connection that waited under the short parking deadline gets
		// the idle timeout for the rest of its head.
		if (fc.TimeoutRequestHeader > 0 || cc.canPark()) && !headBuffered(cc.br.buffered()) {
			if fc.TimeoutRequestHeader > 0 {
				cc.dl.read(start, fc.TimeoutRequestHeader)
			} else {
				cc.dl.read(start, fc.TimeoutClient)
			}
		}
		max := fc.MaxHeaderBytes
		if max <= 0 {
			max = 16384
		}
		err := readHead(cc.br, &cc.req, max)
		if err == nil {
			err = parseRequest(&cc.req)
		}
		if err != nil {
			if len(cc.req.buf) == 0 && !errors.Is(err, errHeadTooLarge) {
				return false // the client went away before sending anything
			}
			f.Stats.ReqErrors.Add(1)
			cc.writeError(statusFor(err), false)
			cc.logParseError(err)
			cc.lingerClose()
			return false
		}
		keep := cc.handle(start)
		cc.active.Store(false)
		if !keep {
			return false
		}
		cc.releaseWriter()
		cc.releaseScratch()
	}
}

// lingerClose half-closes the connection and discards what the client still
// sends for a moment, so that closing with unread input does not reset the
// connection and destroy the error response before the client reads it.
func (cc *clientConn) lingerClose() {
	closeWrite(cc.c)
	cc.dl.read(time.Now(), 500*time.Millisecond)
	io.CopyN(io.Discard, cc.c, 256<<10)
}

// statusFor maps a request-parsing error to its status code.
func statusFor(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, errHeadTooLarge):
		return 431
	case errors.Is(err, errBadVersion):
		return 505
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return 408
	}
	return 400
}

func (cc *clientConn) logParseError(err error) {
	if l := cc.fc.AccessLog; l != nil {
		l.Info("bad request", "frontend", cc.f.Name, "client", cc.remoteIP, "error", err.Error())
	}
}

// exchange is the state of one request as it goes through the proxy.
type exchange struct {
	start    time.Time
	b        *Backend
	bc       *BackendConfig
	srv      *Server
	status   int
	retries  int
	bytesIn  int64
	bytesOut int64
	err      error
	// tConnect and tResponse are when the server connection was ready and
	// when the response head arrived.
	tConnect, tResponse time.Time
}

// handle proxies one parsed request and reports whether the client
// connection may carry another.
func (cc *clientConn) handle(start time.Time) bool {
	f, req := cc.f, &cc.req
	f.Stats.Requests.Add(1)
	path := req.startB
	if len(path) > 0 && path[0] != '/' {
		path = absPath(path)
	}
	x := exchange{start: start}
	x.b = cc.fc.backendFor(req.host, path)
	hasBody := req.chunked || req.contentLength > 0
	clientKeep := req.minor == 1 && !req.connClose || req.minor == 0 && req.connKeepAlive
	var keep bool
	if code, extra := cc.edgeRules(path, start); code != 0 {
		// Refused before any server: a body the client sent is not
		// read, so the connection closes unless there is none.
		x.status, x.b = code, nil
		keep = cc.writeStatus(code, !hasBody, extra)
		if hasBody {
			cc.lingerClose() // the unread body must not reset the answer away
		}
	} else {
		keep = cc.proxy(&x, path, hasBody)
	}
	keep = keep && clientKeep && !cc.wantClose()
	f.Stats.countStatus(x.status)
	if x.b != nil {
		x.b.Stats.countStatus(x.status)
	}
	if l := cc.fc.AccessLog; l != nil {
		cc.accessLog(l, &x, start)
	}
	return keep
}

// edgeRules applies the request-level edge rules: the client's address
// behind trusted proxies, redirect to HTTPS, the ACL and the rate limit. It
// returns 0, or the status to answer with and extra header lines.
func (cc *clientConn) edgeRules(path []byte, now time.Time) (int, string) {
	fc, req := cc.fc, &cc.req
	cc.client = cc.peer
	cc.xff = nil
	if fc.Trusted != nil && fc.Trusted.Contains(cc.peer) {
		// Several X-Forwarded-For fields make one list. It is built in a
		// buffer of its own: appending to a field's value would write
		// over the head that holds it.
		n := 0
		for _, fl := range req.fields {
			if equalFold(fl.name, "x-forwarded-for") {
				if n > 0 {
					cc.xffBuf = append(cc.xffBuf, ',')
				} else {
					cc.xffBuf = cc.xffBuf[:0]
				}
				cc.xffBuf = append(cc.xffBuf, fl.value...)
				n++
			}
		}
		if n > 0 {
			cc.xff = cc.xffBuf
		}
		cc.client = fc.Trusted.ClientIP(cc.peer, cc.xff)
	}
	if fc.RedirectHTTPS {
		host := req.host
		if len(host) == 0 {
			return 400, ""
		}
		if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.LastIndexByte(host, ']') < i {
			host = host[:i]
		}
		target := req.startB
		if len(target) == 0 || target[0] != '/' {
			target = path
		}
		return 308, "Location: https://" + string(host) + string(target) + "\r\n"
	}
	if fc.ACL != nil && !fc.ACL.Allow(cc.client, req.host, path) {
		cc.f.Stats.Denied.Add(1)
		return 403, ""
	}
	if fc.Limiter != nil {
		if ok, wait := fc.Limiter.Allow(cc.client, now); !ok {
			cc.f.Stats.RateLimited.Add(1)
			secs := int64((wait + time.Second - 1) / time.Second)
			return 429, "Retry-After: " + strconv.FormatInt(max(secs, 1), 10) + "\r\n"
		}
	}
	return 0, ""
}

// proxy forwards the request to a server of x.b with retries and writes the
// response. It returns false when the client connection must close.
func (cc *clientConn) proxy(x *exchange, path []byte, hasBody bool) bool {
	req := &cc.req
	if x.b == nil {
		x.status = 503
		return cc.writeError(503, !hasBody)
	}
	b := x.b
	bc := b.cfg.Load()
	x.bc = bc
	b.Stats.Requests.Add(1)
	upgrade := req.connUpgrade && len(req.upgrade) > 0
	if req.expect100 && hasBody && req.minor == 1 {
		// Answer the expectation here rather than forward it: the body
		// is streamed to the server as it comes (RFC 9110 section 10.1.1).
		w := cc.writer()
		w.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if w.Flush() != nil {
			return false
		}
	}
	cc.out = cc.buildRequest(cc.out[:0], upgrade)
	// A small body of a request the client marked safe to repeat is read
	// whole first, so that it can be sent again to another server.
	replay := false
	if hasBody && req.idemKey && !req.chunked && req.contentLength <= maxReplayBody {
		n := len(cc.out)
		cc.out = slices.Grow(cc.out, int(req.contentLength))[:n+int(req.contentLength)]
		cc.bodyDeadline()
		if _, err := io.ReadFull(cc.br, cc.out[n:]); err != nil {
			f := cc.f
			f.Stats.ReqErrors.Add(1)
			x.err = err
			return false
		}
		x.bytesIn += req.contentLength
		replay = true
	}
	var key []byte
	switch {
	case bc.HashURI:
		key = path
	case bc.HashSource:
		key = []byte(cc.remoteIP)
	}
	var prev *Server
	attempts := bc.Retries + 1
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			x.retries++
			b.Stats.Retries.Add(1)
			if prev != nil {
				prev.Stats.Retries.Add(1)
			}
		}
		var avoid *Server
		if attempt > 0 && bc.Redispatch {
			avoid = prev
		}
		srv := b.pick(key, avoid)
		if srv == nil {
			x.status = 503
			x.err = errors.New("no server available")
			return cc.writeError(503, !hasBody)
		}
		if attempt > 0 && prev != nil && srv != prev {
			b.Stats.Redispatch.Add(1)
			srv.Stats.Redispatch.Add(1)
		} else if attempt > 0 && !bc.Redispatch {
			wait := bc.ConnectTimeout
			if wait <= 0 || wait > time.Second {
				wait = time.Second
			}
			time.Sleep(wait)
		}
		x.srv, prev = srv, srv
		srv.Active.Add(1)
		srv.Stats.Requests.Add(1)
		res := cc.try(x, srv, hasBody && !replay, upgrade)
		srv.Active.Add(-1)
		b.release(srv)
		if res == tryDone {
			srv.Stats.observeTime(time.Since(x.start))
		}
		switch res {
		case tryDone:
			return x.status != 0 && !cc.wantClose() && x.err == nil
		case tryClientGone:
			return false
		case tryRetry:
			continue
		case tryFail:
			return cc.failResponse(x, hasBody)
		}
	}
	return cc.failResponse(x, hasBody)
}

// failResponse answers a request no server could serve: 504 after a
// timeout, 502 otherwise.
func (cc *clientConn) failResponse(x *exchange, hasBody bool) bool {
	code := 502
	var ne net.Error
	if errors.As(x.err, &ne) && ne.Timeout() {
		code = 504
	}
	x.status = code
	x.b.Stats.RespErrors.Add(1)
	return cc.writeError(code, false) && !hasBody
}

type tryResult int

const (
	tryDone       tryResult = iota // a response was relayed (or failed mid-way)
	tryRetry                       // nothing reached the client; try again
	tryFail                        // nothing reached the client; give up
	tryClientGone                  // the client failed; close it
)

// try sends the request to srv once and relays the response.
func (cc *clientConn) try(x *exchange, srv *Server, hasBody, upgrade bool) tryResult {
	b, bc, req, f := x.b, x.bc, &cc.req, cc.f
	var sc *serverConn
	if bc.SendProxy == "" {
		sc = srv.pool.get(x.start)
	}
	reused := sc != nil
attempt:
	for {
		if sc == nil {
			var err error
			sc, err = b.dial(bc, srv, cc.raw)
			if err != nil {
				x.err = err
				b.Stats.ConnErrors.Add(1)
				srv.Stats.ConnErrors.Add(1)
				srv.observe(err)
				return tryRetry
			}
		}
		x.tConnect = time.Now()
		sc.dl.read(x.tConnect, bc.ServerTimeout)
		sc.dl.write(x.tConnect, bc.ServerTimeout)
		// The head, then the body as it arrives.
		sc.bw.Write(cc.out)
		var werr error
		if hasBody {
			before := cc.bodyDeadline
			var n int64
			var err error
			if req.chunked {
				n, err = copyChunked(sc.bw, cc.br, true, before)
			} else {
				n, err = copyN(sc.bw, cc.br, req.contentLength, before)
			}
			x.bytesIn += n
			if err != nil {
				sc.Close()
				x.err = err
				if errors.Is(err, errSrcRead) {
					f.Stats.ReqErrors.Add(1)
					if errors.Is(err, errBadChunk) {
						x.status = 400
						cc.writeError(400, false)
					}
					return tryClientGone
				}
				werr = err
			}
		}
		if werr == nil {
			werr = sc.bw.Flush()
		}
		if werr != nil {
			sc.Close()
			if reused && !hasBody {
				// A pooled connection the server had closed: not a
				// retry, just a new connection.
				sc, reused = nil, false
				continue
			}
			x.err = werr
			return cc.serverFailed(x, srv, werr, hasBody)
		}
		// The response head; 1xx other than 101 are relayed and skipped.
		for {
			err := readHead(sc.br, &cc.resp, 64<<10)
			if err == nil {
				err = parseResponse(&cc.resp)
			}
			if err != nil {
				sc.Close()
				// A pooled connection that ends without a byte of
				// answer was most likely closed by the server while
				// idle; the request is sent again on a new connection
				// only if repeating it is safe.
				if reused && !hasBody && len(cc.resp.buf) == 0 && !isTimeout(err) &&
					(idempotent(req.startA) || req.idemKey) {
					sc, reused = nil, false
					continue attempt
				}
				x.err = err
				return cc.serverFailed(x, srv, err, hasBody)
			}
			if cc.resp.status >= 100 && cc.resp.status < 200 && cc.resp.status != 101 {
				if cc.resp.status != 100 && req.minor == 1 {
					cc.writer().Write(cc.resp.buf)
					cc.writer().Flush()
				}
				continue
			}
			break
		}
		x.tResponse = time.Now()
		return cc.relay(x, srv, sc, upgrade)
	}
}

// serverFailed decides what follows a server failure before any response
// byte reached the client: an idempotent request without a body is retried
// (the server reset or timed out before answering), others fail.
func (cc *clientConn) serverFailed(x *exchange, srv *Server, err error, hasBody bool) tryResult {
	x.b.Stats.RespErrors.Add(1)
	srv.Stats.RespErrors.Add(1)
	srv.observe(err)
	if !hasBody && (idempotent(cc.req.startA) || cc.req.idemKey) && !isTimeout(err) {
		return tryRetry
	}
	return tryFail
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// relay writes the response head and body to the client and returns the
// server connection to the pool when it can carry another request.
func (cc *clientConn) relay(x *exchange, srv *Server, sc *serverConn, upgrade bool) tryResult {
	req, resp, f, b, bc, fc := &cc.req, &cc.resp, cc.f, x.b, x.bc, cc.fc
	x.status = resp.status
	srv.Stats.countStatus(resp.status)
	if x.bc.Observe5xx && resp.status >= 500 && resp.status != 501 && resp.status != 505 {
		srv.observe(errors.New("status " + strconv.Itoa(resp.status)))
	} else {
		srv.observe(nil)
	}
	if resp.status == 101 {
		if !upgrade {
			sc.Close()
			x.err = errors.New("101 without an upgrade request")
			x.status = 502
			cc.writeError(502, false)
			return tryDone
		}
		cc.writeResponseHead(true, true)
		if cc.writer().Flush() != nil {
			sc.Close()
			return tryClientGone
		}
		sb, _ := sc.br.Peek(sc.br.Buffered())
		in, out := tunnel(cc.c, cc.br.buffered(), sc.Conn, sb)
		x.bytesIn += in
		x.bytesOut += out
		b.Stats.BytesIn.Add(uint64(in))
		b.Stats.BytesOut.Add(uint64(out))
		srv.Stats.BytesIn.Add(uint64(in))
		srv.Stats.BytesOut.Add(uint64(out))
		cc.setClosing()
		return tryDone
	}
	noBody := string(req.startA) == "HEAD" || resp.status == 204 || resp.status == 304
	untilClose := !noBody && !resp.chunked && resp.contentLength < 0
	// A chunked response to an HTTP/1.0 client is sent as bare data,
	// delimited by closing the connection.
	dechunk := resp.chunked && req.minor == 0
	closeClient := untilClose || dechunk
	cc.writeResponseHead(closeClient, false)
	cc.dl.write(x.tResponse, fc.TimeoutClient)
	first := true
	before := func() {
		now := x.tResponse
		if !first {
			now = time.Now()
		}
		first = false
		sc.dl.read(now, bc.ServerTimeout)
		cc.dl.write(now, fc.TimeoutClient)
	}
	var n int64
	var err error
	switch {
	case noBody:
	case resp.chunked:
		n, err = copyChunked(cc.writer(), sc.br, !dechunk, before)
	case resp.contentLength >= 0:
		n, err = copyN(cc.writer(), sc.br, resp.contentLength, before)
	default:
		n, err = copyUntilEOF(cc.writer(), sc.br, before)
	}
	x.bytesOut += n + int64(len(resp.buf))
	x.bytesIn += int64(len(req.buf))
	if err == nil {
		err = cc.writer().Flush()
		if err != nil {
			err = &copyError{errDstWrite, err}
		}
	}
	f.Stats.BytesIn.Add(uint64(x.bytesIn))
	f.Stats.BytesOut.Add(uint64(x.bytesOut))
	b.Stats.BytesIn.Add(uint64(x.bytesIn))
	b.Stats.BytesOut.Add(uint64(x.bytesOut))
	srv.Stats.BytesIn.Add(uint64(x.bytesIn))
	srv.Stats.BytesOut.Add(uint64(x.bytesOut))
	if err != nil {
		// The head is already out: all that is left is to close both.
		sc.Close()
		x.err = err
		if errors.Is(err, errSrcRead) {
			b.Stats.RespErrors.Add(1)
			srv.Stats.RespErrors.Add(1)
			srv.observe(err)
		}
		cc.setClosing()
		return tryDone
	}
	if untilClose || resp.connClose || resp.minor == 0 && !resp.connKeepAlive || bc.SendProxy != "" {
		sc.Close()
	} else {
		srv.pool.put(sc, x.tResponse)
	}
	if closeClient {
		cc.setClosing()
	}
	return tryDone
}

// maxReplayBody is the largest body kept to send again (Idempotency-Key).
const maxReplayBody = 64 << 10

// bodyDeadline extends the client's read deadline while a body streams in.
func (cc *clientConn) bodyDeadline() { cc.dl.read(time.Now(), cc.fc.TimeoutClient) }

// headBuffered reports whether b holds a whole request head.
func headBuffered(b []byte) bool {
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// scratch is the per-request state of a client connection: parsed heads
// and the request as sent to servers. A connection holds one only while a
// request is in progress.
type scratch struct {
	req  head
	resp head
	out  []byte // the request head as sent to servers
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

func (cc *clientConn) getScratch() {
	if cc.scratch == nil {
		cc.scratch = scratches.Get().(*scratch)
	}
}

func (cc *clientConn) releaseScratch() {
	if s := cc.scratch; s != nil {
		cc.scratch = nil
		if cap(s.req.buf) > 64<<10 || cap(s.resp.buf) > 64<<10 {
			return // do not keep an outsized one
		}
		scratches.Put(s)
	}
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// writer returns the connection's response writer, taking one from the
// pool when it has none: an idle connection holds no write buffer.
func (cc *clientConn) writer() *bufio.Writer {
	if cc.bw == nil {
		cc.bw = writers.Get().(*bufio.Writer)
		cc.bw.Reset(cc.c)
	}
	return cc.bw
}

// recycle gives a closed connection's buffers back to their pools, as a
// connection going idle does (see serve): a new connection per request
// would otherwise allocate and clear them anew each time.
func (cc *clientConn) recycle() {
	cc.releaseWriter()
	cc.releaseScratch()
	if cc.br != nil {
		cc.br.release()
	}
}

// releaseWriter gives the response writer back once it has flushed.
func (cc *clientConn) releaseWriter() {
	if cc.bw != nil && cc.bw.Buffered() == 0 {
		cc.bw.Reset(nil)
		writers.Put(cc.bw)
		cc.bw = nil
	}
}

// buildRequest appends the request head as sent to a server: the request
// line, the client's fields less hop-by-hop ones and forwarding fields it
// must not choose, then fulcrum's forwarding fields (RFC 7239 and the
// X-Forwarded-* convention).
func (cc *clientConn) buildRequest(out []byte, upgrade bool) []byte {
	req := &cc.req
	out = append(out, req.startA...)
	out = append(out, ' ')
	out = append(out, req.startB...)
	out = append(out, " HTTP/1.1\r\n"...)
	for _, fl := range req.fields {
		if req.hopByHop(fl.name) || forwarding(fl.name) || equalFold(fl.name, "expect") {
			continue
		}
		out = append(out, fl.name...)
		out = append(out, ": "...)
		out = append(out, fl.value...)
		out = append(out, "\r\n"...)
	}
	if req.host == nil {
		// An HTTP/1.0 request may lack Host; HTTP/1.1 needs one: name
		// the address the client connected to.
		out = append(out, "Host: "...)
		out = append(out, cc.c.LocalAddr().String()...)
		out = append(out, "\r\n"...)
	}
	if req.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	if upgrade {
		out = append(out, "Connection: upgrade\r\nUpgrade: "...)
		out = append(out, req.upgrade...)
		out = append(out, "\r\n"...)
	}
	proto := cc.proto
	if proto == "" {
		proto = cc.fc.Proto
	}
	if proto == "" {
		proto = "http"
	}
	out = append(out, "X-Forwarded-For: "...)
	if len(cc.xff) > 0 {
		// A trusted proxy's list, extended with the proxy itself.
		out = append(out, cc.xff...)
		out = append(out, ", "...)
	}
	out = append(out, cc.remoteIP...)
	out = append(out, "\r\nX-Forwarded-Proto: "...)
	out = append(out, proto...)
	if req.host != nil {
		out = append(out, "\r\nX-Forwarded-Host: "...)
		out = append(out, req.host...)
	}
	out = append(out, "\r\nForwarded: for="...)
	if strings.IndexByte(cc.remoteIP, ':') >= 0 {
		out = append(out, "\"["...)
		out = append(out, cc.remoteIP...)
		out = append(out, "]\""...)
	} else {
		out = append(out, cc.remoteIP...)
	}
	out = append(out, ";proto="...)
	out = append(out, proto...)
	if req.host != nil && validForwardedHost(req.host) {
		out = append(out, ";host=\""...)
		out = append(out, req.host...)
		out = append(out, '"')
	}
	out = append(out, "\r\n\r\n"...)
	return out
}

// forwarding reports fields a client must not set on its own behalf.
func forwarding(name []byte) bool {
	switch len(name) {
	case 9:
		return equalFold(name, "forwarded")
	case 15:
		return equalFold(name, "x-forwarded-for") || equalFold(name, "x-forwarded-host")
	case 17:
		return equalFold(name, "x-forwarded-proto")
	}
	return false
}

func validForwardedHost(h []byte) bool {
	for _, c := range h {
		if c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// writeResponseHead writes the server's response head to the client less
// hop-by-hop fields, with fulcrum's own Connection field.
func (cc *clientConn) writeResponseHead(closeConn, upgrade bool) {
	resp, req, w := &cc.resp, &cc.req, cc.writer()
	w.WriteString("HTTP/1.1 ")
	w.Write(resp.startB)
	w.WriteByte(' ')
	w.Write(resp.startC)
	w.WriteString("\r\n")
	for _, fl := range resp.fields {
		if resp.hopByHop(fl.name) {
			continue
		}
		if resp.chunked && req.minor == 0 && equalFold(fl.name, "content-length") {
			continue
		}
		w.Write(fl.name)
		w.WriteString(": ")
		w.Write(fl.value)
		w.WriteString("\r\n")
	}
	if cc.proto == "https" && cc.fc.HSTS > 0 && !resp.has("strict-transport-security") {
		w.WriteString("Strict-Transport-Security: max-age=")
		w.WriteString(strconv.FormatInt(int64(cc.fc.HSTS/time.Second), 10))
		w.WriteString("\r\n")
	}
	switch {
	case upgrade:
		w.WriteString("Connection: upgrade\r\nUpgrade: ")
		w.Write(resp.upgrade)
		w.WriteString("\r\n")
	case resp.chunked && req.minor == 1:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !upgrade {
		if closeConn || cc.wantClose() || req.connClose {
			w.WriteString("Connection: close\r\n")
		} else if req.minor == 0 {
			w.WriteString("Connection: keep-alive\r\n")
		}
	}
	w.WriteString("\r\n")
}

var statusText = map[int]string{
	400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 413: "Content Too Large",
	429: "Too Many Requests", 431: "Request Header Fields Too Large", 501: "Not Implemented",
	502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

// writeError sends a short error response. With keep false (or when the
// connection is closing) it asks the client to close; it returns whether the
// connection may carry another request.
func (cc *clientConn) writeError(code int, keep bool) bool { return cc.writeStatus(code, keep, "") }

// writeStatus is writeError with extra header lines (each ending in CRLF).
func (cc *clientConn) writeStatus(code int, keep bool, extra string) bool {
	keep = keep && !cc.wantClose()
	text := statusText[code]
	body := strconv.Itoa(code) + " " + text + "\n"
	w := cc.writer()
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(code))
	w.WriteByte(' ')
	w.WriteString(text)
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-cache\r\n")
	w.WriteString(extra)
	w.WriteString("Content-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.WriteString(body)
	cc.dl.write(time.Now(), 5*time.Second)
	if w.Flush() != nil {
		return false
	}
	return keep
}

func (cc *clientConn) accessLog(l *slog.Logger, x *exchange, start time.Time) {
	end := time.Now()
	be, srv := "-", "-"
	if x.b != nil {
		be = x.b.Name
	}
	if x.srv != nil {
		srv = x.srv.Name
	}
	attrs := []slog.Attr{
		slog.String("frontend", cc.f.Name), slog.String("backend", be), slog.String("server", srv),
		slog.String("client", cc.remoteIP), slog.String("method", string(cc.req.startA)),
		slog.String("uri", string(cc.req.startB)), slog.Int("status", x.status),
		slog.Int64("bytes_in", x.bytesIn), slog.Int64("bytes_out", x.bytesOut),
		slog.Int("retries", x.retries), slog.Duration("total", end.Sub(start)),
	}
	if !x.tConnect.IsZero() {
		attrs = append(attrs, slog.Duration("connect", x.tConnect.Sub(start)))
	}
	if !x.tResponse.IsZero() {
		attrs = append(attrs, slog.Duration("response", x.tResponse.Sub(start)))
	}
	if x.err != nil {
		attrs = append(attrs, slog.String("error", x.err.Error()))
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// tunnel copies bytes both ways between the client and the server after a
// protocol upgrade, including what each side had already buffered, until
// both directions end.
func tunnel(client net.Conn, cbuf []byte, server net.Conn, sbuf []byte) (in, out int64) {
	// The deadlines of the request and the response do not carry over.
	client.SetDeadline(time.Time{})
	server.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in = pipe(server, client, cbuf)
	}()
	out = pipe(client, server, sbuf)
	wg.Wait()
	client.Close()
	server.Close()
	return in, out
}

// pipe copies src (first its buffered bytes) to dst, then half-closes dst.
func pipe(dst, src net.Conn, buffered []byte) int64 {
	var n int64
	if len(buffered) > 0 {
		w, err := dst.Write(buffered)
		n += int64(w)
		if err != nil {
			return n
		}
	}
	w, _ := io.Copy(dst, src)
	n += w
	closeWrite(dst)
	return n
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// absPath returns the path of an absolute-form target ("http://h/p?q" → "/p?q").
func absPath(t []byte) []byte {
	s := t
	if i := bytes.Index(s, []byte("://")); i >= 0 {
		s = s[i+3:]
		if j := bytes.IndexByte(s, '/'); j >= 0 {
			return s[j:]
		}
		return []byte("/")
	}
	return t
}
