package stack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/edge"
	"fulcrum/internal/firewall"
	"fulcrum/internal/netns"
)

// Options configure a Stack.
type Options struct {
	// Dir is the state directory: the database, the generated
	// configurations, the logs and stack.json (required).
	Dir string
	// Config is the topology (nil: config.DefaultStack()).
	Config *config.Stack
	// Fresh wipes Dir first.
	Fresh bool
	// Exe is the fulcrum binary the children run (default os.Executable).
	Exe string
	// Log receives progress and events (default: DIR/logs/up.log).
	Log *slog.Logger
	// Out receives the URLs, the status table and the live status line
	// (nil: none). Terminal rewrites the line in place with \r; otherwise
	// a line is written every StatusEvery (default 5s).
	Out      io.Writer
	Terminal bool
	// Width is the terminal's width: the rewritten line is cut to it, so
	// that it never wraps (0: not cut).
	Width       int
	StatusEvery time.Duration
	// PollInterval is how often the state is read from the components
	// (default 1s).
	PollInterval time.Duration
	// NetNS runs every host of Config.Hosts as a network namespace of its
	// own, with a real VRRP VIP and each host's firewall, plus a client
	// host and the monitor host the stack's own polls come from (needs
	// root). This machine's network is never used.
	NetNS bool
}

// Stack is a running `fulcrum up`.
type Stack struct {
	opt    Options
	cfg    *config.Stack
	log    *slog.Logger
	dir    string
	local  *dbha.Local
	files  *files
	http   *http.Client
	caPath string          // the local CA's certificate (PEM), to trust for the HTTPS front
	net    *netns.Net      // the hosts, with --netns
	netCtx context.Context // ends the monitor host's dialer

	children []*child // in topology order: lbs, webs, manager
	byName   map[string]*child
	dash     net.Listener
	started  time.Time

	// mu guards the fields below.
	mu            sync.Mutex
	state         State
	events        []Event
	prevReqs      map[string]uint64
	prevAt        time.Time
	lastMgrEvent  time.Time
	killedPrimary string
	lastHolder    string // the last load balancer seen holding the front address
	nodeRunning   map[string]bool
	seenServer    map[string]string
}

// maxEvents is how many events the state keeps.
const maxEvents = 200

// CheckPrerequisites reports the programs `fulcrum up` needs that are
// missing (with hosts, for --netns, ip too), with the command that
// installs them.
func CheckPrerequisites(hosts bool) error {
	var missing []string
	progs := []string{"mariadbd", "mariadb-install-db"}
	if hosts {
		progs = append(progs, "ip") // --netns
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s not found on PATH (%s): install them with\n"+
		"    sudo apt-get install -y mariadb-server mariadb-client iproute2\n"+
		"or run `make demo`, which installs them and starts the stack "+
		"(on Debian the server is /usr/sbin/mariadbd: add /usr/sbin to PATH if it is installed)",
		strings.Join(missing, " and "), os.Getenv("PATH"))
}

// New checks the options; Run starts the stack.
func New(opt Options) (*Stack, error) {
	if opt.Dir == "" {
		return nil, errors.New("stack: a state directory is required")
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, err
	}
	if opt.Config == nil {
		opt.Config = config.DefaultStack()
	}
	if opt.Exe == "" {
		if opt.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("stack: finding the fulcrum binary: %w", err)
		}
	}
	if opt.StatusEvery <= 0 {
		opt.StatusEvery = 5 * time.Second
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = time.Second
	}
	if opt.NetNS {
		if opt.Config, err = onHosts(opt.Config); err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
	}
	s := &Stack{opt: opt, cfg: opt.Config, log: opt.Log, dir: dir, byName: map[string]*child{},
		http:     &http.Client{Timeout: 800 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext}},
		prevReqs: map[string]uint64{}, nodeRunning: map[string]bool{}, seenServer: map[string]string{}}
	return s, nil
}

// Dir returns the state directory.
func (s *Stack) Dir() string { return s.dir }

// prepareDir wipes the directory for --fresh, refusing a directory that
// is not a stack's, and refuses to run twice from the same directory.
func (s *Stack) prepareDir() error {
	if f, err := ReadFile(s.dir); err == nil && f.PID > 0 && f.PID != os.Getpid() && processAlive(f.PID) {
		return fmt.Errorf("a stack already runs from %s (fulcrum up, pid %d): stop it first, or use another --dir", s.dir, f.PID)
	}
	if s.opt.Fresh {
		ents, err := os.ReadDir(s.dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(ents) > 0 && !isStackDir(s.dir) {
			return fmt.Errorf("--fresh: %s is not empty and holds no fulcrum stack: refusing to delete it", s.dir)
		}
		if len(ents) > 0 {
			if l, err := dbha.OpenLocal(filepath.Join(s.dir, "db"), nil); err == nil {
				_ = l.Stop() // nodes left running by a killed fulcrum up
			}
			if err := os.RemoveAll(s.dir); err != nil {
				return fmt.Errorf("--fresh: %w", err)
			}
		}
	}
	for _, d := range []string{s.dir, filepath.Join(s.dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func isStackDir(dir string) bool {
	for _, f := range []string{fileName, "db/cluster.json", "conf"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// checkPorts fails early, naming the address, when a port the stack needs
// is taken (by a stack already running with the defaults, say).
func (s *Stack) checkPorts(dbPorts bool) error {
	c := s.cfg
	if s.opt.NetNS {
		// Everything else listens inside the hosts.
		ln, err := net.Listen("tcp", c.Dashboard)
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		return ln.Close()
	}
	addrs := []string{c.Dashboard, c.Front, c.FrontTLS, c.DB.Writes, c.DB.Reads, c.DB.Manager}
	for _, l := range c.LBs {
		addrs = append(addrs, l.Admin)
	}
	for _, w := range c.Webs {
		addrs = append(addrs, w.Listen, w.Admin)
	}
	if dbPorts {
		for i := 0; i <= c.Replicas; i++ {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", c.DB.BasePort+i))
		}
	}
	var busy []string
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			busy = append(busy, a)
			continue
		}
		ln.Close()
	}
	for _, l := range c.LBs {
		pc, err := net.ListenPacket("udp", l.VRRPListen)
		if err != nil {
			busy = append(busy, "udp "+l.VRRPListen)
			continue
		}
		pc.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("address already in use: %s (another fulcrum up? change them with -c stack.yaml)", strings.Join(busy, ", "))
	}
	return nil
}

// Run starts the stack, serves the dashboard and watches the stack until
// ctx ends; then it stops every child and database node. It returns an
// error when the stack could not start (after stopping what did).
func (s *Stack) Run(ctx context.Context) (err error) {
	s.started = time.Now()
	if err := s.prepareDir(); err != nil {
		return err
	}
	if s.log == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, "logs", "up.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		s.log = slog.New(slog.NewTextHandler(f, nil))
	}
	_, statErr := os.Stat(filepath.Join(s.dir, "db", "cluster.json"))
	if err := s.checkPorts(statErr != nil); err != nil {
		return err
	}
	s.state = State{Dir: s.dir, Dashboard: s.cfg.Dashboard, Front: s.cfg.Front,
		DBWrites: s.cfg.DB.Writes, DBReads: s.cfg.DB.Reads}
	if s.dash, err = net.Listen("tcp", s.cfg.Dashboard); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(s.dash) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		// Only our own: a stack started since from the same directory
		// keeps its file.
		if f, err := ReadFile(s.dir); err == nil && f.PID == os.Getpid() {
			os.Remove(filepath.Join(s.dir, fileName))
		}
	}()
	defer s.removeNet()
	netCtx, stopDialer := context.WithCancel(context.Background())
	s.netCtx = netCtx
	defer stopDialer()
	defer s.stopAll()
	if err := s.start(ctx); err != nil {
		return err
	}
	s.poll(ctx)
	if w := s.opt.Out; w != nil {
		s.printIntro(w)
	}
	s.watch(ctx)
	return nil
}

func (s *Stack) start(ctx context.Context) error {
	s.event("stack", "", "starting the stack in %s", s.dir)
	dbCfg := dbha.LocalConfig{Dir: filepath.Join(s.dir, "db"), Nodes: s.cfg.Replicas + 1,
		BasePort: s.cfg.DB.BasePort, Logger: s.log.With("component", "db")}
	if s.opt.NetNS {
		if err := s.startNet(); err != nil {
			return err
		}
		dbCfg.BasePort = firewall.DBPort
		dbCfg.Hosts, dbCfg.NetNS = dbHosts(s.cfg)
	}
	if err := checkPlacement(dbCfg); err != nil {
		return err
	}
	// Every hop is encrypted: the nodes require TLS, with certificates
	// from the local CA.
	dbTLS, err := localTLS(s.dir)
	if err != nil {
		return err
	}
	dbCfg.TLS = dbTLS
	begin := time.Now()
	l, err := dbha.StartLocal(ctx, dbCfg)
	s.local = l
	if err != nil {
		return fmt.Errorf("starting the database: %w", err)
	}
	// More replicas asked of an existing cluster: each new one starts from
	// a dump of the primary. Fewer: the cluster keeps its nodes.
	for len(l.Nodes()) < s.cfg.Replicas+1 {
		n, err := l.AddNode(ctx)
		if err != nil {
			return fmt.Errorf("adding a replica to the cluster in %s: %w", l.Dir(), err)
		}
		s.event("db", n.Name, "replica %s added on %s", n.Name, n.Addr)
	}
	nodes := l.Nodes()
	if len(nodes) > s.cfg.Replicas+1 {
		s.event("stack", "", "the cluster in %s keeps its %d nodes (asked for %d replicas; --fresh starts anew)",
			l.Dir(), len(nodes), s.cfg.Replicas)
	}
	for _, n := range nodes {
		s.nodeRunning[n.Name] = true
	}
	s.event("db", "", "database nodes up in %v: %s (primary %s)", time.Since(begin).Round(time.Millisecond),
		strings.Join(nodeAddrs(nodes), ", "), l.Addrs()[0])
	creds := l.Credentials()
	if err := createDatabase(ctx, l, creds, s.cfg.DB.Name); err != nil {
		return err
	}
	// The local CA both load balancers issue the HTTPS front's certificate
	// from: made here, once, so that they never race to create it.
	if s.caPath, err = edge.LocalCA(s.dir); err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	if err := webCerts(s.dir, s.cfg); err != nil {
		return err
	}
	if s.files, err = writeConfigs(s.dir, s.cfg, nodes, creds, s.net != nil); err != nil {
		return err
	}
	add := func(name, kind string, args ...string) {
		c := &child{name: name, kind: kind, exe: s.opt.Exe, args: args, netns: s.hostNS(name),
			log: filepath.Join(s.dir, "logs", name+".log"), onExit: s.exited}
		s.children = append(s.children, c)
		s.byName[name] = c
	}
	for _, lb := range s.cfg.LBs {
		add(lb.Name, "lb", "lb", "-c", s.files.lb[lb.Name])
	}
	for _, w := range s.cfg.Webs {
		add(w.Name, "web", "web", "-c", s.files.web[w.Name])
	}
	add("manager", "manager", "db", "manage", "-c", s.files.db)
	// The manager and the web servers first, then the preferred master,
	// so that it takes the front address before its peer starts.
	for _, name := range append([]string{"manager"}, webNames(s.cfg)...) {
		if err := s.byName[name].start(); err != nil {
			return err
		}
	}
	if err := s.byName[s.cfg.LBs[0].Name].start(); err != nil {
		return err
	}
	s.waitListening(ctx, s.cfg.Front, 5*time.Second)
	if err := s.byName[s.cfg.LBs[1].Name].start(); err != nil {
		return err
	}
	if err := s.writeFile(); err != nil {
		return err
	}
	s.waitHealthy(ctx, 20*time.Second)
	s.event("stack", "", "stack up in %v", time.Since(s.started).Round(time.Millisecond))
	return nil
}

func webNames(c *config.Stack) []string {
	var out []string
	for _, w := range c.Webs {
		out = append(out, w.Name)
	}
	return out
}

// dial connects from where the stack's parts are reached: this machine,
// or the monitor host with --netns.
func (s *Stack) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.http.Transport.(*http.Transport).DialContext(ctx, network, addr)
}

func (s *Stack) waitListening(ctx context.Context, addr string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		c, err := s.dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy waits until the site answers through the front address and
// every web server reports healthy, or limit passes (the stack then runs
// anyway: the dashboard shows what is not healthy).
func (s *Stack) waitHealthy(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s.poll(ctx)
		st := s.State()
		ok := st.FrontUp && st.Primary != ""
		for _, w := range st.Webs {
			ok = ok && w.Healthy
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// createDatabase creates the application's database on the primary and
// grants the application user on it: the application user may create
// tables, not databases. It connects as root through the primary's unix
// socket, which no firewall between the hosts stands in the way of.
func createDatabase(ctx context.Context, l *dbha.Local, c dbha.Credentials, name string) error {
	primary := l.Addrs()[0]
	var sock string
	for _, n := range l.Nodes() {
		if n.Addr == primary {
			sock = n.Socket()
		}
	}
	mc := mysql.NewConfig()
	mc.User, mc.Net, mc.Addr, mc.Timeout = "root", "unix", sock, 5*time.Second
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + name + "`",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES ON `" +
			name + "`.* TO '" + c.AppUser + "'@'%'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating database %s on %s: %w", name, primary, err)
		}
	}
	return nil
}

// stopAll stops every child (SIGTERM, SIGKILL after a grace) and every
// database node, within about 12 seconds.
func (s *Stack) stopAll() {
	var wg sync.WaitGroup
	for _, c := range s.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(4 * time.Second)
		}()
	}
	wg.Wait()
	if s.local == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_ = s.local.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(7 * time.Second):
		for _, n := range s.local.Nodes() {
			_ = s.local.Kill(n.Name)
		}
		<-done
	}
	s.event("stack", "", "stack stopped")
}

// removeNet removes the hosts once nothing runs in them.
func (s *Stack) removeNet() {
	if s.net == nil {
		return
	}
	if err := s.net.Remove(); err != nil {
		s.event("stack", "", "removing the hosts: %v", err)
		return
	}
	s.event("stack", "", "hosts removed")
}

// exited reports a child that died (chaos or crash).
func (s *Stack) exited(c *child, err error) {
	s.event("down", c.name, "%s (%s) %s; not restarted: `fulcrum chaos restore %s` brings it back", c.name, c.kind, describeExit(err), c.name)
	_ = s.writeFile()
}

// event records an event and logs it.
func (s *Stack) event(kind, component, format string, args ...any) {
	e := Event{Time: time.Now(), Kind: kind, Component: component, Message: fmt.Sprintf(format, args...)}
	s.mu.Lock()
	s.events = append(s.events, e)
	if over := len(s.events) - maxEvents; over > 0 {
		s.events = append([]Event(nil), s.events[over:]...)
	}
	s.mu.Unlock()
	if s.log != nil {
		s.log.Info(e.Message, "event", kind, "component", component)
	}
}

// Events returns the recorded events, oldest first.
func (s *Stack) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// State returns the last polled state with the recent events.
func (s *Stack) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.LBs = append([]LBState(nil), st.LBs...)
	st.Webs = append([]WebState(nil), st.Webs...)
	st.DB = append([]DBNode(nil), st.DB...)
	evs := s.events
	if len(evs) > 50 {
		evs = evs[len(evs)-50:]
	}
	st.Events = append([]Event(nil), evs...)
	return st
}

func (s *Stack) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if s.files != nil && s.files.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.files.token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v)
}

// sortedKeys is for deterministic event order.
func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
