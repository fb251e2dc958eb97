package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client speaks to an admin endpoint; `fulcrum ctl` is built on it.
type Client struct {
	// Base is the endpoint's URL, such as http://127.0.0.1:9900.
	Base string
	// Token is sent as a bearer token when not empty.
	Token string
	// HTTP is the client used (nil: http.DefaultClient).
	HTTP *http.Client
}

// NewClient returns a client for addr, a host:port or a URL.
func NewClient(addr, token string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token}
}

// APIError is an error answer of the admin endpoint.
type APIError struct {
	Code    int    // the HTTP status
	Message string // the error body's message
}

func (e *APIError) Error() string { return e.Message }

// Do sends a request with an optional JSON body and decodes the JSON answer
// into out (when not nil). Error answers return an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.Base, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &APIError{Code: resp.StatusCode, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: %s %s: %w", c.Base, method, path, err)
	}
	return nil
}

// ServerPath is the API path of a server.
func ServerPath(backend, server string) string {
	return "/api/servers/" + url.PathEscape(backend) + "/" + url.PathEscape(server)
}

// BackendPath is the API path of a backend.
func BackendPath(backend string) string { return "/api/backends/" + url.PathEscape(backend) }

// Status returns the load balancer's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.Do(ctx, http.MethodGet, "/api/status", nil, &st)
	return st, err
}
