package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/lb"
	"fulcrum/internal/testenv"
)

// TestStatsPageInBrowser loads the stats page in headless Chromium, driven
// over WebDriver by chromedriver, and checks what a person would see: the
// servers with their states, a live refresh, and the state buttons. With
// FULCRUM_SCREENSHOT=1 it saves docs/stats-page.png.
func TestStatsPageInBrowser(t *testing.T) {
	testenv.Short(t)
	testenv.Program(t, "chromium")
	driverPath := testenv.Program(t, "chromedriver")[0]
	browser := "/usr/lib/chromium/chromium" // Debian's /usr/bin/chromium is a shell wrapper
	if _, err := os.Stat(browser); err != nil {
		browser, _ = exec.LookPath("chromium")
	}

	f := newFakeLB()
	clock := fakeEpoch
	a := New(Options{LB: f, Addr: "127.0.0.1:0", Now: func() time.Time { return clock }})
	// A minute of traffic for the sparklines: web1 busy and wavy, web2 until
	// it went down, api1 draining away.
	for i := range 60 {
		clock = fakeEpoch.Add(time.Duration(i-60) * time.Second)
		f.serve("web", "web1", uint64(40+25*((i/6)%3)+i%5))
		if i < 35 {
			f.serve("web", "web2", uint64(38+i%4))
		}
		if i < 50 {
			f.serve("api", "api1", uint64(12-i/5))
		}
		a.rates.sample(clock, f.Status())
	}
	clock = fakeEpoch
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)

	wd := startWebDriver(t, driverPath, browser)
	wd.post("/url", map[string]string{"url": srv.URL + "/"}, nil)

	rows := func() []string {
		var got []string
		wd.script(`if (document.body.dataset.loaded !== "1") return [];
			return Array.from(document.querySelectorAll("tr.server")).map(r => r.dataset.backend + "/" + r.dataset.server + "=" + r.dataset.state);`, &got)
		return got
	}
	waitRows := func(what string, want ...string) []string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := rows()
			ok := true
			for _, w := range want {
				ok = ok && slices.Contains(got, w)
			}
			if ok {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: page rows = %v, want %v among them", what, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	got := waitRows("first load", "web/web1=UP", "web/web2=DOWN", "api/api1=DRAIN", "api/api2=MAINT")
	if len(got) != 4 {
		t.Errorf("page rows = %v, want 4 servers", got)
	}
	var text string
	wd.script(`return document.body.innerText;`, &text)
	for _, want := range []string{"web1", "web2", "L7OK", "L4CON", "1m30s", "www"} {
		if !strings.Contains(text, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	// Go writes times with nanoseconds; the page's ages need them parsed.
	var ms float64
	wd.script(`return Date.parse("2026-11-25T12:00:00.123456789+01:00");`, &ms)
	if want := float64(time.Date(2026, 11, 25, 11, 0, 0, 123e6, time.UTC).UnixMilli()); ms != want {
		t.Errorf("Date.parse of a Go time = %v, want %v", ms, want)
	}
	var sparks int
	wd.script(`return document.querySelectorAll("tr.server svg.spark polyline").length;`, &sparks)
	if sparks < 3 {
		t.Errorf("sparklines drawn = %d, want at least 3 (servers with traffic)", sparks)
	}
	if os.Getenv("FULCRUM_SCREENSHOT") == "1" {
		var b64 string
		wd.get("/screenshot", &b64)
		png, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile("../../docs/stats-page.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved docs/stats-page.png (%d bytes)", len(png))
	}

	// A change made elsewhere shows up without reloading the page.
	if err := f.ForceHealth("web", "web2", true); err != nil {
		t.Fatal(err)
	}
	waitRows("after web2 came back", "web/web2=UP")

	// The drain button sends the change and the row follows.
	var clicked bool
	wd.script(`const b = document.querySelector('tr[data-server="web1"] button[title$=" drain"]');
		if (!b) return false; b.click(); return true;`, &clicked)
	if !clicked {
		t.Fatal("no drain button in web1's row")
	}
	waitRows("after clicking drain", "web/web1=DRAIN")
	if st := f.Status().Backends[0].Servers[0]; st.Admin != lb.StateDrain {
		t.Errorf("web1 admin state after clicking drain = %s, want drain", st.Admin)
	}

	// Behind a token, the page asks for it, then shows the servers.
	const token = "page-token-1234"
	guarded := httptest.NewServer(New(Options{LB: newFakeLB(), Addr: "192.0.2.1:9901", Token: token}))
	t.Cleanup(guarded.Close)
	wd.post("/url", map[string]string{"url": guarded.URL + "/"}, nil)
	var asked bool
	for deadline := time.Now().Add(15 * time.Second); !asked; time.Sleep(100 * time.Millisecond) {
		wd.script(`return !document.getElementById("login").hidden;`, &asked)
		if !asked && time.Now().After(deadline) {
			t.Fatal("the page behind a token did not ask for it")
		}
	}
	if got := rows(); len(got) != 0 {
		t.Errorf("page rows before the token = %v, want none", got)
	}
	wd.script(`document.getElementById("token").value = "`+token+`";
		document.getElementById("login").requestSubmit(); return null;`, nil)
	waitRows("after entering the token", "web/web1=UP", "web/web2=DOWN")
}

// webDriver is a WebDriver session (W3C protocol) on a chromedriver.
type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID
}

func startWebDriver(t *testing.T, driverPath, browser string) *webDriver {
	t.Helper()
	cmd := exec.Command(driverPath, "--port=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// chromedriver and the browsers it started share its process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	portc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`started successfully on port (\d+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				portc <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var port string
	select {
	case port = <-portc:
	case <-time.After(20 * time.Second):
		t.Fatal("chromedriver did not say which port it listens on within 20s")
	}
	root := "http://127.0.0.1:" + port
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": browser,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1440,900",
				"--user-data-dir=" + t.TempDir()},
		},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	wd := &webDriver{t: t, base: root}
	wd.post("/session", caps, &sess)
	if sess.SessionID == "" {
		t.Fatal("chromedriver gave no session id")
	}
	wd.base = root + "/session/" + sess.SessionID
	t.Cleanup(func() { wd.call(http.MethodDelete, "", nil, nil) })
	return wd
}

func (wd *webDriver) post(path string, body, out any) { wd.call(http.MethodPost, path, body, out) }
func (wd *webDriver) get(path string, out any)        { wd.call(http.MethodGet, path, nil, out) }

// script runs JavaScript in the page and decodes its return value into out.
func (wd *webDriver) script(js string, out any) {
	wd.post("/execute/sync", map[string]any{"script": js, "args": []any{}}, out)
}

// call sends one WebDriver command; out receives the answer's "value".
func (wd *webDriver) call(method, path string, body, out any) {
	wd.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			wd.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, wd.base+path, rd)
	if err != nil {
		wd.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		wd.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var answer struct {
		Value json.RawMessage `json:"value"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &answer); err != nil || resp.StatusCode != http.StatusOK {
		wd.t.Fatalf("webdriver %s %s = %s: %s", method, path, resp.Status, truncate(data))
	}
	if out != nil {
		if err := json.Unmarshal(answer.Value, out); err != nil {
			wd.t.Fatalf("webdriver %s %s: value %s: %v", method, path, truncate(answer.Value), err)
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return fmt.Sprintf("%s… (%d bytes)", b[:500], len(b))
	}
	return string(b)
}
