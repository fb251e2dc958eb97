package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"fulcrum/internal/lb"
)

// Status is the answer of GET /api/status: the load balancer's snapshot
// with request rates.
type Status struct {
	// Time is when the snapshot was taken, for ages such as the time
	// since a server's last state change.
	Time      time.Time  `json:"time"`
	Frontends []Frontend `json:"frontends"`
	Backends  []Backend  `json:"backends"`
	// VRRP is the load balancer's virtual routers (absent without vrrp).
	VRRP []VRRP `json:"vrrp,omitempty"`
}

// Frontend is a frontend with its request rate.
type Frontend struct {
	lb.FrontendStatus
	// Rate is requests (tcp: connections) per second over the last
	// sampling interval.
	Rate        float64   `json:"rate"`
	RateHistory []float64 `json:"rate_history"`
}

// Backend is a backend with its request rate and its servers.
type Backend struct {
	lb.BackendStatus
	Rate        float64   `json:"rate"`
	RateHistory []float64 `json:"rate_history"`
	// Sessions is the sum of its servers' current sessions.
	Sessions int64    `json:"current_sessions"`
	Servers  []Server `json:"servers"`
}

// Server is a server with its request rate and share of traffic.
type Server struct {
	Backend string `json:"backend"`
	lb.ServerStatus
	Rate float64 `json:"rate"`
	// RateHistory holds the latest rates, oldest first, one per interval.
	RateHistory []float64 `json:"rate_history"`
	// Share is the server's part (0..1) of its backend's requests over the
	// last 10 samples; of all its requests when none came in that time.
	Share float64 `json:"share"`
}

// status builds the snapshot the API and the stats page show.
func (a *Admin) status() Status {
	st := a.opts.LB.Status()
	out := Status{Time: a.opts.Now().UTC(), Frontends: []Frontend{}, Backends: []Backend{}}
	if a.opts.VRRP != nil {
		out.VRRP = vrrpView(a.opts.VRRP())
	}
	for _, f := range st.Frontends {
		k := frontendKey(f.Name)
		out.Frontends = append(out.Frontends, Frontend{FrontendStatus: f, Rate: a.rates.rate(k), RateHistory: a.rates.history(k)})
	}
	for _, b := range st.Backends {
		k := backendKey(b.Name)
		bv := Backend{BackendStatus: b, Rate: a.rates.rate(k), RateHistory: a.rates.history(k), Servers: []Server{}}
		var recentSum float64
		var total uint64
		recent := make([]float64, len(b.Servers))
		for i, s := range b.Servers {
			recent[i] = a.rates.recent(serverKey(b.Name, s.Name), shareWindow)
			recentSum += recent[i]
			total += s.Counts.Requests
			bv.Sessions += s.Active
		}
		for i, s := range b.Servers {
			k := serverKey(b.Name, s.Name)
			sv := Server{Backend: b.Name, ServerStatus: s, Rate: a.rates.rate(k), RateHistory: a.rates.history(k)}
			switch {
			case recentSum > 0:
				sv.Share = recent[i] / recentSum
			case total > 0:
				sv.Share = float64(s.Counts.Requests) / float64(total)
			}
			bv.Servers = append(bv.Servers, sv)
		}
		out.Backends = append(out.Backends, bv)
	}
	return out
}

func findBackend(st Status, name string) (Backend, error) {
	for _, b := range st.Backends {
		if b.Name == name {
			return b, nil
		}
	}
	return Backend{}, fmt.Errorf("backend %q: %w", name, lb.ErrNotFound)
}

func findServer(st Status, backend, server string) (Server, error) {
	b, err := findBackend(st, backend)
	if err != nil {
		return Server{}, err
	}
	for _, s := range b.Servers {
		if s.Name == server {
			return s, nil
		}
	}
	return Server{}, fmt.Errorf("backend %q: server %q: %w", backend, server, lb.ErrNotFound)
}

func (a *Admin) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", serveIndex)
	m.Handle("GET /ui/", http.FileServerFS(uiFS))
	m.Handle("GET /metrics", a.metricsHandler())

	m.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, a.status())
	})
	// Go's profiler, behind the same access rules as the API: CPU,
	// allocation and goroutine profiles of the running load balancer.
	m.HandleFunc("GET /debug/pprof/", pprof.Index)
	m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("GET /api/vrrp", func(w http.ResponseWriter, r *http.Request) {
		var v []VRRP
		if a.opts.VRRP != nil {
			v = vrrpView(a.opts.VRRP())
		}
		writeJSON(w, r, http.StatusOK, v)
	})
	m.HandleFunc("GET /api/frontends", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, a.status().Frontends)
	})
	m.HandleFunc("GET /api/backends", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, a.status().Backends)
	})
	m.HandleFunc("GET /api/backends/{backend}", func(w http.ResponseWriter, r *http.Request) {
		b, err := findBackend(a.status(), r.PathValue("backend"))
		a.reply(w, r, b, err)
	})
	m.HandleFunc("GET /api/servers", func(w http.ResponseWriter, r *http.Request) {
		all := []Server{}
		for _, b := range a.status().Backends {
			all = append(all, b.Servers...)
		}
		writeJSON(w, r, http.StatusOK, all)
	})
	m.HandleFunc("GET /api/servers/{backend}/{server}", func(w http.ResponseWriter, r *http.Request) {
		s, err := findServer(a.status(), r.PathValue("backend"), r.PathValue("server"))
		a.reply(w, r, s, err)
	})

	m.HandleFunc("POST /api/servers/{backend}/{server}/weight", a.change(func(b, s string, req changeRequest) error {
		if req.Weight == nil {
			return fmt.Errorf(`want {"weight": "N" or "N%%"}: %w`, lb.ErrInvalid)
		}
		return a.opts.LB.SetWeight(b, s, string(*req.Weight))
	}))
	m.HandleFunc("POST /api/servers/{backend}/{server}/state", a.change(func(b, s string, req changeRequest) error {
		if req.State == nil {
			return fmt.Errorf(`want {"state": "ready", "drain" or "maint"}: %w`, lb.ErrInvalid)
		}
		return a.opts.LB.SetState(b, s, *req.State)
	}))
	m.HandleFunc("POST /api/servers/{backend}/{server}/checks", a.change(func(b, s string, req changeRequest) error {
		if req.Enabled == nil {
			return fmt.Errorf(`want {"enabled": true or false}: %w`, lb.ErrInvalid)
		}
		return a.opts.LB.SetChecks(b, s, *req.Enabled)
	}))
	m.HandleFunc("POST /api/servers/{backend}/{server}/health", a.change(func(b, s string, req changeRequest) error {
		if req.Health == nil || (*req.Health != "up" && *req.Health != "down") {
			return fmt.Errorf(`want {"health": "up" or "down"}: %w`, lb.ErrInvalid)
		}
		return a.opts.LB.ForceHealth(b, s, *req.Health == "up")
	}))
	m.HandleFunc("POST /api/backends/{backend}/servers", a.addServer)
	m.HandleFunc("DELETE /api/servers/{backend}/{server}", func(w http.ResponseWriter, r *http.Request) {
		b, s := r.PathValue("backend"), r.PathValue("server")
		if err := a.opts.LB.DelServer(b, s); err != nil {
			a.fail(w, r, err)
			return
		}
		a.log.Info("server deleted through the admin API", "backend", b, "server", s, "remote", r.RemoteAddr)
		writeJSON(w, r, http.StatusOK, map[string]any{"backend": b, "server": s, "deleted": true})
	})
	m.HandleFunc("POST /api/reload", a.reload)
	m.HandleFunc("POST /reload", a.reload)
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "%s %s: no such endpoint", r.Method, r.URL.Path)
	})
	return m
}

// weightValue takes a weight as a JSON string ("50%") or number (50).
type weightValue string

func (v *weightValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = weightValue(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("weight: want a number or a string such as \"50%%\"")
	}
	*v = weightValue(n.String())
	return nil
}

// changeRequest is the body of the POST endpoints; each reads its field.
type changeRequest struct {
	Weight  *weightValue `json:"weight,omitempty"`
	State   *string      `json:"state,omitempty"`
	Enabled *bool        `json:"enabled,omitempty"`
	Health  *string      `json:"health,omitempty"`
}

// addRequest is the body of POST /api/backends/{backend}/servers.
type addRequest struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Weight  *int   `json:"weight,omitempty"` // default 1
}

const maxBody = 4 << 10

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %v: %w", err, lb.ErrInvalid)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return fmt.Errorf("request body: one JSON object expected, more follows: %w", lb.ErrInvalid)
	}
	return nil
}

// change serves a POST that changes one server, answering with its new
// status.
func (a *Admin) change(do func(backend, server string, req changeRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, s := r.PathValue("backend"), r.PathValue("server")
		var req changeRequest
		err := decodeBody(r, &req)
		if err == nil {
			err = do(b, s, req)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.log.Info("server changed through the admin API", "backend", b, "server", s, "path", r.URL.Path, "remote", r.RemoteAddr)
		sv, err := findServer(a.status(), b, s)
		a.reply(w, r, sv, err)
	}
}

func (a *Admin) addServer(w http.ResponseWriter, r *http.Request) {
	b := r.PathValue("backend")
	var req addRequest
	err := decodeBody(r, &req)
	if err == nil && (req.Name == "" || req.Address == "") {
		err = fmt.Errorf(`want {"name": NAME, "address": HOST:PORT, "weight": N}: %w`, lb.ErrInvalid)
	}
	if err == nil {
		weight := 1
		if req.Weight != nil {
			weight = *req.Weight
		}
		err = a.opts.LB.AddServer(b, req.Name, req.Address, weight)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("server added through the admin API", "backend", b, "server", req.Name, "address", req.Address, "remote", r.RemoteAddr)
	sv, err := findServer(a.status(), b, req.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusCreated, sv)
}

func (a *Admin) reload(w http.ResponseWriter, r *http.Request) {
	if a.opts.Reload == nil {
		writeError(w, r, http.StatusNotImplemented, "reload is not available here")
		return
	}
	if err := a.opts.Reload(); err != nil {
		a.fail(w, r, fmt.Errorf("reload: %w", err))
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"reloaded": true})
}

func (a *Admin) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, v)
}

// fail answers err with the status its kind calls for.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, lb.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, lb.ErrInvalid):
		code = http.StatusBadRequest
	default:
		a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeError(w, r, code, "%s", err.Error())
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, r *http.Request, code int, format string, args ...any) {
	writeJSON(w, r, code, ErrorBody{Error: fmt.Sprintf(format, args...)})
}

// writeJSON answers v as compact JSON, indented with ?pretty.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	if r != nil && r.URL.Query().Has("pretty") {
		enc.SetIndent("", "  ")
	}
	_ = enc.Encode(v)
}
