package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"fulcrum/internal/admin"
)

const ctlUsage = `ctl [--admin ADDR] [--token-file FILE] [-o json] COMMAND [ARGS]

Commands:
  servers | backends | frontends      show them (a table, or JSON with -o json)
  set-weight BACKEND/SERVER N|N%      set a server's weight (0..256, or % of its configured weight)
  ready|drain|maint BACKEND/SERVER    set a server's admin state
  enable-checks|disable-checks B/S    turn a server's health checks on or off
  health BACKEND/SERVER up|down       force a server's health state
  add-server BACKEND/SERVER ADDR [--weight N]
                                      add a server (it starts in maint)
  del-server BACKEND/SERVER           delete a server (it must be in maint, idle)
  reload                              re-read the load balancer's configuration file

Flags:`

// ctlArgs returns how many arguments cmd takes; ok is false for an unknown
// command.
func ctlArgs(cmd string) (n int, ok bool) {
	switch cmd {
	case "servers", "backends", "frontends", "reload":
		return 0, true
	case "ready", "drain", "maint", "enable-checks", "disable-checks", "del-server":
		return 1, true
	case "set-weight", "health", "add-server":
		return 2, true
	}
	return 0, false
}

func runCtl(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "ctl", ctlUsage)
	defAdmin := os.Getenv("FULCRUM_ADMIN")
	if defAdmin == "" {
		defAdmin = "127.0.0.1:9900"
	}
	addr := fs.String("admin", defAdmin, "admin `address` of the load balancer (host:port or URL; default $FULCRUM_ADMIN)")
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token, for a non-loopback admin address")
	output := fs.String("o", "table", "output `format`: table or json")
	weight := fs.Int("weight", 1, "weight of a server added with add-server (0..256)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the load balancer")
	// Flags may come before or after the command and its arguments; a
	// negative number ("-5%") is an argument, and "--" ends the flags.
	var pos []string
	for rest := args; len(rest) > 0; {
		if negative(rest[0]) {
			pos, rest = append(pos, rest[0]), rest[1:]
			continue
		}
		if ok, st := parseFlags(fs, rest); !ok {
			return st
		}
		if n := len(rest) - fs.NArg(); n > 0 && rest[n-1] == "--" {
			pos = append(pos, fs.Args()...)
			break
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "fulcrum ctl: "+format+"\n", a...)
		fs.Usage()
		return exitUsage
	}
	if len(pos) == 0 {
		return usageErr("a command is required")
	}
	cmd, cargs := pos[0], pos[1:]
	n, known := ctlArgs(cmd)
	switch {
	case !known:
		return usageErr("unknown command %q", cmd)
	case len(cargs) != n:
		return usageErr("%s takes %d argument(s), got %d", cmd, n, len(cargs))
	case *output != "table" && *output != "json":
		return usageErr("-o %q: want table or json", *output)
	}
	weightSet := false
	fs.Visit(func(f *flag.Flag) { weightSet = weightSet || f.Name == "weight" })
	if weightSet && cmd != "add-server" {
		return usageErr("--weight is only for add-server (use set-weight)")
	}
	var backend, server string
	if n > 0 && cmd != "reload" {
		var ok bool
		if backend, server, ok = strings.Cut(cargs[0], "/"); !ok || backend == "" || server == "" {
			return usageErr("%q: want BACKEND/SERVER", cargs[0])
		}
	}
	token := ""
	if *tokenFile != "" {
		var err error
		if token, err = admin.ReadToken(*tokenFile); err != nil {
			fmt.Fprintln(e.stderr, "fulcrum ctl:", err)
			return exitFailure
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := ctl{e: e, c: admin.NewClient(*addr, token), json: *output == "json"}
	var err error
	switch cmd {
	case "servers", "backends", "frontends":
		err = c.show(ctx, cmd)
	case "reload":
		err = c.call(ctx, http.MethodPost, "/api/reload", struct{}{}, func(json.RawMessage) string { return "reloaded" })
	case "set-weight":
		err = c.change(ctx, backend, server, "weight", map[string]string{"weight": cargs[1]})
	case "ready", "drain", "maint":
		err = c.change(ctx, backend, server, "state", map[string]string{"state": cmd})
	case "enable-checks", "disable-checks":
		err = c.change(ctx, backend, server, "checks", map[string]bool{"enabled": cmd == "enable-checks"})
	case "health":
		if cargs[1] != "up" && cargs[1] != "down" {
			return usageErr("health %s: want up or down, got %q", cargs[0], cargs[1])
		}
		err = c.change(ctx, backend, server, "health", map[string]string{"health": cargs[1]})
	case "add-server":
		body := map[string]any{"name": server, "address": cargs[1], "weight": *weight}
		err = c.call(ctx, http.MethodPost, admin.BackendPath(backend)+"/servers", body, serverLine)
	case "del-server":
		err = c.call(ctx, http.MethodDelete, admin.ServerPath(backend, server), nil, func(json.RawMessage) string {
			return backend + "/" + server + ": deleted"
		})
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "fulcrum ctl:", err)
		return exitFailure
	}
	return exitOK
}

// negative reports whether arg is a negative number, not a flag.
func negative(arg string) bool {
	return len(arg) > 1 && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9'
}

// ctl runs one command against an admin endpoint.
type ctl struct {
	e    env
	c    *admin.Client
	json bool
}

// call sends a request and prints the answer: raw JSON with -o json, else
// the line human makes of it.
func (c ctl) call(ctx context.Context, method, path string, body any, human func(json.RawMessage) string) error {
	var raw json.RawMessage
	if err := c.c.Do(ctx, method, path, body, &raw); err != nil {
		return err
	}
	if c.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("admin API answered no JSON: %w", err)
		}
		_, err := c.e.stdout.Write(buf.Bytes())
		return err
	}
	fmt.Fprintln(c.e.stdout, human(raw))
	return nil
}

func (c ctl) change(ctx context.Context, backend, server, what string, body any) error {
	return c.call(ctx, http.MethodPost, admin.ServerPath(backend, server)+"/"+what, body, serverLine)
}

// serverLine summarises a server answer: "web/web1: UP, weight 50 (configured 100)".
func serverLine(raw json.RawMessage) string {
	var s admin.Server
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw)
	}
	line := fmt.Sprintf("%s/%s: %s, weight %s", s.Backend, s.Name, s.State, weightText(s))
	if s.Check != nil && !s.Check.Enabled {
		line += ", checks off"
	}
	return line
}

func weightText(s admin.Server) string {
	if s.Weight == s.ConfigWeight {
		return strconv.Itoa(s.Weight)
	}
	return fmt.Sprintf("%d (configured %d)", s.Weight, s.ConfigWeight)
}

func (c ctl) show(ctx context.Context, what string) error {
	if c.json {
		return c.call(ctx, http.MethodGet, "/api/"+what, nil, nil)
	}
	st, err := c.c.Status(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.e.stdout, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	switch what {
	case "frontends":
		row("NAME", "MODE", "BIND", "CONNS", "REQUESTS", "RATE/S", "IN", "OUT", "REQ_ERR", "2XX", "4XX", "5XX")
		for _, f := range st.Frontends {
			k := f.Counts
			row(f.Name, f.Mode, strings.Join(f.Bind, ","), itoa(f.Conns), utoa(k.Requests), rateText(f.Rate),
				size(k.BytesIn), size(k.BytesOut), utoa(k.ReqErrors), utoa(k.StatusClasses[2]), utoa(k.StatusClasses[4]), utoa(k.StatusClasses[5]))
		}
	case "backends":
		row("NAME", "MODE", "BALANCE", "UP", "SESSIONS", "REQUESTS", "RATE/S", "IN", "OUT", "CONN_ERR", "RESP_ERR", "RETRIES", "REDISP", "5XX")
		for _, b := range st.Backends {
			k := b.Counts
			row(b.Name, b.Mode, b.Balance, fmt.Sprintf("%d/%d", b.Up, len(b.Servers)), strconv.FormatInt(b.Sessions, 10),
				utoa(k.Requests), rateText(b.Rate), size(k.BytesIn), size(k.BytesOut), utoa(k.ConnErrors),
				utoa(k.RespErrors), utoa(k.Retries), utoa(k.Redispatches), utoa(k.StatusClasses[5]))
		}
	case "servers":
		row("SERVER", "ADDRESS", "STATE", "WEIGHT", "SESSIONS", "REQUESTS", "RATE/S", "SHARE", "IN", "OUT",
			"CONN_ERR", "RETRIES", "REDISP", "CHECK", "LAST_CHECK", "CHANGED")
		for _, b := range st.Backends {
			for _, s := range b.Servers {
				k := s.Counts
				check, last := "-", "-"
				if ck := s.Check; ck != nil {
					check = ck.Status
					if !ck.Enabled {
						check = "off"
					}
					if !ck.LastAt.IsZero() {
						res := "ok"
						if !ck.LastOK {
							res = "failed"
						}
						last = fmt.Sprintf("%s %s %s ago", res, ck.LastDuration.Round(time.Microsecond*100), age(st.Time, ck.LastAt))
					}
				}
				weight := strconv.Itoa(s.Weight)
				if s.Weight != s.ConfigWeight {
					weight += "/" + strconv.Itoa(s.ConfigWeight)
				}
				row(b.Name+"/"+s.Name, s.Address, s.State, weight, strconv.FormatInt(s.Active, 10), utoa(k.Requests),
					rateText(s.Rate), fmt.Sprintf("%.0f%%", s.Share*100), size(k.BytesIn), size(k.BytesOut),
					utoa(k.ConnErrors), utoa(k.Retries), utoa(k.Redispatches), check, last, age(st.Time, s.LastChange))
			}
		}
	}
	return tw.Flush()
}

func itoa(n int) string         { return strconv.Itoa(n) }
func utoa(n uint64) string      { return strconv.FormatUint(n, 10) }
func rateText(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) }

// size renders a byte count: 512B, 1.5K, 3.2M, 4.0G.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + string("BKMGT"[i])
}

// age renders how long before now t was: "42s", "5m3s", "2h10m", "3d4h".
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}
