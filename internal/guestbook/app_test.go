package guestbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStore keeps messages in memory and plays a primary (db1) and a lagging
// replica (db2): with lag on, the replica has applied only the writes made
// before lag was turned on, unless a read carries a later write's token.
type fakeStore struct {
	mu      sync.Mutex
	msgs    []Message
	lag     bool
	applied int // writes the replica has applied while lagging
	initErr error
	err     error // returned by every call once set
	inits   int
	hang    bool // reads wait for their context to end
}

var _ Store = (*fakeStore)(nil)

func (s *fakeStore) Init(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inits++
	return s.initErr
}

func (s *fakeStore) Add(ctx context.Context, m Message) (Message, Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Message{}, Receipt{}, s.err
	}
	m.ID = int64(len(s.msgs) + 1)
	s.msgs = append(s.msgs, m)
	if !s.lag {
		s.applied = len(s.msgs)
	}
	return m, Receipt{Node: "db1:3306", Token: fmt.Sprintf("0-1-%d", m.ID)}, nil
}

// visible is how many messages the replica shows a read after token.
func (s *fakeStore) visible(after string) int {
	n := s.applied
	if after != "" {
		seq, _ := strconv.Atoi(after[strings.LastIndex(after, "-")+1:])
		n = max(n, min(seq, len(s.msgs)))
	}
	return n
}

func (s *fakeStore) Latest(ctx context.Context, after string, limit int) ([]Message, string, error) {
	s.mu.Lock()
	if s.hang {
		s.mu.Unlock()
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, "", s.err
	}
	var out []Message
	for i := s.visible(after) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, s.msgs[i])
	}
	return out, "db2:3306", nil
}

func (s *fakeStore) Get(ctx context.Context, after string, id int64) (Message, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Message{}, "", s.err
	}
	if id < 1 || id > int64(s.visible(after)) {
		return Message{}, "db2:3306", ErrNotFound
	}
	return s.msgs[id-1], "db2:3306", nil
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

var testNow = time.Date(2026, 11, 25, 18, 30, 0, 123456789, time.UTC)

func newTestApp(t *testing.T, st *fakeStore) (*App, http.Handler) {
	t.Helper()
	a := New(Config{Store: st, ServedBy: "web1", Now: func() time.Time { return testNow }})
	if err := a.Init(context.Background()); err != nil {
		t.Fatalf("Init() = %v", err)
	}
	return a, a.Handler()
}

func do(h http.Handler, method, target, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const ctJSON = "application/json"

func TestCreate(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	w := do(h, "POST", "/api/messages", ctJSON, `{"name": " Ada ", "message": "Hello\r\nworld"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST status = %d, want 201; body %s", w.Code, w.Body)
	}
	var m Message
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	want := Message{ID: 1, Name: "Ada", Message: "Hello\nworld", CreatedAt: testNow.Truncate(time.Microsecond)}
	if m != want {
		t.Errorf("POST body = %+v, want %+v", m, want)
	}
	for k, v := range map[string]string{
		"Location":      "/api/messages/1",
		HeaderDBNode:    "db1:3306",
		HeaderReadAfter: "0-1-1",
		"Content-Type":  "application/json; charset=utf-8",
	} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("POST %s = %q, want %q", k, got, v)
		}
	}
	if c := w.Result().Cookies(); len(c) != 1 || c[0].Name != cookieReadAfter || c[0].Value != "0-1-1" || !c[0].HttpOnly {
		t.Errorf("POST cookies = %v, want %s=0-1-1 HttpOnly", c, cookieReadAfter)
	}
}

func TestCreateRejects(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		want   string // substring of the JSON error
	}{
		{"empty body", ctJSON, "", 400, "body is empty"},
		{"not json", ctJSON, "name=a", 400, "not valid JSON"},
		{"truncated", ctJSON, `{"name": "a"`, 400, "not valid JSON"},
		{"array", ctJSON, `[]`, 400, "must be a JSON object"},
		{"null", ctJSON, `null`, 400, "name is required"},
		{"two objects", ctJSON, `{"name":"a","message":"b"} {}`, 400, "single JSON object"},
		{"trailing garbage", ctJSON, `{"name":"a","message":"b"}x`, 400, "single JSON object"},
		{"unknown field", ctJSON, `{"name":"a","message":"b","admin":true}`, 400, `unknown field "admin"`},
		{"number name", ctJSON, `{"name":1,"message":"b"}`, 400, "name: want a string"},
		{"object message", ctJSON, `{"name":"a","message":{}}`, 400, "message: want a string"},
		{"missing name", ctJSON, `{"message":"b"}`, 400, "name is required"},
		{"blank name", ctJSON, `{"name":" \t ","message":"b"}`, 400, "name is required"},
		{"missing message", ctJSON, `{"name":"a"}`, 400, "message is required"},
		{"name too long", ctJSON, `{"name":"` + long(MaxName+1) + `","message":"b"}`, 400, "name is 65 characters long: at most 64"},
		{"message too long", ctJSON, `{"name":"a","message":"` + long(MaxMessage+1) + `"}`, 400, "at most 1000"},
		{"invalid utf-8", ctJSON, "{\"name\":\"a\xff\",\"message\":\"b\"}", 400, "not valid UTF-8"},
		{"lone surrogate", ctJSON, `{"name":"a\ud800","message":"b"}`, 400, "lone surrogate"},
		{"control in name", ctJSON, `{"name":"a\u0007b","message":"b"}`, 400, "name holds a control character"},
		{"nul in message", ctJSON, `{"name":"a","message":"b\u0000c"}`, 400, "message holds a control character"},
		{"too large", ctJSON, `{"name":"a","message":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "larger than 16384"},
		{"no content type", "", `{"name":"a","message":"b"}`, 415, "application/json"},
		{"form content type", "application/x-www-form-urlencoded", `{"name":"a","message":"b"}`, 415, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			_, h := newTestApp(t, st)
			w := do(h, "POST", "/api/messages", tt.ctype, tt.body)
			if w.Code != tt.status {
				t.Errorf("POST status = %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.want) {
				t.Errorf("POST body = %s, want a JSON error containing %q", w.Body, tt.want)
			}
			if n := st.count(); n != 0 {
				t.Errorf("store holds %d messages after a rejected POST, want 0", n)
			}
		})
	}
}

func TestCreateAcceptsLimits(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	name, msg := strings.Repeat("ü", MaxName), strings.Repeat("😀", MaxMessage-3)+"\n\t!"
	body, _ := json.Marshal(Input{Name: name, Message: msg})
	if w := do(h, "POST", "/api/messages", "application/json; charset=utf-8", string(body)); w.Code != 201 {
		t.Fatalf("POST at the limits: status = %d, want 201; body %s", w.Code, w.Body)
	}
	if w := do(h, "POST", "/api/messages", ctJSON, `{"name":"U+FFFD is fine","message":"\ufffd �"}`); w.Code != 201 {
		t.Errorf("POST with U+FFFD: status = %d, want 201; body %s", w.Code, w.Body)
	}
}

func TestReadYourWrites(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	do(h, "POST", "/api/messages", ctJSON, `{"name":"a","message":"old"}`)
	st.lag = true
	w := do(h, "POST", "/api/messages", ctJSON, `{"name":"b","message":"fresh"}`)
	token := w.Header().Get(HeaderReadAfter)
	cookie := w.Result().Cookies()[0]

	count := func(w *httptest.ResponseRecorder) int {
		var l struct{ Messages []Message }
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
			t.Fatalf("GET body %s: %v", w.Body, err)
		}
		return len(l.Messages)
	}
	if n := count(do(h, "GET", "/api/messages", "", "")); n != 1 {
		t.Fatalf("GET without token: %d messages, want 1 (the fake replica lags)", n)
	}
	if n := count(do(h, "GET", "/api/messages", "", "", HeaderReadAfter, token)); n != 2 {
		t.Errorf("GET with %s: %d messages, want 2", HeaderReadAfter, n)
	}
	if n := count(do(h, "GET", "/api/messages", "", "", "Cookie", cookie.String())); n != 2 {
		t.Errorf("GET with cookie: %d messages, want 2", n)
	}
	if n := count(do(h, "GET", "/api/messages", "", "", HeaderReadAfter, "0-1-2; DROP TABLE")); n != 1 {
		t.Errorf("GET with a malformed token: %d messages, want 1 (token ignored)", n)
	}
	if w := do(h, "GET", "/api/messages/2", "", "", HeaderReadAfter, token); w.Code != 200 {
		t.Errorf("GET /api/messages/2 with token: status %d, want 200", w.Code)
	}
	page := do(h, "GET", "/", "", "", "Cookie", cookie.String())
	if !strings.Contains(page.Body.String(), "fresh") {
		t.Errorf("page with cookie does not show the poster's message")
	}
	if got := page.Header().Get(HeaderDBNode); got != "db2:3306" {
		t.Errorf("page %s = %q, want db2:3306", HeaderDBNode, got)
	}
}

func TestGet(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	do(h, "POST", "/api/messages", ctJSON, `{"name":"a","message":"b"}`)
	tests := []struct {
		path   string
		status int
	}{
		{"/api/messages/1", 200},
		{"/api/messages/2", 404},
		{"/api/messages/0", 400},
		{"/api/messages/-1", 400},
		{"/api/messages/x", 400},
		{"/api/messages/1e3", 400},
		{"/api/messages/99999999999999999999", 400},
		{"/api/messages?limit=1", 200},
		{"/api/messages?limit=0", 400},
		{"/api/messages?limit=51", 400},
		{"/api/messages?limit=x", 400},
	}
	for _, tt := range tests {
		w := do(h, "GET", tt.path, "", "")
		if w.Code != tt.status {
			t.Errorf("GET %s = %d, want %d; body %s", tt.path, w.Code, tt.status, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s Content-Type = %q, want JSON", tt.path, ct)
		}
	}
}

func TestPageEscapes(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	evil := `<script>alert(1)</script>`
	body, _ := json.Marshal(Input{Name: `"><img src=x onerror=alert(1)>`, Message: evil + " & friends"})
	if w := do(h, "POST", "/api/messages", ctJSON, string(body)); w.Code != 201 {
		t.Fatalf("POST status = %d", w.Code)
	}
	page := do(h, "GET", "/", "", "").Body.String()
	for _, bad := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, good := range []string{"&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(page, good) {
			t.Errorf("page lacks the escaped text %q", good)
		}
	}
	// A rejected form is shown again, escaped, with the error.
	form := url.Values{"name": {evil}, "message": {""}}.Encode()
	w := do(h, "POST", "/", "application/x-www-form-urlencoded", form)
	if w.Code != 400 || strings.Contains(w.Body.String(), evil) || !strings.Contains(w.Body.String(), "message is required") {
		t.Errorf("bad form: status %d, want 400 with the error and the input escaped", w.Code)
	}
}

func TestPage(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	w := do(h, "GET", "/", "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "No messages yet") || !strings.Contains(w.Body.String(), "web1") {
		t.Errorf("empty page: status %d, want 200 with the empty note and the server name", w.Code)
	}
	if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("page CSP = %q", got)
	}
	w = do(h, "POST", "/", "application/x-www-form-urlencoded", url.Values{"name": {"Ann"}, "message": {"hi there"}}.Encode())
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?posted=1#m1" {
		t.Fatalf("form POST = %d Location %q, want 303 /?posted=1#m1", w.Code, w.Header().Get("Location"))
	}
	if len(w.Result().Cookies()) != 1 {
		t.Errorf("form POST sets %d cookies, want the read-after cookie", len(w.Result().Cookies()))
	}
	w = do(h, "GET", "/?posted=1", "", "")
	if b := w.Body.String(); !strings.Contains(b, "hi there") || !strings.Contains(b, `class="msg new" id="m1"`) || !strings.Contains(b, "#1 is stored") {
		t.Errorf("page after posting does not show and highlight message 1")
	}
	if w := do(h, "HEAD", "/", "", ""); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD / = %d with %d body bytes, want 200 and none", w.Code, w.Body.Len())
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	st := &fakeStore{}
	_, h := newTestApp(t, st)
	w := do(h, "POST", "/", "application/x-www-form-urlencoded", "name=a&message=b", "Sec-Fetch-Site", "cross-site")
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-site form POST = %d, want 403", w.Code)
	}
	w = do(h, "POST", "/api/messages", ctJSON, `{"name":"a","message":"b"}`, "Origin", "https://evil.example", "Host", "foobar.com")
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-origin API POST = %d, want 403", w.Code)
	}
	if n := st.count(); n != 0 {
		t.Errorf("store holds %d messages, want 0", n)
	}
}

func TestUnavailable(t *testing.T) {
	st := &fakeStore{initErr: errors.New("connection refused")}
	a := New(Config{Store: st, ServedBy: "web1"})
	h := a.Handler()
	if err := a.Init(context.Background()); err == nil || a.Ready() == nil {
		t.Fatalf("Init() = %v, Ready() = %v, want both errors", err, a.Ready())
	}
	for _, r := range []struct{ method, path, ctype, body string }{
		{"GET", "/api/messages", "", ""},
		{"GET", "/api/messages/1", "", ""},
		{"POST", "/api/messages", ctJSON, `{"name":"a","message":"b"}`},
		{"GET", "/", "", ""},
	} {
		if w := do(h, r.method, r.path, r.ctype, r.body); w.Code != 503 {
			t.Errorf("%s %s before Init = %d, want 503", r.method, r.path, w.Code)
		}
	}
	st.initErr = nil
	if err := a.Init(context.Background()); err != nil || a.Ready() != nil {
		t.Fatalf("second Init() = %v, Ready() = %v, want nil", err, a.Ready())
	}
	st.err = ErrUnavailable
	w := do(h, "POST", "/api/messages", ctJSON, `{"name":"a","message":"b"}`)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"error"`) {
		t.Errorf("POST with the store down = %d %q, want 503 with Retry-After and a JSON error", w.Code, w.Body)
	}
	if w := do(h, "GET", "/", "", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "did not answer") {
		t.Errorf("page with the store down = %d, want 503 with a note", w.Code)
	}
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"0-1-42", true},
		{"0-1-42,1-2-7", true},
		{"4294967295-4294967295-18446744073709551615", true},
		{"", false},
		{"0-1", false},
		{"0-1-2-3", false},
		{"0-1-", false},
		{"a-1-2", false},
		{"0-1-2,", false},
		{" 0-1-2", false},
		{"4294967296-1-2", false},
		{"0-1-+2", false},
		{"0-1-2'; --", false},
		{strings.Repeat("0-1-2,", 50) + "0-1-2", false},
	}
	for _, tt := range tests {
		if _, ok := ParseToken(tt.in); ok != tt.ok {
			t.Errorf("ParseToken(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
	}
}

func TestStoreTimeout(t *testing.T) {
	st := &fakeStore{hang: true}
	a := New(Config{Store: st, ServedBy: "web1", Timeout: 50 * time.Millisecond})
	a.Init(context.Background())
	t0 := time.Now()
	w := do(a.Handler(), "GET", "/api/messages", "", "")
	if w.Code != 503 {
		t.Errorf("GET with a hanging store = %d, want 503", w.Code)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("GET with a hanging store took %v, want about the 50ms timeout", d)
	}
}

func TestPageNodeRole(t *testing.T) {
	for _, tt := range []struct{ primary, want string }{
		{"db1:3306", "db2:3306</b> · replica"},
		{"db2:3306", "db2:3306</b> · primary"},
	} {
		a := New(Config{Store: &fakeStore{}, ServedBy: "web1", Primary: func() (string, error) { return tt.primary, nil }})
		a.Init(context.Background())
		if page := do(a.Handler(), "GET", "/", "", "").Body.String(); !strings.Contains(page, tt.want) {
			t.Errorf("page with primary %s lacks %q", tt.primary, tt.want)
		}
	}
}

func TestClientGone(t *testing.T) {
	st := &fakeStore{hang: true}
	a := New(Config{Store: st, ServedBy: "web1"})
	a.Init(context.Background())
	for _, path := range []string{"/api/messages", "/"} {
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequest("GET", path, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		time.AfterFunc(20*time.Millisecond, cancel)
		a.Handler().ServeHTTP(w, r)
		if w.Code != statusClientClosed {
			t.Errorf("GET %s, client gone = %d, want %d (not a 5xx)", path, w.Code, statusClientClosed)
		}
	}
}
