// Command bench runs the same load through fulcrum, HAProxy and nginx, each
// on one core, and prints a table of requests per second, latency, CPU time
// per request and peak memory with each figure's ratio to HAProxy's.
//
// The machine it runs on is usually shared and noisy, so one run per proxy
// says little: per scenario all the proxies run side by side, and the
// load visits them in rounds, each round measuring every proxy once, back
// to back, in an order that rotates from round to round and runs backwards
// every other round: a run can be slowed by the one before it (the sockets
// it left closing), and no proxy may always follow the same one. Each
// proxy is compared with HAProxy within the same round, and the table
// gives the median over rounds.
//
// -baseline BIN adds a second fulcrum build (an older commit, say) as a
// fourth proxy, "baseline", configured exactly like fulcrum and measured in
// the same rounds; each scenario then also gives fulcrum ÷ baseline, the
// median of the two builds' per-round ratios, in which noise that slows a
// whole round cancels out.
//
// Usage: go run ./bench [-rounds 5] [-d 4s] [-c 64] [-procs 1] [-scenarios http,close,1mib,tcp,tcp-close,tcp-1mib,idle] [-idle 10000] [-profile] [-soak 10m] [-fulcrum bin/fulcrum] [-baseline BIN] [-out DIR]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is sysconf(_SC_CLK_TCK), the unit of the CPU times in
// /proc/PID/stat and /proc/stat: 100 on Linux for every architecture Go
// supports (the kernel's USER_HZ).
const clockTicks = 100

// proxies returns the proxies compared, HAProxy first: the ratios in the
// tables are to it. With -baseline a second fulcrum build, "baseline",
// comes last.
func (o opts) proxies() []string {
	px := []string{"haproxy", "fulcrum", "nginx"}
	if o.baseline != "" {
		px = append(px, "baseline")
	}
	return px
}

// binary returns the program proxy px runs when it is a fulcrum build:
// -fulcrum's binary for fulcrum, -baseline's for baseline, "" otherwise.
func (o opts) binary(px string) string {
	switch px {
	case "fulcrum":
		return o.fulcrum
	case "baseline":
		return o.baseline
	}
	return ""
}

// result is one wrk run against one proxy.
type result struct {
	proxy    string
	rps      float64
	mbps     float64 // transfer rate as wrk reports it
	p50, p99 time.Duration
	requests int64   // requests completed, as wrk reports them
	readMB   float64 // MiB read, as wrk reports it
	cpu      int64   // clock ticks of CPU time the proxy (and its workers) spent during the run
	errors   string
}

// reqPerSec and p99ns are the figures a table and its ratios take as
// functions, like cpuPerReq.
func (r result) reqPerSec() float64 { return r.rps }
func (r result) p99ns() float64     { return float64(r.p99) }

// cpuPerReq is the proxy's CPU time per request in µs.
func (r result) cpuPerReq() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.cpu) * 1e6 / clockTicks / float64(r.requests)
}

// cpuPerMB is the proxy's CPU time per MiB transferred in µs.
func (r result) cpuPerMB() float64 {
	if r.readMB == 0 {
		return 0
	}
	return float64(r.cpu) * 1e6 / clockTicks / r.readMB
}

type scenario struct {
	name string
	mode string // http or tcp
	desc string
	path string   // requested path
	wrk  []string // extra wrk arguments
}

var scenarios = []scenario{
	{"http", "http", "HTTP keep-alive, small GETs", "/", nil},
	{"close", "http", "HTTP, a new connection per request (Connection: close)", "/", []string{"-H", "Connection: close"}},
	{"1mib", "http", "HTTP keep-alive, 1 MiB responses", "/1m", nil},
	{"tcp", "tcp", "TCP mode, small messages (HTTP keep-alive through it)", "/", nil},
	{"tcp-close", "tcp", "TCP mode, a new connection per message (Connection: close through it)", "/", []string{"-H", "Connection: close"}},
	{"tcp-1mib", "tcp", "TCP mode, 1 MiB messages (HTTP keep-alive through it)", "/1m", nil},
}

func main() {
	dur := flag.Duration("d", 4*time.Second, "duration of each load run")
	rounds := flag.Int("rounds", 5, "rounds per scenario; each round measures every proxy once, in a rotating order, backwards every other round")
	conns := flag.Int("c", 64, "concurrent connections")
	which := flag.String("scenarios", "http,close,1mib,tcp,tcp-close,tcp-1mib,idle", "comma-separated scenarios: http, close, 1mib, tcp, tcp-close, tcp-1mib, idle")
	procs := flag.Int("procs", 1, "cores per proxy: GOMAXPROCS, nbthread, worker_processes (and wrk threads)")
	soak := flag.Duration("soak", 0, "instead of the comparison, run fulcrum alone for this long (e.g. 10m) under the first load -scenarios names (by default HTTP keep-alive; -scenarios tcp for TCP mode) and print its RSS, live heap and the host's steal every minute")
	prof := flag.Bool("profile", false, "also profile fulcrum under each load: CPU and allocation profiles in -out (go tool pprof)")
	idle := flag.Int("idle", 10000, "idle keep-alive client connections for the idle scenario (needs 2×idle+200 open files; raised as root)")
	outDir := flag.String("out", "bench/out", "directory for configs and logs")
	fulcrum := flag.String("fulcrum", "bin/fulcrum", "fulcrum binary")
	baseline := flag.String("baseline", "", "a second fulcrum binary (e.g. an older commit's build) to run as \"baseline\", configured like fulcrum, in the same rounds; each scenario then also prints fulcrum ÷ baseline")
	flag.Parse()
	idleSet := false
	flag.Visit(func(f *flag.Flag) { idleSet = idleSet || f.Name == "idle" })
	if *rounds < 1 {
		fmt.Fprintf(os.Stderr, "bench: -rounds %d: must be at least 1\n", *rounds)
		os.Exit(2)
	}
	if *dur < time.Second {
		fmt.Fprintf(os.Stderr, "bench: -d %s: must be at least 1s (wrk counts whole seconds)\n", *dur)
		os.Exit(2)
	}
	if *soak > 0 && *baseline != "" {
		fmt.Fprintln(os.Stderr, "bench: -baseline: the soak run measures fulcrum alone; drop -baseline or -soak")
		os.Exit(2)
	}
	if err := run(opts{*dur, *conns, *procs, *idle, *rounds, *which, *outDir, *fulcrum, *baseline, *prof, *soak, idleSet}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type opts struct {
	dur                              time.Duration
	conns, procs, idle, rounds       int
	which, outDir, fulcrum, baseline string // baseline: "" for none
	profile                          bool
	soak                             time.Duration
	idleSet                          bool // -idle given: too low a file limit is an error, not a smaller count
}

// maxconn is HAProxy's connection limit: 9,900 under load, and in the idle
// scenario room for its connections and a few more. HAProxy wants about
// 2 × maxconn + 14 open files, within the 2 × idle + 200 the bench asks for.
func (o opts) maxconn(idle bool) int {
	if idle {
		return max(9900, o.idle+50)
	}
	return 9900
}

// raiseFileLimit lifts the open-file limit, which children inherit, to at
// least need: idle connections need a descriptor each in this process and
// about two in a proxy (HAProxy reserves 2 × maxconn). The soft limit goes
// to the hard one; when that is too low, root (with CAP_SYS_RESOURCE) may
// raise the hard limit too, up to fs.nr_open. It returns the soft limit
// in force.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	// Set it even when it is already high enough: Go raises its own soft
	// limit at start, and os/exec hands children the original one unless
	// the program has called Setrlimit.
	want := lim
	want.Cur = max(lim.Max, need)
	want.Max = want.Cur
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	if err == nil {
		return want.Cur, nil
	}
	// Not allowed to raise the hard limit: the soft one can still go up
	// to it.
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Max < need {
		return lim.Max, fmt.Errorf("raising it from %d: %w", lim.Max, err)
	}
	return lim.Max, nil
}

func run(o opts) error {
	selected := func(name string) bool { return strings.Contains(","+o.which+",", ","+name+",") }
	need := uint64(2*o.idle + 200)
	if limit, err := raiseFileLimit(need); err != nil && selected("idle") {
		fits := int(max(limit, 200)-200) / 2
		if o.idleSet || fits < 1000 {
			return fmt.Errorf("-idle %d needs an open-file limit of %d, %v: lower -idle to %d, or run as root with CAP_SYS_RESOURCE",
				o.idle, need, err, fits)
		}
		fmt.Printf("idle scenario: %d connections, not %d: they need an open-file limit of %d, and raising it from %d failed (%v)\n\n",
			fits, o.idle, need, limit, err)
		o.idle = fits
	}
	for _, p := range []string{"haproxy", "nginx", "wrk"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: run `make bench`, which installs it", p)
		}
	}
	if _, err := os.Stat(o.fulcrum); err != nil {
		return fmt.Errorf("%s: %w (run `make build`)", o.fulcrum, err)
	}
	o.fulcrum, _ = filepath.Abs(o.fulcrum)
	if o.baseline != "" {
		if _, err := os.Stat(o.baseline); err != nil {
			return fmt.Errorf("-baseline %s: %w", o.baseline, err)
		}
		o.baseline, _ = filepath.Abs(o.baseline)
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	dir, _ := filepath.Abs(o.outDir)
	ports := portSet{}
	be1, be2 := ports.free(), ports.free()
	stopBE, err := startNginxBackends(dir, be1, be2, o.maxconn(true))
	if err != nil {
		return err
	}
	defer stopBE()
	fmt.Printf("backends: nginx (1 worker) on 127.0.0.1:%d and :%d; each proxy on %d core(s); load: wrk -t%d -c%d -d%s; %s\n\n",
		be1, be2, o.procs, o.procs, o.conns, o.dur, time.Now().UTC().Format(time.RFC3339))
	if o.soak > 0 {
		for _, sc := range scenarios {
			if selected(sc.name) {
				return soakRun(o, sc, dir, ports, be1, be2)
			}
		}
		var loads []string
		for _, sc := range scenarios {
			loads = append(loads, sc.name)
		}
		return fmt.Errorf("-soak: -scenarios %q names no load to soak under (one of %s)", o.which, strings.Join(loads, ", "))
	}
	count, ab := "three", ""
	if o.baseline != "" {
		count = "four"
		ab = `baseline is a second fulcrum build (-baseline), configured like fulcrum. "fulcrum ÷ baseline" under a table
is the median of the per-round ratios of fulcrum's figures to baseline's in the same round, and for
idle connections the ratio of their memory per connection.
`
	}
	fmt.Printf(`Figures are medians over %d interleaved rounds: per scenario the %s proxies run side by side,
and each round measures every proxy once, back to back, in an order that rotates from round to round
and runs backwards every other round, so that no proxy always follows the same one.
× is the median of the per-round ratios to HAProxy in the same round; "range" is the lowest and highest
per-round req/s ratio, and "ahead" the rounds in which the proxy served more requests per second than
HAProxy (every round's figures are in rounds.tsv in the output directory). CPU µs/req is the proxy's
user+system CPU time (workers included) during a run divided by the requests wrk completed; "min" is
the lowest over rounds, the least disturbed measurement (its × compares the two minima). CPU µs/MB
(1 MiB responses) divides by the MiB wrk read instead.
Steal is the share of CPU time the hypervisor gave to other machines during the scenario.
The idle scenario measures each proxy once, alone: memory is not noisy.
%s
`, o.rounds, count, ab)
	for _, sc := range scenarios {
		if !selected(sc.name) {
			continue
		}
		if err := runScenario(o, sc, dir, ports, be1, be2); err != nil {
			return err
		}
	}
	if selected("idle") {
		var rows []idleResult
		for _, px := range o.proxies() {
			port := ports.free()
			cmd, err := startProxy(px, "http", dir, o.binary(px), port, be1, be2, o.procs, o.maxconn(true))
			if err != nil {
				return fmt.Errorf("%s idle: %w", px, err)
			}
			r, err := idleConns(cmd.Process.Pid, fmt.Sprintf("127.0.0.1:%d", port), o.idle)
			r.proxy = px
			stop(cmd)
			if err != nil {
				return fmt.Errorf("%s idle: %w", px, err)
			}
			rows = append(rows, r)
		}
		printIdle(o.idle, rows)
	}
	return nil
}

// runScenario starts the proxies side by side, warms each up, runs
// o.rounds rounds of load over them and prints the scenario's table.
func runScenario(o opts, sc scenario, dir string, ports portSet, be1, be2 int) error {
	proxies := o.proxies()
	cmds := map[string]*exec.Cmd{}
	urls := map[string]string{}
	admin := map[string]string{}
	defer func() {
		for _, cmd := range cmds {
			stop(cmd)
		}
	}()
	for _, px := range proxies {
		port := ports.free()
		cmd, err := startProxy(px, sc.mode, dir, o.binary(px), port, be1, be2, o.procs, o.maxconn(false))
		if err != nil {
			return fmt.Errorf("%s %s: %w", px, sc.name, err)
		}
		cmds[px] = cmd
		urls[px] = fmt.Sprintf("http://127.0.0.1:%d%s", port, sc.path)
		admin[px] = fmt.Sprintf("127.0.0.1:%d", port+1)
	}
	for _, px := range proxies {
		wrk(urls[px], o.procs, o.conns, 2*time.Second, sc.wrk) // warm-up
	}
	// rounds[px][i] is px's result in round i.
	rounds := map[string][]result{}
	steal0 := readSteal()
	for i := range o.rounds {
		for j := range proxies {
			if i%2 == 1 {
				j = len(proxies) - 1 - j
			}
			px := proxies[(i+j)%len(proxies)]
			pid := cmds[px].Process.Pid
			cpu0 := cpuTicks(pid)
			r, err := wrk(urls[px], o.procs, o.conns, o.dur, sc.wrk)
			if err != nil {
				return fmt.Errorf("%s %s round %d: %w", px, sc.name, i+1, err)
			}
			r.cpu = cpuTicks(pid) - cpu0
			r.proxy = px
			rounds[px] = append(rounds[px], r)
		}
	}
	steal := readSteal().since(steal0)
	rss := map[string]int64{}
	for _, px := range proxies {
		rss[px] = peakRSS(cmds[px].Process.Pid)
	}
	if o.profile {
		// A separate run under the same load, profiled, so the figures
		// above are not slowed by the profiler.
		if err := profile(admin["fulcrum"], dir, sc.name, func() {
			wrk(urls["fulcrum"], o.procs, o.conns, 6*time.Second, sc.wrk)
		}); err != nil {
			fmt.Fprintln(os.Stderr, "bench: profile:", err)
		}
	}
	if err := saveRounds(filepath.Join(dir, "rounds.tsv"), sc, o.procs, proxies, rounds); err != nil {
		return err
	}
	printTable(sc, proxies, rounds, rss)
	if o.baseline != "" {
		printAB(sc, rounds["fulcrum"], rounds["baseline"])
	}
	fmt.Printf("steal during the scenario: %.1f%% of CPU time\n\n", steal)
	return nil
}

// saveRounds appends every round's figures for sc, run with procs cores
// per proxy, to file (tab-separated, under a header line), for a reader who
// wants more than medians: to pool runs, or to see the rounds' spread.
func saveRounds(file string, sc scenario, procs int, proxies []string, rounds map[string][]result) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		fmt.Fprintln(f, "time\tscenario\tprocs\tround\tproxy\treq/s\tp50 µs\tp99 µs\tCPU µs/req\terrors")
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for i := range rounds["haproxy"] {
		for _, px := range proxies {
			r := rounds[px][i]
			fmt.Fprintf(f, "%s\t%s\t%d\t%d\t%s\t%.0f\t%d\t%d\t%.2f\t%s\n", now, sc.name, procs, i+1, px,
				r.rps, r.p50.Microseconds(), r.p99.Microseconds(), r.cpuPerReq(), r.errors)
		}
	}
	return f.Close()
}

// printTable prints one scenario's table: per proxy the median of its
// figures over the rounds and the median of its per-round ratios to
// HAProxy's figures in the same round.
func printTable(sc scenario, proxies []string, rounds map[string][]result, rss map[string]int64) {
	base := rounds["haproxy"]
	perMB := sc.path == "/1m"
	fmt.Printf("### %s\n\n", sc.desc)
	head := "| proxy | req/s | × HAProxy | range × | ahead | MB/s | × | p50 | × | p99 | × | CPU µs/req | × | min CPU µs/req | × |"
	rule := "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	if perMB {
		head += " CPU µs/MB | × |"
		rule += "---:|---:|"
	}
	fmt.Println(head + " peak RSS | × | errors |")
	fmt.Println(rule + "---:|---:|---|")
	for _, px := range proxies {
		rs := rounds[px]
		// fig returns the median of f over the rounds and the median of
		// its per-round ratios to HAProxy's.
		fig := func(f func(result) float64) (float64, float64) {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r))
			}
			return median(v), median(ratios(rs, base, f))
		}
		rps, rpsX := fig(result.reqPerSec)
		rpsXs := ratios(rs, base, result.reqPerSec)
		mbps, mbpsX := fig(func(r result) float64 { return r.mbps })
		p50, p50X := fig(func(r result) float64 { return float64(r.p50) })
		p99, p99X := fig(result.p99ns)
		cpu, cpuX := fig(result.cpuPerReq)
		minCPU := minOf(rs, result.cpuPerReq)
		ahead := "–"
		if px != "haproxy" {
			n := 0
			for _, x := range rpsXs {
				if x > 1 {
					n++
				}
			}
			ahead = fmt.Sprintf("%d/%d", n, len(rpsXs))
		}
		fmt.Printf("| %s | %.0f | %.2f | %.2f–%.2f | %s | %.1f | %.2f | %s | %.2f | %s | %.2f | %.1f | %.2f | %.1f | %.2f |",
			px, rps, rpsX, slices.Min(rpsXs), slices.Max(rpsXs), ahead, mbps, mbpsX,
			time.Duration(p50).Round(10*time.Microsecond), p50X, time.Duration(p99).Round(10*time.Microsecond), p99X,
			cpu, cpuX, minCPU, quotient(minCPU, minOf(base, result.cpuPerReq)))
		if perMB {
			mb, mbX := fig(result.cpuPerMB)
			fmt.Printf(" %.0f | %.2f |", mb, mbX)
		}
		var errs []string
		for i, r := range rs {
			if r.errors != "" {
				errs = append(errs, fmt.Sprintf("round %d: %s", i+1, r.errors))
			}
		}
		fmt.Printf(" %.1f MB | %.2f | %s |\n", float64(rss[px])/1024, quotient(float64(rss[px]), float64(rss["haproxy"])), strings.Join(errs, "; "))
	}
	fmt.Println()
}

// printAB prints fulcrum's figures over baseline's, the two fulcrum builds
// measured in the same rounds: each the median of the per-round ratios, so
// that noise which slows a whole round cancels out, and for req/s the
// lowest and highest of them too.
func printAB(sc scenario, fulcrum, baseline []result) {
	rps := ratios(fulcrum, baseline, result.reqPerSec)
	fmt.Printf("fulcrum ÷ baseline: req/s %.3f (range %.3f–%.3f), p99 %.3f, CPU µs/req %.3f",
		median(rps), slices.Min(rps), slices.Max(rps),
		median(ratios(fulcrum, baseline, result.p99ns)), median(ratios(fulcrum, baseline, result.cpuPerReq)))
	if sc.path == "/1m" {
		fmt.Printf(", CPU µs/MB %.3f", median(ratios(fulcrum, baseline, result.cpuPerMB)))
	}
	fmt.Print("\n\n")
}

// ratios returns, round by round, f of rs's result over f of ref's.
func ratios(rs, ref []result, f func(result) float64) []float64 {
	x := make([]float64, len(rs))
	for i, r := range rs {
		x[i] = quotient(f(r), f(ref[i]))
	}
	return x
}

func quotient(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// median returns the median of v (the mean of the middle two for an even
// count), 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func minOf(rs []result, f func(result) float64) float64 {
	m := f(rs[0])
	for _, r := range rs[1:] {
		m = min(m, f(r))
	}
	return m
}

// portSet hands out ports for the proxies, backends and fulcrum's admin
// address, never one it handed out before, nor its neighbour.
type portSet map[int]bool

// free returns a port that is free, and whose successor is free too
// (fulcrum's admin address). It is taken below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768 up by default): the load
// generator's and the idle scenario's thousands of client sockets, and
// their TIME_WAIT remnants, live in that range, and a port taken there
// could be in use again by the time the proxy binds it. Ports handed out
// earlier are skipped even when nothing listens on them yet, as a
// fulcrum's admin address may not be bound when the next proxy's port is
// chosen.
func (s portSet) free() int {
	for {
		port := 20000 + rand.IntN(12000)
		if s[port-1] || s[port] || s[port+1] {
			continue
		}
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		s[port], s[port+1] = true, true
		return port
	}
}

// startNginxBackends starts the nginx the proxies forward to, with room for
// maxconn connections from a proxy.
func startNginxBackends(dir string, p1, p2, maxconn int) (func(), error) {
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/backends.pid;
error_log %[1]s/backends.err;
events { worker_connections %[4]d; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server { listen 127.0.0.1:%[2]d; location / { return 200 "hello from backend 1\n"; } location = /1m { alias %[1]s/1m.bin; } }
  server { listen 127.0.0.1:%[3]d; location / { return 200 "hello from backend 2\n"; } location = /1m { alias %[1]s/1m.bin; } }
}
`, dir, p1, p2, max(16384, maxconn+1000))
	if err := os.WriteFile(filepath.Join(dir, "1m.bin"), make([]byte, 1<<20), 0o644); err != nil {
		return nil, err
	}
	cmd, err := startProcess(dir, "backends", "nginx", []string{"-c", write(dir, "backends.conf", conf), "-p", dir}, nil, p1)
	if err != nil {
		return nil, err
	}
	return func() { stop(cmd) }, nil
}

// startProxy starts one proxy in mode (http or tcp) on port in front of the
// two backends. fulcrum and baseline are fulcrum builds, bin their binary,
// given the same configuration; their files in dir are named after the
// proxy, and their admin address is port+1. maxconn is HAProxy's connection
// limit; nginx gets at least 16,384 worker connections, and 1,000 more than
// maxconn (an idle client connection holds no upstream one beyond the
// keepalive cache of 128).
func startProxy(name, mode, dir, bin string, port, be1, be2, procs, maxconn int) (*exec.Cmd, error) {
	switch name {
	case "haproxy":
		conf := fmt.Sprintf(`global
  nbthread %[5]d
  maxconn %[6]d
defaults
  mode %[1]s
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:%[2]d
  default_backend b
backend b
  balance roundrobin
  server s1 127.0.0.1:%[3]d
  server s2 127.0.0.1:%[4]d
`, mode, port, be1, be2, procs, maxconn)
		return startProcess(dir, "haproxy-"+mode, "haproxy", []string{"-db", "-f", write(dir, "haproxy-"+mode+".cfg", conf)}, nil, port)
	case "nginx":
		var body string
		if mode == "http" {
			body = fmt.Sprintf(`http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  upstream b { server 127.0.0.1:%[3]d; server 127.0.0.1:%[4]d; keepalive 128; }
  server {
    listen 127.0.0.1:%[2]d;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}`, dir, port, be1, be2)
		} else {
			body = fmt.Sprintf(`stream {
  upstream b { server 127.0.0.1:%[2]d; server 127.0.0.1:%[3]d; }
  server { listen 127.0.0.1:%[1]d; proxy_pass b; }
}`, port, be1, be2)
		}
		load := ""
		if mode == "tcp" {
			load = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
		}
		conf := fmt.Sprintf("%sworker_processes %d;\ndaemon off;\npid %s/nginx-proxy.pid;\nerror_log %s/nginx-proxy.err;\nevents { worker_connections %d; }\n%s\n", load, procs, dir, dir, max(16384, maxconn+1000), body)
		return startProcess(dir, "nginx-"+mode, "nginx", []string{"-c", write(dir, "nginx-"+mode+".conf", conf), "-p", dir}, nil, port)
	case "fulcrum", "baseline":
		conf := fmt.Sprintf(`admin: "127.0.0.1:%[5]d"
frontends:
  - {name: f, mode: %[1]s, bind: ["127.0.0.1:%[2]d"], default_backend: b, access_log: false}
backends:
  - name: b
    mode: %[1]s
    balance: roundrobin
    servers:
      - {name: s1, address: "127.0.0.1:%[3]d"}
      - {name: s2, address: "127.0.0.1:%[4]d"}
`, mode, port, be1, be2, port+1)
		return startProcess(dir, name+"-"+mode, bin, []string{"lb", "-c", write(dir, name+"-"+mode+".yaml", conf)}, []string{fmt.Sprintf("GOMAXPROCS=%d", procs)}, port)
	}
	return nil, fmt.Errorf("unknown proxy %q", name)
}

func write(dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		panic(err)
	}
	return p
}

// startProcess starts a program and waits until it accepts on port.
func startProcess(dir, name, prog string, args, env []string, port int) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var err2 error
	for i := 0; i < 100; i++ {
		var c net.Conn
		if c, err2 = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err2 == nil {
			c.Close()
			return cmd, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(cmd)
	return nil, fmt.Errorf("%s did not start listening on %d: %v (see %s)", prog, port, err2, logf.Name())
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reTotal   = regexp.MustCompile(`(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read`)
	reXfer    = regexp.MustCompile(`Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reErrors  = regexp.MustCompile(`(?m)^\s+(Non-2xx or 3xx responses: \d+|Socket errors: .*)$`)
)

// mib maps wrk's size units (powers of 1024) to MiB.
var mib = map[string]float64{"B": 1.0 / (1 << 20), "KB": 1.0 / 1024, "MB": 1, "GB": 1024, "TB": 1 << 20}

// wrk runs wrk and returns its figures.
func wrk(url string, threads, conns int, dur time.Duration, extra []string) (result, error) {
	args := append([]string{fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(dur.Seconds())), "--latency"}, extra...)
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	var r result
	m := reRPS.FindSubmatch(out)
	if m == nil {
		return r, errors.New("wrk: no Requests/sec in output: " + string(out))
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := reTotal.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		r.readMB = v * mib[string(m[3])]
	}
	if m := reXfer.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		r.mbps = v * mib[string(m[2])]
	}
	for _, m := range reLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		d := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	var errs []string
	for _, m := range reErrors.FindAllSubmatch(out, -1) {
		errs = append(errs, strings.TrimSpace(string(m[1])))
	}
	r.errors = strings.Join(errs, "; ")
	return r, nil
}

// peakRSS returns the peak resident set size (VmHWM) in KiB of a process
// and its children.
func peakRSS(pid int) int64 { return treeKB(pid, "VmHWM:") }

// statusKB reads a KiB field of /proc/PID/status.
func statusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), field) {
			n, _ := strconv.ParseInt(strings.Fields(s.Text())[1], 10, 64)
			return n
		}
	}
	return 0
}

type idleResult struct {
	proxy         string
	before, after int64 // RSS in KiB
	opened        int
}

// idleConns opens n keep-alive connections through the proxy, each carrying
// one request, leaves them idle, and measures the proxy's RSS before and
// after.
func idleConns(pid int, addr string, n int) (idleResult, error) {
	r := idleResult{before: rss(pid)}
	conns := make([]net.Conn, 0, n)
	defer func() {
		// Reset rather than close: thousands of sockets in TIME_WAIT would hold
		// local ports for a minute, and the next scenario could not
		// connect to a proxy whose port collides with one of them.
		for _, c := range conns {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return r, fmt.Errorf("after %d connections: %w", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			return r, err
		}
		if _, err := c.Read(buf); err != nil {
			return r, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	r.opened = len(conns)
	time.Sleep(2 * time.Second)
	r.after = rss(pid)
	return r, nil
}

func printIdle(n int, rows []idleResult) {
	fmt.Printf("### %d idle keep-alive client connections (each after one request)\n\n", n)
	fmt.Println("| proxy | RSS before | RSS with idle conns | growth | per connection | × HAProxy |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	base := float64(rows[0].after - rows[0].before)
	perConn := map[string]float64{}
	for _, r := range rows {
		g := float64(r.after - r.before)
		perConn[r.proxy] = g / float64(r.opened)
		fmt.Printf("| %s | %.1f MB | %.1f MB | %.1f MB | %.2f KB | %.2f |\n", r.proxy,
			float64(r.before)/1024, float64(r.after)/1024, g/1024, perConn[r.proxy], g/base)
	}
	fmt.Println()
	if b, ok := perConn["baseline"]; ok {
		fmt.Printf("fulcrum ÷ baseline: KB/conn %.3f\n\n", quotient(perConn["fulcrum"], b))
	}
}

// rss returns the resident set size (VmRSS) in KiB of a process and its
// children (nginx serves from worker processes).
func rss(pid int) int64 { return treeKB(pid, "VmRSS:") }

// treeKB sums a KiB field of /proc/PID/status over pid and its children.
func treeKB(pid int, field string) int64 {
	total := statusKB(pid, field)
	for _, child := range children(pid) {
		total += statusKB(child, field)
	}
	return total
}

// cpuTicks returns the user and system CPU time, in clock ticks, that pid
// and its children (nginx's workers) have used so far.
func cpuTicks(pid int) int64 {
	total := statTicks(pid)
	for _, child := range children(pid) {
		total += statTicks(child)
	}
	return total
}

// statFields returns the fields of /proc/PID/stat after the command name,
// the first being field 3 (state) in proc(5)'s numbering.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	// pid (comm) state ppid …; comm may hold spaces, so cut after ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// statTicks returns utime + stime (fields 14 and 15 of /proc/PID/stat) of
// one process, all its threads included.
func statTicks(pid int) int64 {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[14-3], 10, 64)
	s, _ := strconv.ParseInt(f[15-3], 10, 64)
	return u + s
}

// children returns the pids of pid's child processes.
func children(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// cpuTimes is the machine's cpu line of /proc/stat: steal and total ticks.
type cpuTimes struct{ steal, total int64 }

// readSteal reads the machine's steal and total CPU time so far. The cpu
// line of /proc/stat holds user nice system idle iowait irq softirq steal
// guest guest_nice; guest time is already counted in user, so the total
// is the sum of the first eight.
func readSteal() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		t.total += v
		if i == 8 {
			t.steal = v
		}
	}
	return t
}

// since returns the steal time between then and t as a percentage of all
// CPU time.
func (t cpuTimes) since(then cpuTimes) float64 {
	return 100 * quotient(float64(t.steal-then.steal), float64(t.total-then.total))
}

// liveHeap returns the heap in use after a collection of the fulcrum whose
// admin address is admin ("?" if it cannot be read): the heap profile's
// gc=1 collects first, and debug=1 ends with the runtime's MemStats.
func liveHeap(admin string) string {
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "# HeapAlloc = "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
			}
		}
	}
	return "?"
}

// profile takes a 5 s CPU profile and then an allocation profile of the
// fulcrum whose admin address is admin while load runs, into dir.
func profile(admin, dir, name string, load func()) error {
	done := make(chan struct{})
	go func() { load(); close(done) }()
	time.Sleep(500 * time.Millisecond)
	for _, p := range []struct{ path, file string }{
		{"/debug/pprof/profile?seconds=5", "fulcrum-" + name + ".cpu.pprof"},
		{"/debug/pprof/allocs", "fulcrum-" + name + ".allocs.pprof"},
	} {
		resp, err := http.Get("http://" + admin + p.path)
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, p.file))
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
		if err != nil {
			return err
		}
		fmt.Printf("profile: %s\n", filepath.Join(dir, p.file))
	}
	<-done
	return nil
}

// soakRun keeps fulcrum under scenario sc's load for o.soak and prints its
// RSS and live heap each minute: memory that grows with time would show. RSS
// alone can rise for minutes without a leak, as garbage builds up to the
// collector's first goal; the live heap is read after a collection
// (liveHeap).
func soakRun(o opts, sc scenario, dir string, ports portSet, be1, be2 int) error {
	port := ports.free()
	cmd, err := startProxy("fulcrum", sc.mode, dir, o.fulcrum, port, be1, be2, o.procs, o.maxconn(false))
	if err != nil {
		return err
	}
	defer stop(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, sc.path)
	wrk(url, o.procs, o.conns, 5*time.Second, sc.wrk) // warm-up
	// Steal is printed with the RSS: on a shared host it, not the proxy,
	// can account for a long run's latency.
	admin := fmt.Sprintf("127.0.0.1:%d", port+1)
	fmt.Printf("### soak: %s of %s, %d connections\n\n| elapsed | RSS | live heap | steal since the last line |\n|---:|---:|---:|---:|\n| 0s | %.1f MB | %s | |\n",
		o.soak, sc.desc, o.conns, float64(rss(cmd.Process.Pid))/1024, liveHeap(admin))
	done := make(chan result, 1)
	go func() { r, _ := wrk(url, o.procs, o.conns, o.soak, sc.wrk); done <- r }()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	start := time.Now()
	first := readSteal()
	last := first
	line := func(when string) {
		now := readSteal()
		fmt.Printf("| %s | %.1f MB | %s | %.1f%% |\n", when, float64(rss(cmd.Process.Pid))/1024, liveHeap(admin), now.since(last))
		last = now
	}
	for {
		select {
		case r := <-done:
			line("load ended") // a minute's line may have come just before
			errs := r.errors
			if errs == "" {
				errs = "none"
			}
			fmt.Printf("\n%.0f req/s on average, p99 %s, errors: %s; steal %.1f%% of CPU time over the run\n",
				r.rps, r.p99, errs, last.since(first))
			return nil
		case <-tick.C:
			line(time.Since(start).Round(time.Second).String())
		}
	}
}
