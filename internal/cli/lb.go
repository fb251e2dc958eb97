package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fulcrum/internal/admin"
	"fulcrum/internal/config"
	"fulcrum/internal/edge"
	"fulcrum/internal/lb"
	"fulcrum/internal/vrrp"
)

// readyFDEnv names the descriptor on which an upgraded process reports that
// it serves, so its predecessor can drain and exit.
const readyFDEnv = "FULCRUM_READY_FD"

func runLB(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "lb", "lb -c FILE [--check]\n\nSignals: SIGHUP reloads FILE; SIGUSR2 starts the binary anew, hands it the\nlistening sockets and drains this process; SIGTERM/SIGINT drain and stop.")
	file := fs.String("c", "", "configuration `file` (YAML)")
	check := fs.Bool("check", false, "only validate the configuration: exit 0 when valid, 2 otherwise")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *file == "" {
		fmt.Fprintln(e.stderr, "fulcrum lb: -c FILE is required")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.LoadLB(*file)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(e.stdout, "%s: configuration is valid\n", *file)
		return exitOK
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	bind := lb.Listen(net.Listen)
	if cfg.VRRP != nil && cfg.VRRP.Mode == "ip" {
		// Frontends bind the virtual addresses on a backup too, so a
		// takeover needs no rebind.
		bind = vrrp.ListenFreebind
	}
	listen, err := lb.Inherited(bind)
	if err != nil {
		log.Error("cannot take over listeners", "error", err)
		return exitFailure
	}
	l, err := lb.New(cfg, log, listen)
	if err != nil {
		fmt.Fprintln(e.stderr, "fulcrum lb:", err)
		return exitUsage
	}
	// reload runs from SIGHUP and from the admin API; grace is what
	// shutdown needs of the running configuration.
	var mu sync.Mutex
	grace := cfg.Grace.D()
	reload := func() error {
		mu.Lock()
		defer mu.Unlock()
		next, err := config.LoadLB(*file)
		if err != nil {
			log.Error("reload rejected: the running configuration stays", "error", err)
			return err
		}
		if err := l.Reload(next); err != nil {
			log.Error("reload failed: the running configuration stays", "error", err)
			return err
		}
		grace = next.Grace.D()
		return nil
	}
	var group *vrrp.Group
	if cfg.VRRP != nil {
		opt := vrrp.Options{Log: log.With("vrrp", cfg.VRRP.VirtualRouterID)}
		if cfg.VRRP.Mode == "local" {
			held := cfg.VRRP.Local.Held()
			l.Defer(held...)
			opt.Up = func() error {
				var errs []error
				for _, a := range held {
					errs = append(errs, l.Hold(a))
				}
				return errors.Join(errs...)
			}
			opt.Down = func() error {
				for _, a := range held {
					l.Release(a)
				}
				return nil
			}
		} else {
			opt.Released = l.CloseOn
		}
		if group, err = vrrp.FromConfig(cfg.VRRP, opt); err != nil {
			log.Error("vrrp", "error", err)
			return exitFailure
		}
		l.OnBackendHealth(func(backend string, usable int) { group.SetFault(backend, usable == 0) })
	}
	if err := l.Start(ctx); err != nil {
		log.Error("cannot start", "error", err)
		return exitFailure
	}
	var adminLn net.Listener
	if cfg.Admin != "" {
		token := ""
		if cfg.AdminTokenFile != "" {
			if token, err = admin.ReadToken(cfg.AdminTokenFile); err != nil {
				fmt.Fprintln(e.stderr, "fulcrum lb:", err)
				return exitUsage
			}
		}
		if adminLn, err = listen("tcp", cfg.Admin); err != nil {
			log.Error("admin: cannot listen", "address", cfg.Admin, "error", err)
			return exitFailure
		}
		opts := admin.Options{LB: l, Addr: cfg.Admin, Token: token, Logger: log.With("part", "admin"),
			Reload: reload, ResponseTimes: func() []admin.ServerTimes { return responseTimes(l) },
			OCSP: edge.NewLocalOCSP(cfg.StateDir, log.With("part", "ocsp"))}
		if group != nil {
			opts.VRRP = group.Status
		}
		a := admin.New(opts)
		go func() {
			if err := a.Serve(ctx, adminLn); err != nil {
				log.Error("admin stopped", "error", err)
			}
		}()
	}
	// The election runs until ctx ends (SIGTERM: it resigns with priority
	// 0 first, so a peer takes over within Skew_Time).
	vrrpDone := make(chan struct{})
	vctx, stopVRRP := context.WithCancel(ctx)
	defer stopVRRP()
	if group != nil {
		go func() {
			defer close(vrrpDone)
			if err := group.Run(vctx); err != nil {
				log.Error("vrrp stopped", "error", err)
			}
		}()
	} else {
		close(vrrpDone)
	}
	reportReady(log)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload()
				continue
			}
			if err := upgrade(l, adminLn, cfg.Admin, args, log); err != nil {
				log.Error("upgrade failed: this process keeps serving", "error", err)
				continue
			}
			log.Info("upgrade: the new process serves; draining this one")
			break loop
		}
	}
	stopVRRP()
	<-vrrpDone
	mu.Lock()
	g := grace
	mu.Unlock()
	log.Info("stopping: finishing in-flight requests", "grace", g)
	sctx, cancel := context.WithTimeout(context.Background(), g)
	defer cancel()
	if err := l.Shutdown(sctx); err != nil {
		log.Warn("grace period over: closed remaining connections", "error", err)
	}
	log.Info("stopped")
	return exitOK
}

// upgrade starts this program's binary anew with the same arguments, hands
// it every listening socket and waits until it reports that it serves.
func upgrade(l *lb.LB, adminLn net.Listener, adminAddr string, args []string, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	files, err := l.ListenerFiles()
	if err != nil {
		return err
	}
	if adminLn != nil {
		f, err := adminLn.(*net.TCPListener).File()
		if err != nil {
			return err
		}
		files[adminAddr] = f
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	addrs := make([]string, 0, len(files))
	for a := range files {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	extra := []*os.File{w}
	var inherit []string
	for _, a := range addrs {
		inherit = append(inherit, a+"="+strconv.Itoa(3+len(extra)))
		extra = append(extra, files[a])
	}
	cmd := exec.Command(exe, append([]string{"lb"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", lb.InheritEnv+"="+strings.Join(inherit, ";"))
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	log.Info("upgrade: started the new process", "pid", cmd.Process.Pid)
	ready := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(r)
		if err == nil && string(b) != "ready" {
			err = errors.New("the new process exited before serving")
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		go cmd.Wait() // reap it should it exit before this process does
		return nil
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return errors.New("the new process did not report ready within 15s")
	}
}

// reportReady tells a predecessor process (see upgrade) that this one serves.
func reportReady(log *slog.Logger) {
	v := os.Getenv(readyFDEnv)
	if v == "" {
		return
	}
	os.Unsetenv(readyFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if _, err := f.WriteString("ready"); err != nil {
		log.Warn("cannot report ready to the previous process", "error", err)
	}
	f.Close()
}

// responseTimes gives the admin endpoint every server's response-time
// histogram.
func responseTimes(l *lb.LB) []admin.ServerTimes {
	var bounds []float64
	for _, b := range lb.TimeBounds() {
		bounds = append(bounds, b.Seconds())
	}
	var out []admin.ServerTimes
	for _, b := range l.Status().Backends {
		for _, s := range b.Servers {
			if s.Counts.ResponseTimes == nil {
				continue
			}
			out = append(out, admin.ServerTimes{Backend: b.Name, Server: s.Name, Bounds: bounds,
				Counts: s.Counts.ResponseTimes, Sum: s.Counts.TimeTotal.Seconds()})
		}
	}
	return out
}
