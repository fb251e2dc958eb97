package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	adminapi "fulcrum/internal/admin"
	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
)

const dbUsage = `Usage: fulcrum db COMMAND [flags]

Commands:
  start       create or restart a local MariaDB cluster in a directory
  stop        stop the nodes of a local cluster
  manage      watch a cluster: failover, fencing, rejoin, status and /metrics
  status      print the nodes: role, reachability, GTID positions, lag, errors
  switchover  make another node the primary without losing a transaction

Run 'fulcrum db COMMAND --help' for a command's flags.
`

const defaultDBAdmin = "127.0.0.1:9910"

func runDB(ctx context.Context, e env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := e.stdout
		if len(args) == 0 {
			w = e.stderr
		}
		fmt.Fprint(w, dbUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub := map[string]func(context.Context, env, []string) int{
		"start": runDBStart, "stop": runDBStop, "manage": runDBManage,
		"status": runDBStatus, "switchover": runDBSwitchover,
	}
	run, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "fulcrum db: unknown command %q\n\n%s", args[0], dbUsage)
		return exitUsage
	}
	return run(ctx, e, args[1:])
}

func runDBStart(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "db start", "db start --dir DIR [--nodes 3] [--base-port 13306]")
	dir := fs.String("dir", "", "directory of the cluster (created if needed; an existing cluster is restarted)")
	nodes := fs.Int("nodes", 3, "number of nodes of a new cluster (1..9)")
	port := fs.Int("base-port", 13306, "port of the first node; the others follow")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *dir == "" {
		fmt.Fprintln(e.stderr, "fulcrum db start: --dir is required")
		return exitUsage
	}
	if *nodes < 1 || *nodes > 9 {
		fmt.Fprintf(e.stderr, "fulcrum db start: --nodes %d: must be 1..9\n", *nodes)
		return exitUsage
	}
	if *port < 1 || *port+*nodes-1 > 65535 {
		fmt.Fprintf(e.stderr, "fulcrum db start: --base-port %d: must leave room for %d ports below 65536\n", *port, *nodes)
		return exitUsage
	}
	begin := time.Now()
	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: *dir, Nodes: *nodes, BasePort: *port,
		Logger: slog.New(slog.NewTextHandler(e.stderr, nil))})
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db start: %v\n", err)
		if l != nil {
			_ = l.Stop()
		}
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "cluster up in %v\n\n", time.Since(begin).Round(time.Millisecond))
	return printObserved(ctx, e, l, l.Dir()+"/cluster.env")
}

func printObserved(ctx context.Context, e env, l *dbha.Local, envPath string) int {
	m, err := dbha.NewManager(l.ManagerConfig())
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db: %v\n", err)
		return exitFailure
	}
	defer m.Close()
	s := m.Observe(ctx)
	_ = s.WriteText(e.stdout, 0)
	if envPath != "" {
		fmt.Fprintf(e.stdout, "addresses and credentials: %s (source it)\n", envPath)
	}
	return exitOK
}

func runDBStop(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "db stop", "db stop --dir DIR")
	dir := fs.String("dir", "", "directory of the cluster")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *dir == "" {
		fmt.Fprintln(e.stderr, "fulcrum db stop: --dir is required")
		return exitUsage
	}
	l, err := dbha.OpenLocal(*dir, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db stop: %v\n", err)
		return exitFailure
	}
	if err := l.Stop(); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db stop: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "stopped %d nodes in %s\n", len(l.Nodes()), l.Dir())
	return exitOK
}

func runDBManage(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "db manage", "db manage (--dir DIR | -c db.yaml) [--admin 127.0.0.1:9910]")
	dir := fs.String("dir", "", "manage the local cluster in this directory")
	file := fs.String("c", "", "manage the servers described in this db.yaml")
	admin := fs.String("admin", "", "address of the status, /metrics and switchover API (default 127.0.0.1:9910, or admin: in db.yaml)")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if (*dir == "") == (*file == "") {
		fmt.Fprintln(e.stderr, "fulcrum db manage: give exactly one of --dir and -c")
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	// The driver reports dropped idle connections on its own; a dead node
	// is the manager's to report, once.
	_ = mysql.SetLogger(driverLog{logger})
	var cfg dbha.Config
	addr, token := defaultDBAdmin, ""
	if *dir != "" {
		l, err := dbha.OpenLocal(*dir, logger)
		if err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db manage: %v\n", err)
			return exitFailure
		}
		cfg = l.ManagerConfig()
	} else {
		c, err := config.LoadDB(*file)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitUsage
		}
		addr = c.Admin
		if c.AdminTokenFile != "" {
			if token, err = adminapi.ReadToken(c.AdminTokenFile); err != nil {
				fmt.Fprintf(e.stderr, "fulcrum db manage: %s: %v\n", *file, err)
				return exitUsage
			}
		}
		tlsCfg, err := c.TLS.ClientConfig()
		if err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db manage: %s: tls: %v\n", *file, err)
			return exitUsage
		}
		cfg = dbha.Config{
			TLS:       tlsCfg,
			AdminUser: c.AdminUser, AdminPassword: c.AdminPassword(),
			ReplUser: c.ReplUser, ReplPassword: c.ReplPassword(),
			Interval: c.Interval.D(), CheckTimeout: c.CheckTimeout.D(),
			FailoverCooldown: c.FailoverCooldown.D(), DrainTimeout: c.DrainTimeout.D(),
			SemiSyncWait: c.SemiSyncWait.D(), AutoRejoin: c.AutoRejoin,
			OnFailover: c.Hooks.OnFailover, OnSwitchover: c.Hooks.OnSwitchover, HookTimeout: c.Hooks.Timeout.D(),
			Logger: logger,
		}
		for _, n := range c.Nodes {
			cfg.Nodes = append(cfg.Nodes, dbha.NodeConfig{Name: n.Name, Addr: n.Address, ReplicationAddr: n.ReplicationAddress})
		}
	}
	if *admin != "" {
		addr = *admin
	}
	// POST /switchover changes the primary: beyond loopback, only with the
	// bearer token.
	if host, _, err := net.SplitHostPort(addr); err != nil || (!isLoopback(host) && token == "") {
		fmt.Fprintf(e.stderr, "fulcrum db manage: admin address %q: must be a loopback address, or the file's admin_token_file set\n", addr)
		return exitUsage
	}
	m, err := dbha.NewManager(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db manage: %v\n", err)
		return exitUsage
	}
	defer m.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db manage: admin address: %v\n", err)
		return exitFailure
	}
	h := m.Handler()
	if token != "" {
		h = adminapi.RequireToken(token, h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("db manager running", "admin", ln.Addr().String(), "nodes", len(cfg.Nodes))
	_ = m.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return exitOK
}

func runDBStatus(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "db status", "db status [--admin 127.0.0.1:9910 [--token-file FILE] | --dir DIR] [--json]")
	admin := fs.String("admin", defaultDBAdmin, "address of a running manager")
	tokenFile := tokenFlag(fs)
	dir := fs.String("dir", "", "probe the local cluster in this directory directly instead of asking a manager")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	var s dbha.Status
	if *dir != "" {
		l, err := dbha.OpenLocal(*dir, nil)
		if err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db status: %v\n", err)
			return exitFailure
		}
		m, err := dbha.NewManager(l.ManagerConfig())
		if err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db status: %v\n", err)
			return exitFailure
		}
		defer m.Close()
		s = m.Observe(ctx)
	} else {
		body, err := adminCall(ctx, http.MethodGet, *admin, *tokenFile, "/status")
		if err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db status: %v\n", err)
			return exitFailure
		}
		if err := json.Unmarshal(body, &s); err != nil {
			fmt.Fprintf(e.stderr, "fulcrum db status: manager at %s: %v\n", *admin, err)
			return exitFailure
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	} else {
		_ = s.WriteText(e.stdout, 10)
	}
	return exitOK
}

func runDBSwitchover(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "db switchover", "db switchover --to NODE [--admin 127.0.0.1:9910] [--token-file FILE]")
	to := fs.String("to", "", "node (name or host:port) to make the primary")
	admin := fs.String("admin", defaultDBAdmin, "address of the running manager")
	tokenFile := tokenFlag(fs)
	if ok, st := parseFlags(fs, args); !ok {
		return st
	}
	if *to == "" {
		fmt.Fprintln(e.stderr, "fulcrum db switchover: --to is required")
		return exitUsage
	}
	body, err := adminCall(ctx, http.MethodPost, *admin, *tokenFile, "/switchover?to="+url.QueryEscape(*to))
	if err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db switchover: %v\n", err)
		return exitFailure
	}
	var s dbha.Status
	if err := json.Unmarshal(body, &s); err != nil {
		fmt.Fprintf(e.stderr, "fulcrum db switchover: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "primary is now %s (%s)\n", s.Primary, s.PrimaryAddr)
	return exitOK
}

// tokenFlag is --token-file, for a manager whose API is off loopback.
func tokenFlag(fs *flag.FlagSet) *string {
	return fs.String("token-file", "", "`file` holding the bearer token of a manager off loopback (its admin_token_file)")
}

func adminCall(ctx context.Context, method, admin, tokenFile, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	if tokenFile != "" {
		token, err := adminapi.ReadToken(tokenFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no manager answers at %s (start one with fulcrum db manage): %w", admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(strings.TrimSpace(string(bytes.TrimSpace(body))))
	}
	return body, nil
}

// driverLog sends the MySQL driver's messages to slog at debug level.
type driverLog struct{ l *slog.Logger }

func (d driverLog) Print(v ...any) {
	d.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "component", "mysql-driver")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
