package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"fulcrum/internal/edge"
)

// TCPFrontend relays TCP connections to a backend's servers, with the same
// balancing, retries and health as HTTP (see relay for the copying).
type TCPFrontend struct {
	Name  string
	Stats Counters

	cfg   atomic.Pointer[TCPConfig]
	conns connSet
}

// TCPConfig is a TCP frontend's backend and tunables; it is replaced whole
// on reload.
type TCPConfig struct {
	Backend *Backend
	// TimeoutClient is the longest the client side may stay silent (zero:
	// none). The server side uses the backend's ServerTimeout.
	TimeoutClient time.Duration
	// AccessLog, when set, gets one line per connection.
	AccessLog *slog.Logger
	// MaxConns caps concurrent connections (zero: none); beyond it new
	// connections wait in the kernel's accept queue.
	MaxConns int
	// ACL closes connections whose client it denies (only cidr rules apply).
	ACL *edge.ACL
	// Limiter refuses (closes) connections over the per-client rate or
	// concurrent-connection limit.
	Limiter *edge.Limiter
}

// NewTCPFrontend returns a frontend with the given configuration.
func NewTCPFrontend(name string, cfg *TCPConfig) *TCPFrontend {
	f := &TCPFrontend{Name: name}
	f.Configure(cfg)
	return f
}

// Configure replaces the configuration for new connections.
func (f *TCPFrontend) Configure(c *TCPConfig) { f.cfg.Store(c) }

// Serve accepts connections on ln until it is closed.
func (f *TCPFrontend) Serve(ln net.Listener) error {
	gate := func() {
		for {
			max := f.cfg.Load().MaxConns
			if max <= 0 || f.conns.count() < max {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return acceptLoop(ln, gate, func(c net.Conn) {
		tc := &tcpConn{c: c}
		if !f.conns.add(tc) {
			c.Close()
			return
		}
		go f.serve(tc)
	})
}

// Shutdown waits for connections to end until ctx is done, then closes them.
func (f *TCPFrontend) Shutdown(ctx context.Context) error { return f.conns.shutdown(ctx) }

// tcpConn is a client connection: its connection (a pollConn not watched,
// or a Go connection, see acceptLoop) while its server is chosen, then its
// pair in a relay loop.
type tcpConn struct {
	c      net.Conn
	mu     sync.Mutex // guards pair and closed
	pair   *relayPair
	closed bool
}

func (t *tcpConn) close() {
	t.mu.Lock()
	t.closed = true
	p := t.pair
	t.mu.Unlock()
	if p != nil {
		p.shut()
	} else {
		t.c.Close()
	}
}
func (t *tcpConn) isActive() bool { return true }
func (t *tcpConn) local() netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pair != nil {
		return t.pair.local()
	}
	return addrPort(t.c.LocalAddr()).Addr().Unmap()
}
func (t *tcpConn) setClosing() {}
func (t *tcpConn) wake()       { t.close() }

func (f *TCPFrontend) serve(t *tcpConn) {
	c := t.c
	var limiter *edge.Limiter
	var peer netip.Addr
	// release ends the connection in the frontend: here, unless the relay
	// loop took it over (then its finish calls release).
	release := func() {
		c.Close()
		if limiter != nil {
			limiter.Release(peer)
		}
		f.conns.remove(t)
	}
	defer func() {
		if release != nil {
			release()
		}
	}()
	start := time.Now()
	f.Stats.Requests.Add(1)
	fc := f.cfg.Load()
	b := fc.Backend
	if b == nil {
		return
	}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		peer = a.AddrPort().Addr().Unmap()
	}
	if fc.ACL != nil && !fc.ACL.AllowConn(peer) {
		f.Stats.Denied.Add(1)
		return
	}
	if fc.Limiter != nil {
		if ok, _ := fc.Limiter.Allow(peer, start); !ok || !fc.Limiter.Acquire(peer) {
			f.Stats.RateLimited.Add(1)
			return
		}
		limiter = fc.Limiter
	}
	bc := b.cfg.Load()
	b.Stats.Requests.Add(1)
	var key []byte
	if bc.HashSource {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			key = a.IP
		}
	}
	var (
		srv, prev *Server
		sfd       = -1
		err       error
		retries   int
	)
	for attempt := 0; attempt <= bc.Retries; attempt++ {
		var avoid *Server
		if attempt > 0 {
			retries++
			b.Stats.Retries.Add(1)
			if bc.Redispatch {
				avoid = prev
			}
		}
		srv = b.pick(key, avoid)
		if srv == nil {
			err = errors.New("no server available")
			break
		}
		if attempt > 0 && srv != prev {
			b.Stats.Redispatch.Add(1)
		} else if attempt > 0 {
			wait := bc.ConnectTimeout
			if wait <= 0 || wait > time.Second {
				wait = time.Second
			}
			time.Sleep(wait)
		}
		prev = srv
		sfd, err = dialSocket(srv, bc.ConnectTimeout)
		if err == nil && bc.SendProxy != "" {
			err = sendHeader(sfd, proxyHeader(bc.SendProxy, c))
			if err != nil {
				closeSocket(sfd)
				sfd = -1
			}
		}
		if err == nil {
			break
		}
		b.release(srv)
		b.Stats.ConnErrors.Add(1)
		srv.Stats.ConnErrors.Add(1)
		srv.observe(err)
		srv = nil
	}
	if srv == nil || sfd < 0 {
		b.Stats.RespErrors.Add(1)
		f.log(fc, c, b, nil, start, 0, 0, retries, err)
		return
	}
	srv.observe(nil)
	srv.Stats.Requests.Add(1)
	srv.Active.Add(1)
	rel := release
	done := func(in, out int64, err error) {
		srv.Active.Add(-1)
		b.release(srv)
		for _, cs := range []*Counters{&f.Stats, &b.Stats, &srv.Stats} {
			cs.BytesIn.Add(uint64(in))
			cs.BytesOut.Add(uint64(out))
		}
		f.log(fc, c, b, srv, start, in, out, retries, err)
		rel()
	}
	// From here a relay loop owns both sockets, and the rest of the
	// connection's bookkeeping is done's.
	release = nil
	t.mu.Lock()
	if t.closed {
		closeSocket(sfd)
		err = net.ErrClosed
	} else { // startRelay closes sfd if it fails
		t.pair, err = startRelay(c, sfd, fc.TimeoutClient, bc.ServerTimeout, func(in, out int64) { done(in, out, nil) })
	}
	t.mu.Unlock()
	if err != nil {
		b.Stats.RespErrors.Add(1)
		done(0, 0, err)
	}
}

func (f *TCPFrontend) log(fc *TCPConfig, c net.Conn, b *Backend, srv *Server, start time.Time, in, out int64, retries int, err error) {
	l := fc.AccessLog
	if l == nil {
		return
	}
	name := "-"
	if srv != nil {
		name = srv.Name
	}
	attrs := []slog.Attr{
		slog.String("frontend", f.Name), slog.String("backend", b.Name), slog.String("server", name),
		slog.String("client", c.RemoteAddr().String()), slog.Int64("bytes_in", in), slog.Int64("bytes_out", out),
		slog.Int("retries", retries), slog.Duration("total", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}

// sendHeader sends a PROXY protocol header on a socket just connected,
// whose empty buffer takes it whole at once.
func sendHeader(fd int, h []byte) error {
	n, err := send(fd, h)
	if err == nil && n < len(h) {
		err = errors.New("PROXY header not sent whole")
	}
	return err
}

// CloseOn closes the connections accepted on local address addr after
// grace, in the background; see HTTPFrontend.CloseOn.
func (f *TCPFrontend) CloseOn(addr netip.Addr, grace time.Duration) int {
	return f.conns.closeOn(addr, grace)
}

// ActiveConns returns the number of open client connections.
func (f *TCPFrontend) ActiveConns() int { return f.conns.count() }
