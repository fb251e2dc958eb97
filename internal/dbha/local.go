package dbha

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LocalConfig describes a cluster of mariadbd processes on this machine.
type LocalConfig struct {
	// Dir holds one directory per node, cluster.json and cluster.env.
	Dir string
	// Nodes is the number of nodes of a new cluster (default 3). An existing
	// Dir keeps its nodes.
	Nodes int
	// BasePort is the port of the first node; node i listens on BasePort+i
	// (default 13306). With Hosts every node listens on BasePort.
	BasePort int
	// FreePorts picks an unused port for each node instead of BasePort+i,
	// so that concurrent test clusters never collide.
	FreePorts bool
	// Host is the address the nodes listen on (default 127.0.0.1).
	Host string
	// Hosts, when set, gives node i its own address Hosts[i] instead of
	// Host: one host per node, as on separate machines.
	Hosts []string
	// NetNS, when set, runs node i inside the network namespace NetNS[i]
	// (a name under /run/netns, as `ip netns add` makes), so that it is
	// reachable only on that namespace's network.
	NetNS []string
	// SemiSyncTimeout is rpl_semi_sync_master_timeout: how long a commit
	// waits for a replica's acknowledgement before semi-sync falls back to
	// asynchronous (default 5s).
	SemiSyncTimeout time.Duration
	// TLS, when set, encrypts every network connection to the nodes: each
	// node gets a server certificate for its address and requires secure
	// transport (TCP logins without TLS are refused; the unix socket counts
	// as secure), and replicas connect to their primary with TLS, verifying
	// its certificate. An existing cluster started with TLS keeps it.
	TLS *LocalTLS
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// LocalTLS gives the nodes of a local cluster their certificates.
type LocalTLS struct {
	// CA is the PEM file of the authority that signs the nodes'
	// certificates: replicas, the manager and applications verify the
	// nodes with it (required).
	CA string
	// Issue writes a server certificate for names (the node's host: an IP
	// address or a DNS name), signed by CA, to certFile and its private
	// key to keyFile (required). It is called at every start of a node,
	// so a long-lived cluster never runs on an expired certificate.
	Issue func(names []string, certFile, keyFile string) error
}

// Credentials are the users a local cluster creates.
type Credentials struct {
	// AdminUser has every privilege, with GRANT OPTION: it creates databases
	// and grants privileges on them, and the manager uses it.
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	// ReplUser has REPLICATION SLAVE only; replicas connect as it.
	ReplUser     string `json:"repl_user"`
	ReplPassword string `json:"repl_password"`
	// AppUser may read and write the tables of Database and read replication
	// status (SLAVE MONITOR, for lag-aware routing); it never has SUPER or
	// READ ONLY ADMIN, so a write to a read-only node fails with error 1290.
	AppUser     string `json:"app_user"`
	AppPassword string `json:"app_password"`
	Database    string `json:"database"`
}

// LocalNode is one mariadbd of a local cluster.
type LocalNode struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	ServerID int    `json:"server_id"`
	// Addr is host:port.
	Addr string `json:"addr"`
	// Dir holds the node's data directory, socket, pid file, error log
	// and tmpdir.
	Dir string `json:"dir"`
	// NetNS is the network namespace the node runs in ("": this one).
	NetNS string `json:"netns,omitempty"`
}

func (n LocalNode) dataDir() string  { return filepath.Join(n.Dir, "data") }
func (n LocalNode) socket() string   { return filepath.Join(n.Dir, "mysql.sock") }
func (n LocalNode) pidFile() string  { return filepath.Join(n.Dir, "mariadbd.pid") }
func (n LocalNode) errLog() string   { return filepath.Join(n.Dir, "error.log") }
func (n LocalNode) certFile() string { return filepath.Join(n.Dir, "server-cert.pem") }
func (n LocalNode) keyFile() string  { return filepath.Join(n.Dir, "server-key.pem") }

// tmpDir is the node's own: a mariadbd deletes every #sql file in its
// tmpdir when it starts, so in a shared /tmp one server starting would
// delete the temporary tables of the others as they run.
func (n LocalNode) tmpDir() string { return filepath.Join(n.Dir, "tmp") }

// localState is cluster.json: what Dir holds, so that start, stop and manage
// agree across processes.
type localState struct {
	Nodes           []LocalNode `json:"nodes"`
	Credentials     Credentials `json:"credentials"`
	Primary         string      `json:"primary"`
	SemiSyncTimeout string      `json:"semi_sync_timeout"`
	FreePorts       bool        `json:"free_ports,omitempty"`
	// TLSCA is the CA file of the nodes' certificates ("": no TLS).
	TLSCA string `json:"tls_ca,omitempty"`
}

// Local is a cluster of mariadbd processes in a directory.
type Local struct {
	dir string
	log *slog.Logger
	// issue makes a node's certificate (nil: the certificates on disk are
	// used as they are).
	issue func(names []string, certFile, keyFile string) error

	// mu guards the fields below.
	mu    sync.Mutex
	state localState
	procs map[string]*proc // processes this Local started
}

type proc struct {
	pid  int
	done chan struct{}
}

const (
	stateFile = "cluster.json"
	envFile   = "cluster.env"
)

// StartLocal creates a cluster in cfg.Dir and starts it, or, when cfg.Dir
// already holds one, starts its nodes again with their data and roles. It
// returns once the primary is writable and every replica replicates.
func StartLocal(ctx context.Context, cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		return nil, errors.New("dbha: local cluster: a directory is required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 || cfg.Nodes > 9 {
		return nil, fmt.Errorf("dbha: local cluster: %d nodes: must be 1..9", cfg.Nodes)
	}
	if (cfg.Hosts != nil && len(cfg.Hosts) != cfg.Nodes) || (cfg.NetNS != nil && len(cfg.NetNS) != cfg.Nodes) {
		return nil, fmt.Errorf("dbha: local cluster: %d nodes but %d hosts and %d namespaces", cfg.Nodes, len(cfg.Hosts), len(cfg.NetNS))
	}
	if cfg.BasePort == 0 {
		cfg.BasePort = 13306
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.SemiSyncTimeout == 0 {
		cfg.SemiSyncTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t := cfg.TLS; t != nil && (t.CA == "" || t.Issue == nil) {
		return nil, errors.New("dbha: local cluster: tls needs a CA file and an Issue function")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		l, err := OpenLocal(dir, cfg.Logger)
		if err != nil {
			return nil, err
		}
		if cfg.TLS != nil {
			if err := l.setTLS(cfg.TLS); err != nil {
				return l, err
			}
		}
		return l, l.restart(ctx)
	}
	l := &Local{dir: dir, log: cfg.Logger, procs: map[string]*proc{}}
	return l, l.create(ctx, cfg)
}

// OpenLocal reads the cluster in dir without starting anything: to stop it,
// manage it or inspect it.
func OpenLocal(dir string, logger *slog.Logger) (*Local, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("dbha: %s holds no local cluster: %w", dir, err)
	}
	l := &Local{dir: dir, log: logger, procs: map[string]*proc{}}
	if err := json.Unmarshal(data, &l.state); err != nil {
		return nil, fmt.Errorf("dbha: %s: %w", filepath.Join(dir, stateFile), err)
	}
	if len(l.state.Nodes) == 0 {
		return nil, fmt.Errorf("dbha: %s: no nodes", filepath.Join(dir, stateFile))
	}
	return l, nil
}

// Dir returns the cluster's directory.
func (l *Local) Dir() string { return l.dir }

// setTLS turns TLS on for an existing cluster, or changes its CA. Replicas
// attached without TLS are attached again by restart, which sees the
// change in their SHOW SLAVE STATUS.
func (l *Local) setTLS(t *LocalTLS) error {
	ca, err := filepath.Abs(t.CA)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.issue = t.Issue
	l.state.TLSCA = ca
	l.mu.Unlock()
	return l.save()
}

// TLSCA returns the CA file the nodes' certificates chain to, or "" when
// the cluster runs without TLS.
func (l *Local) TLSCA() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.TLSCA
}

// ClientTLS returns the TLS configuration that verifies the nodes'
// certificates (ServerName empty: the driver checks each node's host), or
// nil when the cluster runs without TLS.
func (l *Local) ClientTLS() (*tls.Config, error) {
	ca := l.TLSCA()
	if ca == "" {
		return nil, nil
	}
	return ClientTLS(ca, "")
}

// ClientTLS returns a TLS configuration (TLS 1.2 or later) that verifies
// a server's certificate against the CAs in the PEM file caFile and, when
// serverName is set, checks that name instead of the host the connection
// dials.
func ClientTLS(caFile, serverName string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("dbha: tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("dbha: tls: %s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// Nodes returns the nodes in creation order.
func (l *Local) Nodes() []LocalNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LocalNode(nil), l.state.Nodes...)
}

// Credentials returns the users the cluster was created with.
func (l *Local) Credentials() Credentials {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.Credentials
}

// Addrs returns every node's host:port, the last known primary first.
func (l *Local) Addrs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, n := range l.state.Nodes {
		if n.Name == l.state.Primary {
			out = append([]string{n.Addr}, out...)
		} else {
			out = append(out, n.Addr)
		}
	}
	return out
}

// ManagerConfig returns a manager configuration for this cluster, with
// auto-rejoin on and SetPrimary wired so that cluster.env follows failovers.
func (l *Local) ManagerConfig() Config {
	c := l.Credentials()
	cfg := Config{
		AdminUser: c.AdminUser, AdminPassword: c.AdminPassword,
		ReplUser: c.ReplUser, ReplPassword: c.ReplPassword,
		ReplicationCA: l.TLSCA(),
		AutoRejoin:    true,
		Logger:        l.log,
		OnPrimaryChange: func(_, newName string) {
			if err := l.SetPrimary(newName); err != nil {
				l.log.Warn("recording the new primary", "err", err)
			}
		},
	}
	for _, n := range l.Nodes() {
		cfg.Nodes = append(cfg.Nodes, NodeConfig{Name: n.Name, Addr: n.Addr})
	}
	if tc, err := l.ClientTLS(); err != nil {
		// Left nil, the manager still encrypts (unverified); its
		// connections say what is wrong with the CA file if they fail.
		l.log.Warn("the manager cannot verify the nodes", "err", err)
	} else {
		cfg.TLS = tc
	}
	return cfg
}

// SetPrimary records name as the primary in cluster.json and cluster.env.
func (l *Local) SetPrimary(name string) error {
	l.mu.Lock()
	l.state.Primary = name
	l.mu.Unlock()
	return l.save()
}

func (l *Local) node(name string) (LocalNode, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.state.Nodes {
		if n.Name == name || n.Addr == name {
			return n, nil
		}
	}
	return LocalNode{}, fmt.Errorf("dbha: no node %q in %s", name, l.dir)
}

func (l *Local) save() error {
	l.mu.Lock()
	st := l.state
	l.mu.Unlock()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(l.dir, stateFile), append(data, '\n')); err != nil {
		return err
	}
	c := st.Credentials
	env := fmt.Sprintf("# fulcrum local MariaDB cluster; source this file.\n"+
		"FULCRUM_DB_NODES=%s\nFULCRUM_DB_ADMIN_USER=%s\nFULCRUM_DB_ADMIN_PASSWORD=%s\n"+
		"FULCRUM_DB_APP_USER=%s\nFULCRUM_DB_APP_PASSWORD=%s\nFULCRUM_DB_REPL_USER=%s\n"+
		"FULCRUM_DB_REPL_PASSWORD=%s\nFULCRUM_DB_NAME=%s\n",
		strings.Join(l.Addrs(), ","), c.AdminUser, c.AdminPassword, c.AppUser, c.AppPassword,
		c.ReplUser, c.ReplPassword, c.Database)
	if st.TLSCA != "" {
		// The nodes refuse TCP logins without TLS: mariadb --ssl-ca=… --ssl-verify-server-cert.
		env += "FULCRUM_DB_SSL_CA=" + st.TLSCA + "\n"
	}
	return writeFileAtomic(filepath.Join(l.dir, envFile), []byte(env))
}

// writeFileAtomic writes a 0600 file through a rename, so a reader never
// sees half of it and the secrets are never world-readable.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func randomSecret() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func (l *Local) create(ctx context.Context, cfg LocalConfig) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	st := localState{
		Credentials: Credentials{
			AdminUser: "fulcrum_admin", AdminPassword: randomSecret(),
			ReplUser: "fulcrum_repl", ReplPassword: randomSecret(),
			AppUser: "fulcrum_app", AppPassword: randomSecret(),
			Database: "fulcrum",
		},
		SemiSyncTimeout: cfg.SemiSyncTimeout.String(),
		FreePorts:       cfg.FreePorts,
	}
	if cfg.TLS != nil {
		ca, err := filepath.Abs(cfg.TLS.CA)
		if err != nil {
			return err
		}
		st.TLSCA, l.issue = ca, cfg.TLS.Issue
	}
	for i := 0; i < cfg.Nodes; i++ {
		name := "db" + strconv.Itoa(i+1)
		host, port := cfg.Host, cfg.BasePort+i
		if cfg.Hosts != nil {
			host, port = cfg.Hosts[i], cfg.BasePort
		}
		if cfg.FreePorts {
			var err error
			if port, err = freePort(host); err != nil {
				return err
			}
		}
		n := LocalNode{
			Name: name, Port: port, ServerID: i + 1,
			Addr: net.JoinHostPort(host, strconv.Itoa(port)),
			Dir:  filepath.Join(l.dir, name),
		}
		if cfg.NetNS != nil {
			n.NetNS = cfg.NetNS[i]
		}
		st.Nodes = append(st.Nodes, n)
	}
	st.Primary = st.Nodes[0].Name
	// sun_path holds 108 bytes with its NUL; mariadbd would fail late.
	if sock := st.Nodes[len(st.Nodes)-1].socket(); len(sock) > 107 {
		return fmt.Errorf("dbha: socket path %s: %d bytes, a unix socket allows 107; choose a shorter directory", sock, len(sock))
	}
	l.state = st
	// One mariadb-install-db, copied: the system tables hold nothing
	// node-specific, and a copy takes milliseconds.
	first := st.Nodes[0]
	if err := os.MkdirAll(first.Dir, 0o700); err != nil {
		return err
	}
	if err := installDB(ctx, first); err != nil {
		return err
	}
	l.log.Info("data directory initialised", "node", first.Name)
	for _, n := range st.Nodes[1:] {
		if err := os.MkdirAll(n.Dir, 0o700); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, "cp", "-a", first.dataDir(), n.dataDir()).CombinedOutput(); err != nil {
			return fmt.Errorf("dbha: copying the data directory to %s: %v: %s", n.Name, err, out)
		}
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := l.startAll(ctx); err != nil {
		return err
	}
	l.log.Info("nodes started", "nodes", len(st.Nodes))
	return l.bootstrap(ctx)
}

func installDB(ctx context.Context, n LocalNode) error {
	dataDir := n.dataDir()
	if err := os.MkdirAll(n.tmpDir(), 0o700); err != nil {
		return err
	}
	var err error
	for try := 0; try < 2; try++ {
		if try > 0 {
			// A bootstrap that failed (seen under heavy load) leaves a
			// partial directory; start again from nothing.
			os.RemoveAll(dataDir)
		}
		cmd := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+dataDir,
			"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
			"--tmpdir="+n.tmpDir(), "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M")
		out, runErr := cmd.CombinedOutput()
		if runErr == nil {
			return nil
		}
		err = fmt.Errorf("dbha: mariadb-install-db --datadir=%s: %v: %s", dataDir, runErr, errorLines(string(out)))
	}
	return err
}

// errorLines picks the lines of a program's output that say what failed.
func errorLines(out string) string {
	var picked []string
	for _, ln := range strings.Split(out, "\n") {
		if strings.Contains(ln, "ERROR") || strings.Contains(ln, "rror:") || strings.Contains(ln, "FATAL") {
			picked = append(picked, strings.TrimSpace(ln))
		}
	}
	if len(picked) == 0 {
		return lastLines(out, 5)
	}
	if len(picked) > 5 {
		picked = picked[:5]
	}
	return strings.Join(picked, " | ")
}

// serverArgs are the replication settings of issue 3. Every node starts
// read-only and with --init-rpl-role=SLAVE: a former primary coming back
// is fenced, and its binlog is truncated to what it had committed, so
// transactions no replica acknowledged cannot diverge it (MariaDB 10.11.9+,
// MDEV-21117). Only the manager clears read_only.
func (l *Local) serverArgs(n LocalNode) []string {
	l.mu.Lock()
	semi := l.state.SemiSyncTimeout
	l.mu.Unlock()
	d, err := time.ParseDuration(semi)
	if err != nil || d <= 0 {
		d = 5 * time.Second
	}
	host, _, _ := net.SplitHostPort(n.Addr)
	var tlsArgs []string
	if ca := l.TLSCA(); ca != "" {
		// Secure transport is required of TCP clients only: the root
		// connections over the unix socket still work without TLS.
		tlsArgs = []string{"--ssl-ca=" + ca, "--ssl-cert=" + n.certFile(), "--ssl-key=" + n.keyFile(),
			"--require-secure-transport=ON"}
	}
	return append([]string{
		"--no-defaults", "--datadir=" + n.dataDir(), "--socket=" + n.socket(),
		"--port=" + strconv.Itoa(n.Port), "--bind-address=" + host, "--user=root",
		"--pid-file=" + n.pidFile(), "--log-error=" + n.errLog(), "--tmpdir=" + n.tmpDir(),
		"--server-id=" + strconv.Itoa(n.ServerID),
		"--log-bin=mysql-bin", "--relay-log=relay-bin", "--log-slave-updates",
		"--binlog-format=ROW", "--gtid-strict-mode=1", "--sync-binlog=1",
		"--read-only=1", "--init-rpl-role=SLAVE",
		"--rpl-semi-sync-slave-enabled=1", "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
		"--rpl-semi-sync-master-timeout=" + strconv.FormatInt(d.Milliseconds(), 10),
		"--slave-net-timeout=4", "--skip-name-resolve",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
		"--performance-schema=0", "--max-connections=200",
	}, tlsArgs...)
}

func (l *Local) startAll(ctx context.Context) error {
	nodes := l.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.StartNode(ctx, n.Name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Running reports whether the node's mariadbd is alive.
func (l *Local) Running(name string) bool {
	n, err := l.node(name)
	if err != nil {
		return false
	}
	return l.pidOf(n) > 0
}

// pidOf returns the pid of n's live mariadbd, or 0.
func (l *Local) pidOf(n LocalNode) int {
	l.mu.Lock()
	p := l.procs[n.Name]
	l.mu.Unlock()
	if p != nil {
		select {
		case <-p.done:
		default:
			return p.pid
		}
	}
	data, err := os.ReadFile(n.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "mariadbd" {
		return 0
	}
	// A zombie is not alive.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return 0
		}
	}
	return pid
}

// StartNode starts the named node (name or host:port) unless it runs, and
// waits until it answers. It starts read-only, as a replica would.
func (l *Local) StartNode(ctx context.Context, name string) error {
	n, err := l.node(name)
	if err != nil {
		return err
	}
	if l.pidOf(n) == 0 {
		if err := l.certify(n); err != nil {
			return err
		}
		// A directory made before nodes had a tmpdir of their own.
		if err := os.MkdirAll(n.tmpDir(), 0o700); err != nil {
			return err
		}
		cmd := exec.Command("mariadbd", l.serverArgs(n)...)
		if n.NetNS != "" {
			// ip execs mariadbd in the namespace: the pid stays the same.
			cmd = exec.Command("ip", append([]string{"netns", "exec", n.NetNS, "mariadbd"}, l.serverArgs(n)...)...)
		}
		// Its own session: a Ctrl-C meant for the fulcrum command that
		// started it does not reach the database.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("dbha: starting %s: %w", n.Name, err)
		}
		p := &proc{pid: cmd.Process.Pid, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()
		l.mu.Lock()
		l.procs[n.Name] = p
		l.mu.Unlock()
	}
	return l.waitReady(ctx, n)
}

// certify gives a TLS cluster's node a new certificate for its host before
// it starts. Without an issuer (a cluster opened by OpenLocal) the one on
// disk must do.
func (l *Local) certify(n LocalNode) error {
	l.mu.Lock()
	ca, issue := l.state.TLSCA, l.issue
	l.mu.Unlock()
	if ca == "" {
		return nil
	}
	if issue == nil {
		if _, err := os.Stat(n.certFile()); err != nil {
			return fmt.Errorf("dbha: %s: TLS on but no certificate: %w", n.Name, err)
		}
		return nil
	}
	host, _, _ := net.SplitHostPort(n.Addr)
	if err := issue([]string{host}, n.certFile(), n.keyFile()); err != nil {
		return fmt.Errorf("dbha: %s: certificate for %s: %w", n.Name, host, err)
	}
	return nil
}

func (l *Local) rootDB(n LocalNode) (*sql.DB, error) {
	return sql.Open("mysql", "root@unix("+n.socket()+")/?timeout=2s&multiStatements=true")
}

func (l *Local) waitReady(ctx context.Context, n LocalNode) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := l.rootDB(n)
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		if err := db.PingContext(ctx); err == nil {
			return nil
		}
		l.mu.Lock()
		p := l.procs[n.Name]
		l.mu.Unlock()
		if p != nil {
			select {
			case <-p.done:
				return fmt.Errorf("dbha: %s exited at start-up; %s says: %s", n.Name, n.errLog(), tailFile(n.errLog(), 5))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dbha: %s does not answer on %s: %w; %s says: %s", n.Name, n.socket(), ctx.Err(), n.errLog(), tailFile(n.errLog(), 5))
		case <-time.After(30 * time.Millisecond):
		}
	}
}

func tailFile(path string, lines int) string {
	data, _ := os.ReadFile(path)
	return lastLines(string(data), lines)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// Kill sends SIGKILL to the node's mariadbd, as a crash would, and waits
// until it is gone.
func (l *Local) Kill(name string) error { return l.signal(name, syscall.SIGKILL, 10*time.Second) }

// StopNode stops the node cleanly (SIGTERM), waiting up to 60s.
func (l *Local) StopNode(name string) error { return l.signal(name, syscall.SIGTERM, 60*time.Second) }

func (l *Local) signal(name string, sig syscall.Signal, wait time.Duration) error {
	n, err := l.node(name)
	if err != nil {
		return err
	}
	pid := l.pidOf(n)
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("dbha: signalling %s (pid %d): %w", n.Name, pid, err)
	}
	deadline := time.Now().Add(wait)
	for l.pidOf(n) != 0 {
		if time.Now().After(deadline) {
			if sig != syscall.SIGKILL {
				return l.signal(name, syscall.SIGKILL, 10*time.Second)
			}
			return fmt.Errorf("dbha: %s (pid %d) still runs %v after signal %v", n.Name, pid, wait, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Stop stops every node cleanly.
func (l *Local) Stop() error {
	nodes := l.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.StopNode(n.Name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bootstrap creates the users on the primary, attaches the replicas and
// turns semi-sync on once they are attached.
func (l *Local) bootstrap(ctx context.Context) error {
	nodes := l.Nodes()
	c := l.Credentials()
	prim := nodes[0]
	db, err := l.rootDB(prim)
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []string{
		"SET GLOBAL read_only=0",
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s", quote(c.AdminUser), quote(c.AdminPassword)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", quote(c.AdminUser)),
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s", quote(c.ReplUser), quote(c.ReplPassword)),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO %s@'%%'", quote(c.ReplUser)),
		fmt.Sprintf("CREATE DATABASE %s", quoteIdent(c.Database)),
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s", quote(c.AppUser), quote(c.AppPassword)),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, "+
			"CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, REFERENCES ON %s.* TO %s@'%%'",
			quoteIdent(c.Database), quote(c.AppUser)),
		fmt.Sprintf("GRANT SLAVE MONITOR ON *.* TO %s@'%%'", quote(c.AppUser)),
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("dbha: bootstrap on %s: %s: %w", prim.Name, redact(s), err)
		}
	}
	l.log.Info("users created", "node", prim.Name)
	for _, n := range nodes[1:] {
		if err := l.attach(ctx, n, prim, false); err != nil {
			return err
		}
	}
	l.log.Info("replicas attached", "replicas", len(nodes)-1)
	if err := l.finishPrimary(ctx, prim, len(nodes) > 1); err != nil {
		return err
	}
	return l.waitReplicas(ctx, prim)
}

// attach points n at prim with GTID replication and starts it. A node
// without replication history (a former primary) takes its own binlog
// position as its replication position first.
func (l *Local) attach(ctx context.Context, n, prim LocalNode, fromBinlog bool) error {
	c := l.Credentials()
	db, err := l.rootDB(n)
	if err != nil {
		return err
	}
	defer db.Close()
	host, port, _ := net.SplitHostPort(prim.Addr)
	// STOP SLAVE on a node without replication is only a warning.
	stmts := []string{"STOP SLAVE", "SET GLOBAL read_only=1", "SET GLOBAL rpl_semi_sync_master_enabled=0"}
	if fromBinlog {
		stmts = append(stmts, "SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos")
	}
	stmts = append(stmts, changeMaster(host, port, c.ReplUser, c.ReplPassword, l.TLSCA()), "START SLAVE")
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("dbha: attaching %s to %s: %s: %w", n.Name, prim.Name, redact(s), err)
		}
	}
	return nil
}

// finishPrimary turns master-side semi-sync on once a replica is attached
// (on before, every commit would wait for the timeout) and makes prim
// writable.
func (l *Local) finishPrimary(ctx context.Context, prim LocalNode, replicas bool) error {
	db, err := l.rootDB(prim)
	if err != nil {
		return err
	}
	defer db.Close()
	if replicas {
		if _, err := db.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled=1"); err != nil {
			return fmt.Errorf("dbha: %s: enabling semi-sync: %w", prim.Name, err)
		}
		if !waitSemiSyncClients(ctx, db, 10*time.Second) {
			l.log.Warn("no semi-sync replica attached within 10s", "node", prim.Name)
		}
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL read_only=0"); err != nil {
		return fmt.Errorf("dbha: %s: clearing read_only: %w", prim.Name, err)
	}
	return l.SetPrimary(prim.Name)
}

// restart starts the nodes of an existing cluster and gives them back their
// roles: the primary writable, every other node a replica of it. The
// servers say who the primary is (a manager may have failed over since
// cluster.json was written); cluster.json decides only when they cannot.
func (l *Local) restart(ctx context.Context) error {
	if err := l.startAll(ctx); err != nil {
		return err
	}
	prim, err := l.findPrimary(ctx)
	if err != nil {
		return err
	}
	if prim, err = l.mostAdvanced(ctx, prim); err != nil {
		return err
	}
	others := 0
	for _, n := range l.Nodes() {
		if n.Name == prim.Name {
			continue
		}
		others++
		db, err := l.rootDB(n)
		if err != nil {
			return err
		}
		rs, err := readReplica(ctx, db)
		db.Close()
		if err != nil {
			return fmt.Errorf("dbha: %s: %w", n.Name, err)
		}
		if rs == nil || rs.MasterAddr() != prim.Addr || (l.TLSCA() != "" && !rs.SSL) {
			if err := l.attach(ctx, n, prim, rs == nil); err != nil {
				return err
			}
		}
	}
	if err := l.finishPrimary(ctx, prim, others > 0); err != nil {
		return err
	}
	return l.waitReplicas(ctx, prim)
}

// mostAdvanced returns prim, unless a replica has applied transactions
// prim lacks (a crashed primary's binlog is truncated to what it had
// committed, and a replica may have received more): then that replica,
// the most advanced, stopped from replicating so that it can lead.
func (l *Local) mostAdvanced(ctx context.Context, prim LocalNode) (LocalNode, error) {
	pos := func(n LocalNode, v string) (Position, error) {
		db, err := l.rootDB(n)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		var s string
		if err := db.QueryRowContext(ctx, "SELECT "+v).Scan(&s); err != nil {
			return nil, fmt.Errorf("dbha: %s: %w", n.Name, err)
		}
		return ParsePosition(s)
	}
	best, err := pos(prim, "@@gtid_binlog_pos")
	if err != nil {
		return prim, err
	}
	chosen := prim
	for _, n := range l.Nodes() {
		if n.Name == prim.Name {
			continue
		}
		applied, err := pos(n, "@@gtid_slave_pos")
		if err != nil {
			return prim, err
		}
		if !best.Contains(applied) {
			chosen, best = n, applied
		}
	}
	if chosen.Name == prim.Name {
		return prim, nil
	}
	l.log.Warn("a replica is ahead of the primary; it becomes the primary", "primary", prim.Name, "replica", chosen.Name, "gtid", best.String())
	db, err := l.rootDB(chosen)
	if err != nil {
		return prim, err
	}
	defer db.Close()
	for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return prim, fmt.Errorf("dbha: %s: %s: %w", chosen.Name, q, err)
		}
	}
	return chosen, nil
}

// findPrimary asks the running nodes: the one writable node that
// replicates from nobody; else the node the replicas point to, if it
// replicates from nobody; else the primary recorded in cluster.json.
func (l *Local) findPrimary(ctx context.Context) (LocalNode, error) {
	nodes := l.Nodes()
	var writable []LocalNode
	votes := map[string]int{}
	free := map[string]bool{}
	for _, n := range nodes {
		db, err := l.rootDB(n)
		if err != nil {
			return LocalNode{}, err
		}
		var ro int
		err = db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro)
		var rs *ReplicaStatus
		if err == nil {
			rs, err = readReplica(ctx, db)
		}
		db.Close()
		if err != nil {
			return LocalNode{}, fmt.Errorf("dbha: %s: %w", n.Name, err)
		}
		if rs == nil {
			free[n.Name] = true
			if ro == 0 {
				writable = append(writable, n)
			}
			continue
		}
		votes[rs.MasterAddr()]++
	}
	if len(writable) == 1 {
		return writable[0], nil
	}
	best, bestVotes := LocalNode{}, 0
	for _, n := range nodes {
		if votes[n.Addr] > bestVotes && free[n.Name] {
			best, bestVotes = n, votes[n.Addr]
		}
	}
	if bestVotes > 0 {
		return best, nil
	}
	l.mu.Lock()
	name := l.state.Primary
	l.mu.Unlock()
	return l.node(name)
}

// waitReplicas waits until every replica has applied the primary's binlog,
// so that the users exist everywhere when StartLocal returns.
func (l *Local) waitReplicas(ctx context.Context, prim LocalNode) error {
	db, err := l.rootDB(prim)
	if err != nil {
		return err
	}
	defer db.Close()
	var pos string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return fmt.Errorf("dbha: %s: %w", prim.Name, err)
	}
	for _, n := range l.Nodes() {
		if n.Name == prim.Name {
			continue
		}
		rdb, err := l.rootDB(n)
		if err != nil {
			return err
		}
		var res sql.NullInt64
		err = rdb.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 20)", pos).Scan(&res)
		if err == nil && res.Int64 != 0 {
			rs, _ := readReplica(ctx, rdb)
			err = fmt.Errorf("not caught up with %s (%s) within 20s; replication: %+v", prim.Name, pos, rs)
		}
		if err == nil {
			// A replica restarted before its primary retries the connection
			// every second: wait until it is connected.
			err = waitIORunning(ctx, rdb, 20*time.Second)
		}
		rdb.Close()
		if err != nil {
			return fmt.Errorf("dbha: %s: %w", n.Name, err)
		}
	}
	return nil
}

func waitIORunning(ctx context.Context, db *sql.DB, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		rs, err := readReplica(ctx, db)
		if err != nil {
			return err
		}
		if rs == nil || rs.IORunning == "Yes" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replication IO thread %s after %v: %s", rs.IORunning, limit, rs.LastIOError)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitSemiSyncClients(ctx context.Context, db *sql.DB, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var name string
		var v int
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'").Scan(&name, &v); err == nil && v > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// changeMaster is the CHANGE MASTER statement of every replica: GTID from
// its own applied position, quick reconnection and heartbeats so a lost
// primary is noticed within a second or two. With ca (a CA file on the
// replica's machine) the replica connects with TLS and checks that the
// primary's certificate chains to ca and names MASTER_HOST; without it the
// TLS settings the replica had stay as they were.
func changeMaster(host, port, user, password, ca string) string {
	s := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
		quote(host), port, quote(user), quote(password))
	if ca != "" {
		s += ", MASTER_SSL=1, MASTER_SSL_CA=" + quote(ca) + ", MASTER_SSL_VERIFY_SERVER_CERT=1"
	}
	return s
}

// quote makes s a SQL string literal (statements such as CHANGE MASTER take
// no placeholders).
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// redact hides the password literals of a statement quoted in an error.
func redact(s string) string {
	for _, k := range []string{"IDENTIFIED BY ", "MASTER_PASSWORD="} {
		i := strings.Index(s, k)
		if i < 0 {
			continue
		}
		rest := s[i+len(k):]
		if !strings.HasPrefix(rest, "'") {
			continue
		}
		end := len(rest)
		for j := 1; j < len(rest); j++ {
			if rest[j] == '\\' {
				j++
				continue
			}
			if rest[j] == '\'' {
				end = j + 1
				break
			}
		}
		s = s[:i+len(k)] + "'…'" + rest[end:]
	}
	return s
}

// freePort returns a port nobody listens on at the moment.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
