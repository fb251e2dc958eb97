package admin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	f := newFakeLB()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{LB: f, Addr: ln.Addr().String(), Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	st, err := NewClient(ln.Addr().String(), "").Status(context.Background())
	if err != nil {
		t.Fatalf("Status() through Serve: %v", err)
	}
	if got := st.Backends[0].Servers[1].State; got != "DOWN" {
		t.Errorf("web2 state = %s, want DOWN", got)
	}
	// Serve runs the sampler too.
	deadline := time.Now().Add(5 * time.Second)
	for len(a.rates.history(serverKey("web", "web1"))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no rate sample 5s into Serve")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() after cancel = %v, want nil", err)
		}
		done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the admin listener still accepts after Serve returned")
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, want, wantErr string
	}{
		{"trailing newline", write("a", "tok3n\n"), "tok3n", ""},
		{"empty", write("b", " \n"), "", "empty"},
		{"missing", filepath.Join(dir, "absent"), "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(tt.file)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ReadToken() = %q, %v; want %q, error with %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
