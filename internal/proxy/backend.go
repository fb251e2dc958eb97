package proxy

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"fulcrum/internal/balance"
	"fulcrum/internal/edge"
)

// Backend is a group of servers sharing a balancer, retry policy and
// timeouts. Its server list only grows (servers removed at runtime stay as
// tombstones, never picked), so an index from the balancer is always valid.
type Backend struct {
	Name  string
	Stats Counters

	bal     balance.Balancer
	cfg     atomic.Pointer[BackendConfig]
	h2once  sync.Once
	h2rt    *http.Transport // for HTTP/2 client streams
	mu      sync.Mutex      // guards writes of servers
	servers atomic.Pointer[[]*Server]
}

// BackendConfig holds a backend's tunables; it is replaced whole on reload.
type BackendConfig struct {
	// HashURI makes the balancer's key the request path (balance uri);
	// HashSource makes it the client address (balance source).
	HashURI, HashSource bool
	// Retries is how many more attempts a failed connection gets.
	Retries int
	// Redispatch sends each retry to another server when one is usable;
	// without it a retry waits min(ConnectTimeout, 1s) and tries the same
	// server again, like HAProxy.
	Redispatch bool
	// ConnectTimeout bounds a dial; ServerTimeout bounds each wait for the
	// server (the response head, each read of the body) and tcp idleness.
	ConnectTimeout, ServerTimeout time.Duration
	// Observe5xx counts 5xx responses (but 501 and 505) as server errors for
	// passive health checks.
	Observe5xx bool
	// TLS, when set, encrypts connections to the servers (ServerName
	// defaults to the server address's host).
	TLS *tls.Config
	// SendProxy is "v1" or "v2" to send a PROXY protocol header naming the
	// client on every server connection; such connections carry one
	// client's requests only and are not pooled.
	SendProxy string
}

// proxyHeader returns the PROXY protocol header for client connection c.
func proxyHeader(version string, c net.Conn) []byte {
	var src, dst netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		dst = a.AddrPort()
	}
	if version == "v2" {
		return edge.AppendProxyV2(nil, src, dst)
	}
	return edge.AppendProxyV1(nil, src, dst)
}

// NewBackend returns a backend over servers, chosen by bal, whose indexes
// must match servers'.
func NewBackend(name string, bal balance.Balancer, servers []*Server, cfg BackendConfig) *Backend {
	b := &Backend{Name: name, bal: bal}
	s := append([]*Server(nil), servers...)
	b.servers.Store(&s)
	b.Configure(cfg)
	return b
}

// Configure replaces the backend's tunables; requests in flight keep the
// ones they started with.
func (b *Backend) Configure(cfg BackendConfig) { b.cfg.Store(&cfg) }

// Config returns the backend's tunables.
func (b *Backend) Config() BackendConfig { return *b.cfg.Load() }

// Servers returns the backend's servers, tombstones included.
func (b *Backend) Servers() []*Server { return *b.servers.Load() }

// Balancer returns the backend's balancer.
func (b *Backend) Balancer() balance.Balancer { return b.bal }

// AddServer appends s (as the balancer's newest index). The caller adds it to
// the balancer first.
func (b *Backend) AddServer(s *Server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.servers.Load()
	n := make([]*Server, len(old), len(old)+1)
	copy(n, old)
	n = append(n, s)
	b.servers.Store(&n)
}

// pick chooses a server, avoiding avoid when another is usable.
func (b *Backend) pick(key []byte, avoid *Server) *Server {
	av := -1
	if avoid != nil {
		av = avoid.index
	}
	i := b.bal.Pick(key, av)
	if i < 0 {
		return nil
	}
	return (*b.servers.Load())[i]
}

func (b *Backend) release(s *Server) { b.bal.Release(s.index) }

// Server is one backend server: its address, idle connection pool, counters
// and passive health hook.
type Server struct {
	Name string
	Addr string
	ip   netip.AddrPort // Addr, if an IP address with no zone (see dialServer)

	Stats Counters
	// Active is the number of requests (tcp: connections) in flight.
	Active atomic.Int64

	index    int
	pool     pool
	observer atomic.Pointer[func(error)]
}

// SetObserver makes fn receive the outcome of every use of the server on
// live traffic (nil error: success), for passive health checking; nil
// stops it. Safe while traffic flows.
func (s *Server) SetObserver(fn func(error)) {
	if fn == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&fn)
}

// NewServer returns a server at balancer index index.
func NewServer(name, addr string, index int) *Server {
	s := &Server{Name: name, Addr: addr, index: index}
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Zone() == "" {
		s.ip = ap
	}
	return s
}

// Index returns the server's index in its backend's balancer.
func (s *Server) Index() int { return s.index }

// CloseIdle closes the server's pooled idle connections.
func (s *Server) CloseIdle() { s.pool.closeAll() }

func (s *Server) observe(err error) {
	if fn := s.observer.Load(); fn != nil {
		(*fn)(err)
	}
}

// Counters are the statistics kept per frontend, backend and server.
// Field names follow HAProxy's stats columns where one exists.
type Counters struct {
	Requests   atomic.Uint64 // stot: requests (http) or connections (tcp)
	BytesIn    atomic.Uint64 // bin: from clients
	BytesOut   atomic.Uint64 // bout: to clients
	ConnErrors atomic.Uint64 // econ: failed connections to a server
	RespErrors atomic.Uint64 // eresp: servers that failed mid-exchange
	ReqErrors  atomic.Uint64 // ereq: malformed or aborted requests
	Retries    atomic.Uint64 // wretr
	Redispatch atomic.Uint64 // wredis
	Status     [6]atomic.Uint64
	TLSErrors  atomic.Uint64 // failed TLS handshakes (frontends)
	Denied     atomic.Uint64 // requests (tcp: connections) an ACL denied
	// RateLimited counts requests or connections over a rate limit.
	RateLimited atomic.Uint64
	// Times counts responses by total time (request head received to
	// response sent) in the buckets of TimeBounds, the last for longer
	// ones; TimeTotalNs is their sum.
	Times       [len(TimeBounds) + 1]atomic.Uint64
	TimeTotalNs atomic.Uint64
}

// TimeBounds are the upper bounds of the response-time buckets.
var TimeBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// observeTime records one response's total time.
func (c *Counters) observeTime(d time.Duration) {
	i := 0
	for i < len(TimeBounds) && d > TimeBounds[i] {
		i++
	}
	c.Times[i].Add(1)
	c.TimeTotalNs.Add(uint64(d))
}

// countStatus records one response of the given status code.
func (c *Counters) countStatus(code int) {
	if i := code / 100; i >= 1 && i <= 5 {
		c.Status[i].Add(1)
	} else {
		c.Status[0].Add(1)
	}
}

// serverConn is a connection to a server with its buffers.
type serverConn struct {
	net.Conn
	dl       deadlines
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

const (
	poolMaxIdle     = 256
	poolIdleTimeout = 20 * time.Second
)

// pool holds a server's idle keep-alive connections, newest on top.
type pool struct {
	mu   sync.Mutex
	idle []*serverConn
}

func (p *pool) get(now time.Time) *serverConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleFrom) < poolIdleTimeout {
			return c
		}
		c.Close()
	}
	return nil
}

func (p *pool) put(c *serverConn, now time.Time) {
	c.idleFrom = now
	p.mu.Lock()
	if len(p.idle) < poolMaxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// dial opens a new connection to s for client connection client: TCP, then
// the PROXY header and TLS when configured.
func (b *Backend) dial(cfg *BackendConfig, s *Server, client net.Conn) (*serverConn, error) {
	c, err := dialServer(s, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.SendProxy != "" {
		if _, err := c.Write(proxyHeader(cfg.SendProxy, client)); err != nil {
			c.Close()
			return nil, err
		}
	}
	if cfg.TLS != nil {
		tcfg := cfg.TLS
		if tcfg.ServerName == "" {
			tcfg = tcfg.Clone()
			tcfg.ServerName, _, _ = net.SplitHostPort(s.Addr)
		}
		tc := tls.Client(c, tcfg)
		if cfg.ConnectTimeout > 0 {
			tc.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
		}
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	return &serverConn{Conn: c, dl: deadlines{c: c}, br: bufio.NewReaderSize(c, 8192), bw: bufio.NewWriterSize(c, 8192)}, nil
}
