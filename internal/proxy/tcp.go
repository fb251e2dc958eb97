package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TCPFrontend relays TCP connections to a backend's servers, with the same
// balancing, retries and health as HTTP, copying with splice(2) on Linux.
type TCPFrontend struct {
	Name string
	// TimeoutClient is the longest the client side may stay silent (zero:
	// none). The server side uses the backend's ServerTimeout.
	TimeoutClient time.Duration
	// AccessLog, when set, gets one line per connection.
	AccessLog *slog.Logger

	Stats Counters

	backend atomic.Pointer[Backend]
	conns   connSet
}

// SetBackend sets the backend new connections go to.
func (f *TCPFrontend) SetBackend(b *Backend) { f.backend.Store(b) }

// Serve accepts connections on ln until it is closed.
func (f *TCPFrontend) Serve(ln net.Listener) error {
	return acceptLoop(ln, func(c net.Conn) {
		tc := &tcpConn{c: c}
		if !f.conns.add(tc) {
			c.Close()
			return
		}
		go func() {
			defer f.conns.remove(tc)
			f.serve(tc)
		}()
	})
}

// Shutdown waits for connections to end until ctx is done, then closes them.
func (f *TCPFrontend) Shutdown(ctx context.Context) error { return f.conns.shutdown(ctx) }

type tcpConn struct {
	c net.Conn
}

func (t *tcpConn) close()         { t.c.Close() }
func (t *tcpConn) isActive() bool { return true }
func (t *tcpConn) setClosing()    {}

func (f *TCPFrontend) serve(t *tcpConn) {
	c := t.c
	defer c.Close()
	start := time.Now()
	f.Stats.Requests.Add(1)
	b := f.backend.Load()
	if b == nil {
		return
	}
	b.Stats.Requests.Add(1)
	var key []byte
	if b.HashSource {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			key = a.IP
		}
	}
	var (
		srv, prev *Server
		sc        net.Conn
		err       error
		retries   int
	)
	for attempt := 0; attempt <= b.Retries; attempt++ {
		var avoid *Server
		if attempt > 0 {
			retries++
			b.Stats.Retries.Add(1)
			if b.Redispatch {
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
			wait := b.ConnectTimeout
			if wait <= 0 || wait > time.Second {
				wait = time.Second
			}
			time.Sleep(wait)
		}
		prev = srv
		d := net.Dialer{Timeout: b.ConnectTimeout}
		sc, err = d.Dial("tcp", srv.Addr)
		if err == nil {
			break
		}
		b.release(srv)
		b.Stats.ConnErrors.Add(1)
		srv.Stats.ConnErrors.Add(1)
		srv.observe(err)
		srv = nil
	}
	if srv == nil || sc == nil {
		b.Stats.RespErrors.Add(1)
		f.log(c, b, nil, start, 0, 0, retries, err)
		return
	}
	srv.observe(nil)
	srv.Stats.Requests.Add(1)
	srv.Active.Add(1)
	defer func() {
		srv.Active.Add(-1)
		b.release(srv)
	}()
	var in, out int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in = splice(sc, c, f.TimeoutClient)
	}()
	out = splice(c, sc, b.ServerTimeout)
	wg.Wait()
	sc.Close()
	for _, cs := range []*Counters{&f.Stats, &b.Stats, &srv.Stats} {
		cs.BytesIn.Add(uint64(in))
		cs.BytesOut.Add(uint64(out))
	}
	f.log(c, b, srv, start, in, out, retries, nil)
}

// spliceRound is how much one copy round may move before the idle deadline
// is renewed.
const spliceRound = 4 << 20

// splice copies src to dst until src ends or stays silent for idle, then
// half-closes dst (so the other direction can finish: half-close is
// relayed). Between two *net.TCPConn, io.Copy uses splice(2): the bytes
// never enter user space. The idle deadline is renewed every round, so a
// connection closes after between idle and 2×idle of silence.
func splice(dst, src net.Conn, idle time.Duration) int64 {
	var total int64
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		lr := &io.LimitedReader{R: src, N: spliceRound}
		n, err := io.Copy(dst, lr)
		total += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && n > 0 {
				continue // traffic during the round: not idle
			}
			// A read or write error: end both directions.
			src.Close()
			dst.Close()
			return total
		}
		if lr.N > 0 { // EOF from src
			closeWrite(dst)
			return total
		}
	}
}

func (f *TCPFrontend) log(c net.Conn, b *Backend, srv *Server, start time.Time, in, out int64, retries int, err error) {
	l := f.AccessLog
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
