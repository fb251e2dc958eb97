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
		t := &tcpConn{f: f, c: c, fc: f.cfg.Load()}
		if !f.conns.add(t) {
			c.Close()
			return
		}
		go t.serve()
	})
}

// Shutdown waits for connections to end until ctx is done, then closes them.
func (f *TCPFrontend) Shutdown(ctx context.Context) error { return f.conns.shutdown(ctx) }

// tcpConn is a client connection: its connection (a pollConn not watched,
// or a Go connection, see acceptLoop) while its server is chosen, then its
// pair in a relay loop, and what its end must give back and count.
type tcpConn struct {
	f      *TCPFrontend
	c      net.Conn
	mu     sync.Mutex // guards pair and closed
	pair   *relayPair
	closed bool

	fc       *TCPConfig
	start    time.Time
	peer     netip.Addr
	limiter  *edge.Limiter // acquired for peer
	b        *Backend
	srv      *Server // the server relayed to
	retries  int
	relaying bool // the relay loop owns the sockets, and ends the connection
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
	return localAddrPort(t.c).Addr().Unmap()
}
func (t *tcpConn) setClosing() {}
func (t *tcpConn) wake()       { t.close() }

// serve admits the connection, connects it to a server and hands both to
// a relay loop; whatever fails on the way ends it here.
func (t *tcpConn) serve() {
	t.start = time.Now()
	t.f.Stats.Requests.Add(1)
	if t.admit() {
		t.relay()
	}
	if !t.relaying {
		t.end()
	}
}

// admit applies the frontend's ACL and limits to the client.
func (t *tcpConn) admit() bool {
	fc := t.fc
	t.b = fc.Backend
	if t.b == nil {
		return false
	}
	t.peer = remoteAddrPort(t.c).Addr().Unmap()
	if fc.ACL != nil && !fc.ACL.AllowConn(t.peer) {
		t.f.Stats.Denied.Add(1)
		return false
	}
	if fc.Limiter != nil {
		if ok, _ := fc.Limiter.Allow(t.peer, t.start); !ok || !fc.Limiter.Acquire(t.peer) {
			t.f.Stats.RateLimited.Add(1)
			return false
		}
		t.limiter = fc.Limiter
	}
	return true
}

// relay connects to a server and starts relaying.
func (t *tcpConn) relay() {
	b := t.b
	bc := b.cfg.Load()
	b.Stats.Requests.Add(1)
	sfd, err := t.connect(bc)
	if err != nil {
		b.Stats.RespErrors.Add(1)
		t.f.log(t, 0, 0, err)
		return
	}
	t.srv.observe(nil)
	t.srv.Stats.Requests.Add(1)
	t.srv.Active.Add(1)
	// From here a relay loop owns both sockets, and relayed ends the
	// connection.
	t.relaying = true
	t.mu.Lock()
	if t.closed {
		closeSocket(sfd)
		err = net.ErrClosed
	} else { // startRelay closes sfd if it fails
		t.pair, err = startRelay(t.c, sfd, t.fc.TimeoutClient, bc.ServerTimeout, t)
	}
	t.mu.Unlock()
	if err != nil {
		b.Stats.RespErrors.Add(1)
		t.finish(0, 0, err)
	}
}

// connect picks a server and connects to it, with the backend's retries
// and redispatch; it sets t.srv and t.retries.
func (t *tcpConn) connect(bc *BackendConfig) (int, error) {
	b := t.b
	var key []byte
	if bc.HashSource {
		key = t.peer.AsSlice()
	}
	var prev *Server
	var err error
	for attempt := 0; attempt <= bc.Retries; attempt++ {
		var avoid *Server
		if attempt > 0 {
			t.retries++
			b.Stats.Retries.Add(1)
			if bc.Redispatch {
				avoid = prev
			}
		}
		srv := b.pick(key, avoid)
		if srv == nil {
			return -1, errors.New("no server available")
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
		var sfd int
		sfd, err = dialSocket(srv, bc.ConnectTimeout)
		if err == nil && bc.SendProxy != "" {
			if err = sendHeader(sfd, proxyHeader(bc.SendProxy, t.c)); err != nil {
				closeSocket(sfd)
			}
		}
		if err == nil {
			t.srv = srv
			return sfd, nil
		}
		b.release(srv)
		b.Stats.ConnErrors.Add(1)
		srv.Stats.ConnErrors.Add(1)
		srv.observe(err)
	}
	return -1, err
}

// relayed implements relayOwner: the pair has ended.
func (t *tcpConn) relayed(in, out int64, err error) {
	if err != nil {
		t.b.Stats.RespErrors.Add(1)
	}
	t.finish(in, out, err)
}

// finish counts a relayed connection out of its server and ends it.
func (t *tcpConn) finish(in, out int64, err error) {
	srv := t.srv
	srv.Active.Add(-1)
	t.b.release(srv)
	for _, cs := range []*Counters{&t.f.Stats, &t.b.Stats, &srv.Stats} {
		cs.BytesIn.Add(uint64(in))
		cs.BytesOut.Add(uint64(out))
	}
	t.f.log(t, in, out, err)
	t.end()
}

// end gives back what the connection held, and counts it out.
func (t *tcpConn) end() {
	t.c.Close()
	if t.limiter != nil {
		t.limiter.Release(t.peer)
	}
	t.f.conns.remove(t)
}

func (f *TCPFrontend) log(t *tcpConn, in, out int64, err error) {
	l := t.fc.AccessLog
	if l == nil {
		return
	}
	name := "-"
	if t.srv != nil {
		name = t.srv.Name
	}
	attrs := []slog.Attr{
		slog.String("frontend", f.Name), slog.String("backend", t.b.Name), slog.String("server", name),
		slog.String("client", t.c.RemoteAddr().String()), slog.Int64("bytes_in", in), slog.Int64("bytes_out", out),
		slog.Int("retries", t.retries), slog.Duration("total", time.Since(t.start)),
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
