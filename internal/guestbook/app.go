// Package guestbook is fulcrum's demo application, the foobar.com guestbook:
// a server-rendered page and a JSON API over the MariaDB cluster, reached
// through the read/write router. Writes go to the primary and reads to a
// replica; a poster always sees their own message (read-your-writes, see
// token.go). Every answer says which database node served it (X-DB-Node).
//
// Routes, registered on the server's mux by Register:
//
//	GET  /                   the page: latest messages and a form
//	POST /                   the form (urlencoded); 303 back to the page
//	GET  /api/messages       {"messages": [...]}, newest first; ?limit=1..50 (default 50)
//	POST /api/messages       {"name", "message"} → 201 and the stored message
//	GET  /api/messages/{id}  one message, or 404
//
// The database named in the configuration must exist before the app starts:
// the application user may create tables in it, not create it. The cluster's
// admin user (FULCRUM_DB_ADMIN_USER, used by `fulcrum db` and `fulcrum up`)
// creates the database and the application user with its grants; Init then
// creates the table, idempotently, on the primary.
package guestbook

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// LatestLimit is the most messages a list returns.
const LatestLimit = 50

// Config is what an App needs.
type Config struct {
	// Store keeps the messages (required).
	Store Store
	// ServedBy is this web server's name, shown on the page.
	ServedBy string
	// Logger receives errors of the store (nil: discard).
	Logger *slog.Logger
	// Now is the clock that stamps new messages (nil: time.Now).
	Now func() time.Time
	// Primary returns the database primary, to label the node that answered
	// as primary or replica on the page (nil: no label).
	Primary func() (string, error)
	// Timeout bounds each database operation of a request (default 5s), so
	// a node that hangs costs the visitor an error, not a stuck page.
	Timeout time.Duration
}

// App is the guestbook: an http handler set over a Store.
type App struct {
	store    Store
	servedBy string
	log      *slog.Logger
	now      func() time.Time
	primary  func() (string, error)
	timeout  time.Duration
	page     *template.Template
	csrf     *http.CrossOriginProtection
	ready    atomic.Bool // set once Init has created the schema
}

//go:embed page.html
var files embed.FS

// New returns an App that answers 503 until Init succeeds.
func New(cfg Config) *App {
	a := &App{store: cfg.Store, servedBy: cfg.ServedBy, log: cfg.Logger, now: cfg.Now,
		primary: cfg.Primary, timeout: cfg.Timeout, csrf: http.NewCrossOriginProtection()}
	if a.timeout <= 0 {
		a.timeout = 5 * time.Second
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.page = template.Must(template.New("page.html").Funcs(template.FuncMap{
		"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	}).ParseFS(files, "page.html"))
	return a
}

// errNotReady is Ready's answer until Init succeeds.
var errNotReady = errors.New("guestbook: schema not created yet")

// Init creates the schema (idempotent, on the primary) and makes the App
// ready. Call it again after a failure; the server retries it until it works.
func (a *App) Init(ctx context.Context) error {
	if err := a.store.Init(ctx); err != nil {
		return fmt.Errorf("guestbook: create schema: %w", err)
	}
	a.ready.Store(true)
	return nil
}

// Ready returns nil once the App can serve, or why it cannot.
func (a *App) Ready() error {
	if !a.ready.Load() {
		return errNotReady
	}
	return nil
}

// Register adds the App's routes to mux.
func (a *App) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", a.getPage)
	mux.Handle("POST /{$}", a.csrf.Handler(http.HandlerFunc(a.postForm)))
	mux.HandleFunc("GET /api/messages", a.list)
	mux.Handle("POST /api/messages", a.csrf.Handler(http.HandlerFunc(a.create)))
	mux.HandleFunc("GET /api/messages/{id}", a.get)
}

// Handler returns the App alone on a mux of its own.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	a.Register(mux)
	return mux
}

func (a *App) create(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		a.unavailable(w, r, errNotReady)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	in, err := ParseJSON(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 64 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		writeError(w, http.StatusBadRequest, "Idempotency-Key: at most 64 visible ASCII characters")
		return
	}
	m, rc, err := a.store.Add(ctx, Message{Name: in.Name, Message: in.Message, CreatedAt: a.stamp(), Key: key})
	if err != nil {
		a.unavailable(w, r, err)
		return
	}
	setNode(w, rc.Node)
	setReadAfter(w, rc.Token)
	w.Header().Set("Location", "/api/messages/"+strconv.FormatInt(m.ID, 10))
	writeJSON(w, http.StatusCreated, m)
}

func (a *App) list(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		a.unavailable(w, r, errNotReady)
		return
	}
	limit := LatestLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > LatestLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1..%d", s, LatestLimit))
			return
		}
		limit = n
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	ms, node, err := a.store.Latest(ctx, readAfter(r), limit)
	if err != nil {
		a.unavailable(w, r, err)
		return
	}
	if ms == nil {
		ms = []Message{}
	}
	setNode(w, node)
	writeJSON(w, http.StatusOK, struct {
		Messages []Message `json:"messages"`
	}{ms})
}

func (a *App) get(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		a.unavailable(w, r, errNotReady)
		return
	}
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("id %q: want a positive integer", s))
		return
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	m, node, err := a.store.Get(ctx, readAfter(r), id)
	setNode(w, node)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no message %d", id))
	case err != nil:
		a.unavailable(w, r, err)
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// pageData is what page.html shows.
type pageData struct {
	ServedBy   string
	DBNode     string
	DBRole     string // primary or replica, "" when unknown
	Messages   []Message
	Posted     int64  // the id of the poster's new message, highlighted
	Error      string // what was wrong with the form
	DBError    string // why the messages could not be read
	Form       Input  // the form's values after an error
	MaxName    int
	MaxMessage int
}

func (a *App) getPage(w http.ResponseWriter, r *http.Request) {
	d := pageData{}
	if id, err := strconv.ParseInt(r.URL.Query().Get("posted"), 10, 64); err == nil && id > 0 {
		d.Posted = id
	}
	a.renderPage(w, r, http.StatusOK, d)
}

func (a *App) postForm(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		a.renderPage(w, r, http.StatusServiceUnavailable, pageData{})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		a.renderPage(w, r, http.StatusUnsupportedMediaType, pageData{Error: "the form must be sent urlencoded"})
		return
	}
	if err := r.ParseForm(); err != nil {
		status, msg := http.StatusBadRequest, "the form could not be read"
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is larger than %d bytes", MaxBody)
		}
		a.renderPage(w, r, status, pageData{Error: msg})
		return
	}
	raw := Input{Name: r.PostForm.Get("name"), Message: r.PostForm.Get("message")}
	in, err := raw.Validate()
	if err != nil {
		a.renderPage(w, r, http.StatusBadRequest, pageData{Error: err.Error(), Form: raw})
		return
	}
	ctx, cancel := a.dbContext(r)
	defer cancel()
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 64 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		writeError(w, http.StatusBadRequest, "Idempotency-Key: at most 64 visible ASCII characters")
		return
	}
	m, rc, err := a.store.Add(ctx, Message{Name: in.Name, Message: in.Message, CreatedAt: a.stamp(), Key: key})
	if err != nil {
		a.log.Warn("guestbook: store failed", "op", "add", "err", err)
		a.renderPage(w, r, http.StatusServiceUnavailable, pageData{Error: "the database did not take the message; please try again", Form: raw})
		return
	}
	setNode(w, rc.Node)
	setReadAfter(w, rc.Token)
	// Post/Redirect/Get: reloading the page does not post twice.
	http.Redirect(w, r, "/?"+url.Values{"posted": {strconv.FormatInt(m.ID, 10)}}.Encode()+"#m"+strconv.FormatInt(m.ID, 10), http.StatusSeeOther)
}

// renderPage reads the latest messages and renders the page with status
// (503 instead of 200 when the messages cannot be read).
func (a *App) renderPage(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.ServedBy, d.MaxName, d.MaxMessage = a.servedBy, MaxName, MaxMessage
	if !a.ready.Load() {
		d.DBError = "the database is not ready yet"
	} else {
		ctx, cancel := a.dbContext(r)
		ms, node, err := a.store.Latest(ctx, readAfter(r), LatestLimit)
		cancel()
		if err != nil && r.Context().Err() != nil {
			w.WriteHeader(statusClientClosed)
			return
		}
		if err != nil {
			a.log.Warn("guestbook: store failed", "op", "latest", "err", err)
			d.DBError = "the database did not answer"
		}
		d.Messages, d.DBNode = ms, node
		if p, err := a.primaryOf(); err == nil && node != "" {
			d.DBRole = "replica"
			if node == p {
				d.DBRole = "primary"
			}
		}
	}
	if d.DBError != "" && status == http.StatusOK {
		status = http.StatusServiceUnavailable
	}
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, d); err != nil {
		a.log.Error("guestbook: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setNode(w, d.DBNode)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// dbContext bounds a request's database work.
func (a *App) dbContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

func (a *App) primaryOf() (string, error) {
	if a.primary == nil {
		return "", errors.New("unknown")
	}
	return a.primary()
}

// stamp is the creation time of a new message, at the precision the
// database keeps (microseconds).
func (a *App) stamp() time.Time { return a.now().UTC().Truncate(time.Microsecond) }

// statusClientClosed is nginx's 499: the client left before the answer, so
// the failure is not the database's and is not counted as a 5xx.
const statusClientClosed = 499

func (a *App) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		w.WriteHeader(statusClientClosed)
		return
	}
	if !errors.Is(err, errNotReady) {
		a.log.Warn("guestbook: store failed", "err", err)
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "database unavailable, try again")
}

func bodyError(w http.ResponseWriter, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", MaxBody))
		return
	}
	writeError(w, http.StatusBadRequest, "the body could not be read")
}

func setNode(w http.ResponseWriter, node string) {
	if node != "" {
		w.Header().Set(HeaderDBNode, node)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
