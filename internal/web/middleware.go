package web

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Stats are the server's request counters since it was created.
type Stats struct {
	// Requests is every request answered, by status class: ByClass[2] holds
	// the 2xx.
	Requests uint64
	ByClass  [6]uint64
	InFlight int64
}

// counters are Stats as they are updated.
type counters struct {
	requests atomic.Uint64
	byClass  [6]atomic.Uint64
	inFlight atomic.Int64
}

// Stats returns the request counters, for a dashboard's requests per second.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.stats.requests.Load(), InFlight: s.stats.inFlight.Load()}
	for i := range st.ByClass {
		st.ByClass[i] = s.stats.byClass[i].Load()
	}
	return st
}

// wrap adds what every response gets: X-Served-By (set before the handler
// runs, so errors carry it too), a 500 instead of a dropped connection when
// a handler panics, the counters and one access-log line.
func (s *Server) wrap(next http.Handler) http.Handler {
	accessLog := s.cfg.AccessLogOn()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set(headerServedBy, s.cfg.Name)
		rec := &recorder{ResponseWriter: w}
		s.stats.inFlight.Add(1)
		defer func() {
			p := recover()
			if p != nil && p != http.ErrAbortHandler {
				s.log.Error("handler panic", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					http.Error(rec, "500 internal server error", http.StatusInternalServerError)
				}
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			s.durations.Observe(time.Since(start).Seconds())
			s.stats.inFlight.Add(-1)
			s.stats.requests.Add(1)
			if c := rec.status / 100; c >= 1 && c <= 5 {
				s.stats.byClass[c].Add(1)
			}
			if accessLog {
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", rec.status),
					slog.Int64("bytes", rec.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("remote", r.RemoteAddr),
				}
				if node := rec.Header().Get("X-DB-Node"); node != "" {
					attrs = append(attrs, slog.String("db_node", node))
				}
				s.log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder notes the status and size of a response. It passes ReadFrom
// through, so files still go out with sendfile, and Flush and Hijack for the
// reverse proxy.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("web: connection cannot be hijacked")
	}
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
