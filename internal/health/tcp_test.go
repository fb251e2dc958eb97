package health

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	tests := []struct {
		name    string
		addr    string
		wantErr string // "" means healthy
	}{
		{"listening", ln.Addr().String(), ""},
		{"closed port", closedAddr(t), "connection refused"},
		{"bad address", "127.0.0.1", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := NewTCP(tt.addr).Check(ctx)
			checkErr(t, err, tt.wantErr)
			if err != nil && !strings.HasPrefix(err.Error(), "tcp check: ") {
				t.Errorf("Check() = %q, want the prefix \"tcp check: \"", err)
			}
		})
	}

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		checkErr(t, NewTCP(ln.Addr().String()).Check(ctx), "canceled")
	})
}

// checkErr fails unless err is nil when want is "", or contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("Check() = %q, want nil", err)
	case want != "" && err == nil:
		t.Errorf("Check() = nil, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("Check() = %q, want an error containing %q", err, want)
	}
}
