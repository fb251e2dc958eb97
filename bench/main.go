// Command bench runs the same load through fulcrum, HAProxy and nginx, each
// on one core, in one run, and prints a table of requests per second,
// latency and peak memory with each figure's ratio to HAProxy's.
//
// Usage: go run ./bench [-d 10s] [-c 64] [-procs 1] [-scenarios http,close,1mib,tcp,idle] [-idle 10000] [-out DIR]
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
	"strconv"
	"strings"
	"syscall"
	"time"
)

type result struct {
	proxy    string
	rps      float64
	mbps     float64 // transfer rate as wrk reports it
	p50, p99 time.Duration
	rssKB    int64
	errors   string
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
	{"tcp", "tcp", "TCP mode (HTTP keep-alive through it)", "/", nil},
}

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each load run")
	conns := flag.Int("c", 64, "concurrent connections")
	which := flag.String("scenarios", "http,close,1mib,tcp,idle", "comma-separated scenarios: http, close, 1mib, tcp, idle")
	procs := flag.Int("procs", 1, "cores per proxy: GOMAXPROCS, nbthread, worker_processes (and wrk threads)")
	soak := flag.Duration("soak", 0, "instead of the comparison, run fulcrum alone under keep-alive load for this long (e.g. 10m) and print its RSS every minute")
	prof := flag.Bool("profile", false, "also profile fulcrum under each load: CPU and allocation profiles in -out (go tool pprof)")
	idle := flag.Int("idle", 9000, "idle keep-alive client connections for the idle scenario (needs 2×idle open files)")
	outDir := flag.String("out", "bench/out", "directory for configs and logs")
	fulcrum := flag.String("fulcrum", "bin/fulcrum", "fulcrum binary")
	flag.Parse()
	if err := run(opts{*dur, *conns, *procs, *idle, *which, *outDir, *fulcrum, *prof, *soak}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type opts struct {
	dur                    time.Duration
	conns, procs, idle     int
	which, outDir, fulcrum string
	profile                bool
	soak                   time.Duration
}

func run(o opts) error {
	// Idle connections need a descriptor each in this process and about
	// two in a proxy (HAProxy reserves 2 × maxconn): raise the soft limit
	// to the hard one, which children inherit.
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if need := uint64(2*o.idle + 200); lim.Max < need && strings.Contains(o.which, "idle") {
		return fmt.Errorf("-idle %d needs an open-file limit of %d, the hard limit is %d: lower -idle", o.idle, need, lim.Max)
	}
	dur, conns, which, outDir, fulcrum := o.dur, o.conns, o.which, o.outDir, o.fulcrum
	for _, p := range []string{"haproxy", "nginx", "wrk"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: run `make bench`, which installs it", p)
		}
	}
	if _, err := os.Stat(fulcrum); err != nil {
		return fmt.Errorf("%s: %w (run `make build`)", fulcrum, err)
	}
	fulcrum, _ = filepath.Abs(fulcrum)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	dir, _ := filepath.Abs(outDir)
	be1, be2 := freePort(), freePort()
	stopBE, err := startNginxBackends(dir, be1, be2)
	if err != nil {
		return err
	}
	defer stopBE()
	fmt.Printf("backends: nginx (1 worker) on 127.0.0.1:%d and :%d; each proxy on %d core(s); load: wrk -t%d -c%d -d%s; %s\n\n",
		be1, be2, o.procs, o.procs, conns, dur, time.Now().UTC().Format(time.RFC3339))
	if o.soak > 0 {
		return soakRun(o, dir, be1, be2)
	}
	selected := func(name string) bool { return strings.Contains(","+which+",", ","+name+",") }
	for _, sc := range scenarios {
		if !selected(sc.name) {
			continue
		}
		var results []result
		for _, px := range []string{"haproxy", "fulcrum", "nginx"} {
			port := freePort()
			cmd, err := startProxy(px, sc.mode, dir, fulcrum, port, be1, be2, o.procs)
			if err != nil {
				return fmt.Errorf("%s %s: %w", px, sc.name, err)
			}
			url := fmt.Sprintf("http://127.0.0.1:%d%s", port, sc.path)
			wrk(url, o.procs, conns, 2*time.Second, sc.wrk) // warm-up
			r, err := wrk(url, o.procs, conns, dur, sc.wrk)
			r.proxy = px
			r.rssKB = peakRSS(cmd.Process.Pid)
			if px == "fulcrum" && o.profile && err == nil {
				// A separate run under the same load, profiled, so the
				// figures above are not slowed by the profiler.
				if perr := profile(fmt.Sprintf("127.0.0.1:%d", port+1), dir, sc.name, func() {
					wrk(url, o.procs, conns, 6*time.Second, sc.wrk)
				}); perr != nil {
					fmt.Fprintln(os.Stderr, "bench: profile:", perr)
				}
			}
			stop(cmd)
			if err != nil {
				return fmt.Errorf("%s %s: %w", px, sc.name, err)
			}
			results = append(results, r)
		}
		printTable(sc, results)
	}
	if selected("idle") {
		var rows []idleResult
		for _, px := range []string{"haproxy", "fulcrum", "nginx"} {
			port := freePort()
			cmd, err := startProxy(px, "http", dir, fulcrum, port, be1, be2, o.procs)
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

func printTable(sc scenario, rs []result) {
	base := rs[0] // haproxy
	fmt.Printf("### %s\n\n", sc.desc)
	fmt.Println("| proxy | req/s | × HAProxy | MB/s | p50 | × | p99 | × | peak RSS | × | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		fmt.Printf("| %s | %.0f | %.2f | %.1f | %s | %.2f | %s | %.2f | %.1f MB | %.2f | %s |\n",
			r.proxy, r.rps, r.rps/base.rps, r.mbps,
			r.p50.Round(10*time.Microsecond), ratio(r.p50, base.p50), r.p99.Round(10*time.Microsecond), ratio(r.p99, base.p99),
			float64(r.rssKB)/1024, float64(r.rssKB)/float64(base.rssKB), r.errors)
	}
	fmt.Println()
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// freePort returns a port that is free, and whose successor is free too
// (fulcrum's admin address). It is taken below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768 up by default): the load
// generator's and the idle scenario's thousands of client sockets, and
// their TIME_WAIT remnants, live in that range, and a port taken there
// could be in use again by the time the proxy binds it.
func freePort() int {
	for {
		port := 20000 + rand.IntN(12000)
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
		return port
	}
}

func startNginxBackends(dir string, p1, p2 int) (func(), error) {
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/backends.pid;
error_log %[1]s/backends.err;
events { worker_connections 16384; }
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
`, dir, p1, p2)
	if err := os.WriteFile(filepath.Join(dir, "1m.bin"), make([]byte, 1<<20), 0o644); err != nil {
		return nil, err
	}
	cmd, err := startProcess(dir, "backends", "nginx", []string{"-c", write(dir, "backends.conf", conf), "-p", dir}, nil, p1)
	if err != nil {
		return nil, err
	}
	return func() { stop(cmd) }, nil
}

func startProxy(name, mode, dir, fulcrum string, port, be1, be2, procs int) (*exec.Cmd, error) {
	switch name {
	case "haproxy":
		conf := fmt.Sprintf(`global
  nbthread %[5]d
  maxconn 9900
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
`, mode, port, be1, be2, procs)
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
		conf := fmt.Sprintf("%sworker_processes %d;\ndaemon off;\npid %s/nginx-proxy.pid;\nerror_log %s/nginx-proxy.err;\nevents { worker_connections 16384; }\n%s\n", load, procs, dir, dir, body)
		return startProcess(dir, "nginx-"+mode, "nginx", []string{"-c", write(dir, "nginx-"+mode+".conf", conf), "-p", dir}, nil, port)
	case "fulcrum":
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
		return startProcess(dir, "fulcrum-"+mode, fulcrum, []string{"lb", "-c", write(dir, "fulcrum-"+mode+".yaml", conf)}, []string{fmt.Sprintf("GOMAXPROCS=%d", procs)}, port)
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
	reXfer    = regexp.MustCompile(`Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reErrors  = regexp.MustCompile(`(?m)^\s+(Non-2xx or 3xx responses: \d+|Socket errors: .*)$`)
)

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
	if m := reXfer.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		r.mbps = v * map[string]float64{"B": 1.0 / (1 << 20), "KB": 1.0 / 1024, "MB": 1, "GB": 1024}[string(m[2])]
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
		// Reset rather than close: 9,000 sockets in TIME_WAIT would hold
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
	for _, r := range rows {
		g := float64(r.after - r.before)
		fmt.Printf("| %s | %.1f MB | %.1f MB | %.1f MB | %.2f KB | %.2f |\n", r.proxy,
			float64(r.before)/1024, float64(r.after)/1024, g/1024, g/float64(r.opened), g/base)
	}
	fmt.Println()
}

// rss returns the resident set size (VmRSS) in KiB of a process and its
// children (nginx serves from worker processes).
func rss(pid int) int64 { return treeKB(pid, "VmRSS:") }

// treeKB sums a KiB field of /proc/PID/status over pid and its children.
func treeKB(pid int, field string) int64 {
	total := statusKB(pid, field)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut after ')'.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				total += statusKB(child, field)
			}
		}
	}
	return total
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

// soakRun keeps fulcrum under keep-alive load for o.soak and prints its RSS
// each minute: memory that grows with time would show.
func soakRun(o opts, dir string, be1, be2 int) error {
	port := freePort()
	cmd, err := startProxy("fulcrum", "http", dir, o.fulcrum, port, be1, be2, o.procs)
	if err != nil {
		return err
	}
	defer stop(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	wrk(url, o.procs, o.conns, 5*time.Second, nil) // warm-up
	fmt.Printf("### soak: %s of keep-alive GETs, %d connections\n\n| elapsed | RSS |\n|---:|---:|\n| 0s | %.1f MB |\n",
		o.soak, o.conns, float64(rss(cmd.Process.Pid))/1024)
	done := make(chan result, 1)
	go func() { r, _ := wrk(url, o.procs, o.conns, o.soak, nil); done <- r }()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case r := <-done:
			fmt.Printf("| %s | %.1f MB |\n\n%.0f req/s on average, p99 %s, errors: %s\n", time.Since(start).Round(time.Second),
				float64(rss(cmd.Process.Pid))/1024, r.rps, r.p99, r.errors)
			return nil
		case <-tick.C:
			fmt.Printf("| %s | %.1f MB |\n", time.Since(start).Round(time.Second), float64(rss(cmd.Process.Pid))/1024)
		}
	}
}
