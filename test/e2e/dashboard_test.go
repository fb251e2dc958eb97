package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fulcrum/internal/stack"
	"fulcrum/internal/testenv"
)

// webDriver drives headless Chromium through chromedriver's W3C WebDriver
// HTTP API.
type webDriver struct {
	base    string // http://127.0.0.1:PORT/session/ID
	http    *http.Client
	session string
}

func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	paths := testenv.Program(t, "chromedriver", "chromium")
	port := strings.TrimPrefix(testenv.FreeAddr(t, "tcp"), "127.0.0.1:")
	cmd := exec.Command(paths[0], "--port="+port)
	logf, err := os.Create(filepath.Join(t.TempDir(), "chromedriver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	wd := &webDriver{base: "http://127.0.0.1:" + port, http: &http.Client{Timeout: 60 * time.Second}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st struct {
			Value struct {
				Ready bool `json:"ready"`
			} `json:"value"`
		}
		if err := wd.call(http.MethodGet, "/status", nil, &st); err == nil && st.Value.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("chromedriver did not become ready within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	profile := t.TempDir()
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": paths[1], "args": []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile, "--window-size=1400,1400", "--hide-scrollbars",
		}},
	}}}
	var sess struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	if err := wd.call(http.MethodPost, "/session", caps, &sess); err != nil {
		t.Fatalf("new WebDriver session: %v", err)
	}
	wd.session = sess.Value.SessionID
	t.Cleanup(func() { wd.call(http.MethodDelete, "/session/"+wd.session, nil, nil) })
	return wd
}

func (wd *webDriver) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wd.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (wd *webDriver) open(url string) error {
	return wd.call(http.MethodPost, "/session/"+wd.session+"/url", map[string]string{"url": url}, nil)
}

// exec runs script in the page and decodes its result into out.
func (wd *webDriver) exec(script string, out any) error {
	var r struct {
		Value json.RawMessage `json:"value"`
	}
	if err := wd.call(http.MethodPost, "/session/"+wd.session+"/execute/sync",
		map[string]any{"script": script, "args": []any{}}, &r); err != nil {
		return err
	}
	return json.Unmarshal(r.Value, out)
}

func (wd *webDriver) screenshot() ([]byte, error) {
	var r struct {
		Value string `json:"value"`
	}
	if err := wd.call(http.MethodGet, "/session/"+wd.session+"/screenshot", nil, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Value)
}

// boxes returns the topology's components as drawn: name → state.
func (wd *webDriver) boxes(t *testing.T) map[string]string {
	t.Helper()
	var rows [][]string
	err := wd.exec(`if (document.body.dataset.ready !== "1") return [];
return Array.from(document.querySelectorAll("#topology g.box")).map(g => [g.dataset.name, g.dataset.state]);`, &rows)
	if err != nil {
		t.Fatalf("reading the topology: %v", err)
	}
	out := map[string]string{}
	for _, r := range rows {
		if len(r) == 2 {
			out[r[0]] = r[1]
		}
	}
	return out
}

// waitBoxes waits until the drawn topology satisfies want (name → state),
// and returns what it drew last.
func (wd *webDriver) waitBoxes(t *testing.T, want map[string]string, limit time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := wd.boxes(t)
		ok := true
		for n, s := range want {
			if got[n] != s {
				ok = false
			}
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard draws %v, want %v", got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The dashboard in headless Chromium: the topology shows every component
// with its state, follows a load balancer takeover by itself (it refreshes
// every second) and has no external resource. FULCRUM_SCREENSHOT=1 writes
// docs/dashboard.png.
func TestDashboardInBrowser(t *testing.T) {
	testenv.Short(t)
	u := startUp(t, 2)
	st := u.waitFor(t, "the stack to be healthy", 120*time.Second, healthy)
	wd := startBrowser(t)

	c := newClient(u.front, nil)
	stop := make(chan struct{})
	wg := c.run(stop, 2)
	defer func() { close(stop); wg.Wait() }()

	if err := wd.open("http://" + u.dashboard + "/"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{st.ActiveLB: "ACTIVE (VRRP master)", "web1": "UP", "web2": "UP", "manager": "watching", st.Primary: "PRIMARY"}
	for _, n := range st.DB {
		if n.Name != st.Primary {
			want[n.Name] = "replica"
		}
	}
	for _, l := range st.LBs {
		if l.Name != st.ActiveLB {
			want[l.Name] = "standby"
		}
	}
	got := wd.waitBoxes(t, want, 15*time.Second)
	t.Logf("topology drawn: %v", got)

	// No CDN: every resource the page loaded comes from the dashboard.
	var external []string
	if err := wd.exec(`return performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith(location.origin));`, &external); err != nil {
		t.Fatal(err)
	}
	if len(external) > 0 {
		t.Errorf("the dashboard loaded external resources: %v", external)
	}

	// Chaos from the API: the picture follows the takeover by itself.
	active := st.ActiveLB
	if _, err := (&stack.Client{Addr: u.dashboard, HTTP: &http.Client{Timeout: 30 * time.Second}}).Chaos(t.Context(), "kill", active); err != nil {
		t.Fatal(err)
	}
	other := ""
	for _, l := range st.LBs {
		if l.Name != active {
			other = l.Name
		}
	}
	wd.waitBoxes(t, map[string]string{active: "DEAD", other: "ACTIVE (VRRP master)"}, 10*time.Second)
	var rates []string
	if err := wd.exec(`return Array.from(document.querySelectorAll("#rates .rate")).map(e => e.textContent);`, &rates); err != nil {
		t.Fatal(err)
	}
	if len(rates) != 2 || !strings.Contains(strings.Join(rates, " "), "req/s") {
		t.Errorf("requests per second per web server: %v, want one line per web server", rates)
	}
	var events []string
	if err := wd.exec(`return Array.from(document.querySelectorAll("#events li")).map(e => e.textContent);`, &events); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(events, "\n"), active) {
		t.Errorf("recent events do not mention %s:\n%s", active, strings.Join(events, "\n"))
	}
	if os.Getenv("FULCRUM_SCREENSHOT") == "1" {
		time.Sleep(4 * time.Second) // rates settle after the takeover; a few samples on the sparklines
		png, err := wd.screenshot()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "..", "docs", "dashboard.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(png))
	}
}
