package health

import (
	"context"
	"fmt"
	"net"
)

// TCP checks that a server accepts TCP connections (HAProxy's default check).
type TCP struct {
	addr string
}

var _ Checker = (*TCP)(nil)

// NewTCP returns a Checker that passes when a connection to addr (host:port)
// succeeds. The connection is closed at once.
func NewTCP(addr string) Checker { return &TCP{addr: addr} }

// Check connects to the server.
func (t *TCP) Check(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return fmt.Errorf("tcp check: %w", err)
	}
	return c.Close()
}
