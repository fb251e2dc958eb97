package vrrp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/vrrp"
)

// A load balancer embeds VRRP like this: frontends bound with freebind on
// the VIP from the start, the election run until SIGTERM, and the tracked
// backends reported as they go down and up.
func ExampleFromConfig() {
	cfg, err := config.LoadLB("/etc/fulcrum/lb.yaml")
	if err != nil || cfg.VRRP == nil {
		return
	}
	log := slog.Default()
	// Bound on a backup too: a takeover needs no rebind.
	ln, err := vrrp.ListenFreebind("tcp", "192.0.2.50:80")
	if err != nil {
		return
	}
	defer ln.Close()
	g, err := vrrp.FromConfig(cfg.VRRP, vrrp.Options{
		Log: log,
		OnChange: func(vrid uint8, from, to vrrp.State) {
			log.Info("vrrp", "vrid", vrid, "from", from, "to", to)
		},
	})
	if err != nil {
		return
	}
	// When every server of backend web is down, a peer takes over.
	g.SetFault("web", true)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// Run resigns (priority 0) when ctx ends, before the LB drains.
	_ = g.Run(ctx)
}

// Local mode on one machine: the master serves the shared front address.
func ExampleFuncVIPs() {
	var front net.Listener
	v := vrrp.FuncVIPs{
		Up: func() (err error) {
			front, err = net.Listen("tcp", "127.0.0.1:8080")
			return err
		},
		Down: func() error {
			if front != nil {
				front.Close()
				front = nil
			}
			return nil
		},
	}
	t, err := vrrp.ListenUDP(netip.MustParseAddrPort("127.0.0.1:7401"), []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7402")})
	if err != nil {
		return
	}
	r, err := vrrp.New(vrrp.Config{
		VRID: 51, Priority: 150, AdvertInterval: 100 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	}, t, v, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.Run(ctx)
	fmt.Println(r.State())
}
