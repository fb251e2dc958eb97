package stack

import (
	"embed"
	"encoding/json"
	"errors"
	"net/http"
)

//go:embed ui
var uiFS embed.FS

// Handler serves the dashboard and its API:
//
//	GET  /                          the dashboard (HTML, JS and CSS embedded; no CDN)
//	GET  /api/state                 the State as JSON
//	GET  /api/events                every recorded event, oldest first
//	POST /api/chaos/kill?name=X     SIGKILL a component (see Kill)
//	POST /api/chaos/restore?name=X  start it again (see Restore)
func (s *Stack) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		data, _ := uiFS.ReadFile("ui/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(data)
	})
	mux.Handle("GET /ui/", http.FileServerFS(uiFS))
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Events())
	})
	// A web page elsewhere must not be able to kill parts of the stack
	// through the visitor's browser.
	csrf := http.NewCrossOriginProtection()
	mux.Handle("POST /api/chaos/{action}", csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			writeJSON(w, http.StatusBadRequest, ChaosResult{Message: "the query parameter name= is required"})
			return
		}
		var msg string
		var err error
		switch r.PathValue("action") {
		case "kill":
			msg, err = s.Kill(r.Context(), name)
		case "restore":
			msg, err = s.Restore(r.Context(), name)
		default:
			writeJSON(w, http.StatusNotFound, ChaosResult{Message: "unknown chaos action " + r.PathValue("action") + ": want kill or restore"})
			return
		}
		if err != nil {
			code := http.StatusConflict
			if errors.Is(err, ErrUnknown) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, ChaosResult{Message: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ChaosResult{OK: true, Message: msg})
	})))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
