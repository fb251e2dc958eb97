package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// fileName is the file in the state directory through which `fulcrum
// status` and `fulcrum chaos` find a running stack.
const fileName = "stack.json"

// File is DIR/stack.json, written while `fulcrum up` runs and removed when
// it stops.
type File struct {
	// PID is the fulcrum up process.
	PID int `json:"pid"`
	// Control is the dashboard's address, which serves /api/.
	Control string    `json:"control"`
	Front   string    `json:"front"`
	Dir     string    `json:"dir"`
	Started time.Time `json:"started"`
	// Children are the pids of the running children by name (database
	// nodes are listed in DIR/db/cluster.json).
	Children map[string]int `json:"children"`
}

func (s *Stack) writeFile() error {
	f := File{PID: os.Getpid(), Control: s.cfg.Dashboard, Front: s.cfg.Front, Dir: s.dir, Started: s.started,
		Children: map[string]int{}}
	for _, c := range s.children {
		if pid := c.pid(); pid != 0 {
			f.Children[c.name] = pid
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, fileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadFile reads dir/stack.json.
func ReadFile(dir string) (*File, error) {
	data, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, fileName), err)
	}
	return &f, nil
}

// Client talks to a running stack's /api/.
type Client struct {
	// Addr is the dashboard's host:port.
	Addr string
	HTTP *http.Client
}

// Dial finds the stack running from dir.
func Dial(dir string) (*Client, error) {
	f, err := ReadFile(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no stack runs from %s (no %s): start one with fulcrum up --dir %s", dir, fileName, dir)
		}
		return nil, err
	}
	if !processAlive(f.PID) {
		return nil, fmt.Errorf("no stack runs from %s: fulcrum up (pid %d) is gone", dir, f.PID)
	}
	return &Client{Addr: f.Control, HTTP: &http.Client{Timeout: 90 * time.Second}}, nil
}

// State returns the stack's state.
func (c *Client) State(ctx context.Context) (*State, error) {
	var st State
	if err := c.call(ctx, http.MethodGet, "/api/state", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// ChaosResult is the answer of the chaos API.
type ChaosResult struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// Chaos runs action (kill or restore) on the named component.
func (c *Client) Chaos(ctx context.Context, action, name string) (string, error) {
	var r ChaosResult
	err := c.call(ctx, http.MethodPost, "/api/chaos/"+url.PathEscape(action)+"?name="+url.QueryEscape(name), &r)
	if err != nil {
		return "", err
	}
	return r.Message, nil
}

func (c *Client) call(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("the stack's control address %s does not answer: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var r ChaosResult
		if json.Unmarshal(body, &r) == nil && r.Message != "" {
			return fmt.Errorf("%s", r.Message)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}
