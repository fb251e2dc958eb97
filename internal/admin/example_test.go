package admin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"

	"fulcrum/internal/admin"
	"fulcrum/internal/config"
	"fulcrum/internal/lb"
)

// The admin endpoint in front of a load balancer, and the client that
// `fulcrum ctl` uses to change a weight.
func ExampleNew() {
	cfg, _ := config.ParseLB("lb.yaml", []byte(`
frontends: [{name: www, bind: ["127.0.0.1:0"], default_backend: web}]
backends:
  - name: web
    servers: [{name: web1, address: "127.0.0.1:9101", weight: 100}]
`))
	l, _ := lb.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	a := admin.New(admin.Options{LB: l, Addr: "127.0.0.1:9901"})
	srv := httptest.NewServer(a)
	defer srv.Close()

	ctx := context.Background()
	c := admin.NewClient(srv.URL, "")
	var s admin.Server
	if err := c.Do(ctx, "POST", admin.ServerPath("web", "web1")+"/weight", map[string]string{"weight": "50%"}, &s); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s/%s: %s, weight %d of %d\n", s.Backend, s.Name, s.State, s.Weight, s.ConfigWeight)

	err := c.Do(ctx, "POST", admin.ServerPath("web", "web9")+"/weight", map[string]string{"weight": "5"}, nil)
	fmt.Println(err)
	// Output:
	// web/web1: UP, weight 50 of 100
	// backend "web": server "web9": not found
}
