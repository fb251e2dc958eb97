package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"fulcrum/internal/config"
)

// Options are what FromConfig needs besides the file.
type Options struct {
	// Log receives state changes (nil: discard).
	Log *slog.Logger
	// Clock is the time source (nil: the system clock).
	Clock Clock
	// Up and Down are called in local mode when this instance becomes
	// master (serve the shared front address) and when it stops being
	// master (close it). Down must accept being called when not up.
	Up, Down func() error
	// Released is called in ip mode when this instance has taken its
	// virtual addresses off the interface, to close the connections
	// accepted on them (nil: none).
	Released func([]netip.Addr)
	// OnChange, if set, is called after every state change of every
	// virtual router, after the notify command has been started.
	OnChange func(vrid uint8, from, to State)
}

// Group is the virtual routers of one load balancer: one, or two and more
// for active-active.
type Group struct {
	Routers []*Router
}

// FromConfig builds the virtual routers of an LB file's validated vrrp
// section: raw IP transport and interface VIPs in ip mode, UDP on loopback
// and Options.Up/Down in local mode. Track names are backend names.
func FromConfig(c *config.VRRP, opt Options) (*Group, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	type vr struct {
		id, prio int
		vips     []string
	}
	routers := []vr{{c.VirtualRouterID, c.Priority, c.VirtualIPs}}
	for _, r := range c.VirtualRouters {
		routers = append(routers, vr{r.VirtualRouterID, r.Priority, r.VirtualIPs})
	}
	g := &Group{}
	for _, spec := range routers {
		cfg := Config{
			VRID:           uint8(spec.id),
			Priority:       uint8(spec.prio),
			AdvertInterval: c.AdvertInterval.D(),
			NoPreempt:      c.Preempt != nil && !*c.Preempt,
			PreemptDelay:   c.PreemptDelay.D(),
		}
		for _, t := range c.Track {
			cfg.Track = append(cfg.Track, Track{Name: t.Backend, Weight: t.Weight})
		}
		log := opt.Log.With("vrid", spec.id)
		cfg.OnChange = notifier(c.Notify, cfg.VRID, log, opt.OnChange)
		var (
			t   Transport
			v   VIPs
			err error
		)
		if c.Mode == "local" {
			t, v, err = localMode(c.Local, &cfg, opt)
		} else {
			t, v, err = ipMode(c, spec.vips, &cfg, log, opt.Released)
		}
		if err != nil {
			g.close()
			return nil, err
		}
		r, err := New(cfg, t, v, opt.Clock, opt.Log)
		if err != nil {
			t.Close()
			g.close()
			return nil, err
		}
		g.Routers = append(g.Routers, r)
	}
	return g, nil
}

func localMode(l *config.VRRPLocal, cfg *Config, opt Options) (Transport, VIPs, error) {
	front, err := netip.ParseAddrPort(l.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("vrrp: local.address %q: %w", l.Address, err)
	}
	cfg.Addrs = []netip.Addr{front.Addr()}
	listen, err := netip.ParseAddrPort(l.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("vrrp: local.listen %q: %w", l.Listen, err)
	}
	var peers []netip.AddrPort
	for _, s := range l.Peers {
		p, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, nil, fmt.Errorf("vrrp: local.peers %q: %w", s, err)
		}
		peers = append(peers, p)
	}
	if opt.Up == nil || opt.Down == nil {
		return nil, nil, errors.New("vrrp: local mode needs Options.Up and Options.Down")
	}
	t, err := ListenUDP(listen, peers)
	if err != nil {
		return nil, nil, err
	}
	return t, FuncVIPs{Up: opt.Up, Down: opt.Down}, nil
}

func ipMode(c *config.VRRP, vips []string, cfg *Config, log *slog.Logger, released func([]netip.Addr)) (Transport, VIPs, error) {
	var prefixes []netip.Prefix
	for _, s := range vips {
		p, err := config.ParseVIP(s)
		if err != nil {
			return nil, nil, fmt.Errorf("vrrp: virtual ip %q: %w", s, err)
		}
		prefixes = append(prefixes, p)
		cfg.Addrs = append(cfg.Addrs, p.Addr())
	}
	if len(prefixes) == 0 {
		return nil, nil, fmt.Errorf("vrrp: %w", ErrNoAddresses)
	}
	ic := IPConfig{Interface: c.Interface, IPv6: prefixes[0].Addr().Is6(), Exclude: cfg.Addrs}
	if c.UnicastSrc != "" {
		a, err := netip.ParseAddr(c.UnicastSrc)
		if err != nil {
			return nil, nil, fmt.Errorf("vrrp: unicast_src %q: %w", c.UnicastSrc, err)
		}
		ic.Source = a
	}
	for _, s := range c.UnicastPeers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("vrrp: unicast peer %q: %w", s, err)
		}
		ic.Peers = append(ic.Peers, a)
	}
	t, err := ListenIP(ic)
	if err != nil {
		return nil, nil, err
	}
	return t, &InterfaceVIPs{Interface: c.Interface, Prefixes: prefixes, Log: log, Released: released}, nil
}

// notifier runs the notify command for a new state without waiting for it,
// then calls next.
func notifier(n config.VRRPNotify, vrid uint8, log *slog.Logger, next func(uint8, State, State)) func(from, to State) {
	return func(from, to State) {
		cmd := map[State]string{Master: n.Master, Backup: n.Backup, Initialize: n.Stop}[to]
		if cmd != "" {
			c := exec.Command("/bin/sh", "-c", cmd)
			c.Env = append(os.Environ(), "FULCRUM_VRRP_STATE="+to.String(), "FULCRUM_VRRP_VRID="+strconv.Itoa(int(vrid)))
			if err := c.Start(); err != nil {
				log.Error("notify command", "state", to, "err", err)
			} else {
				go func() {
					if err := c.Wait(); err != nil {
						log.Warn("notify command failed", "state", to, "command", cmd, "err", err)
					}
				}()
			}
		}
		if next != nil {
			next(vrid, from, to)
		}
	}
}

// Run runs every router until ctx is done, and returns once all have
// resigned, with the first error.
func (g *Group) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(g.Routers))
	for i, r := range g.Routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = r.Run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SetFault reports a tracked backend's state to every router.
func (g *Group) SetFault(name string, bad bool) {
	for _, r := range g.Routers {
		r.SetFault(name, bad)
	}
}

// Status returns every router's status.
func (g *Group) Status() []Status {
	s := make([]Status, len(g.Routers))
	for i, r := range g.Routers {
		s[i] = r.Status()
	}
	return s
}

func (g *Group) close() {
	for _, r := range g.Routers {
		r.t.Close()
	}
}
