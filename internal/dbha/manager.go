package dbha

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// NodeConfig is one node the manager watches.
type NodeConfig struct {
	// Name identifies the node in status, events and switchover (default:
	// Addr).
	Name string
	// Addr is host:port where the manager reaches the node.
	Addr string
	// ReplicationAddr is host:port where the other nodes reach it, when it
	// differs from Addr (default: Addr).
	ReplicationAddr string
}

// Config configures a Manager. Zero fields take the defaults written next
// to them.
type Config struct {
	Nodes []NodeConfig
	// AdminUser needs SUPER, READ ONLY ADMIN and the replication
	// privileges (the local cluster's admin user has ALL).
	AdminUser, AdminPassword string
	// ReplUser and ReplPassword go into CHANGE MASTER when the manager
	// repoints a replica.
	ReplUser, ReplPassword string
	// TLS encrypts the manager's connections to the nodes and verifies
	// their certificates with it (ServerName empty: each node's host).
	// nil: TLS when a node offers it, without verification (the MySQL
	// driver's "preferred"), so that nodes requiring secure transport are
	// still reached.
	TLS *tls.Config
	// ReplicationCA is a CA file, as a path on the nodes, that a repointed
	// replica verifies its new primary's certificate with (CHANGE MASTER
	// MASTER_SSL=1, MASTER_SSL_CA, MASTER_SSL_VERIFY_SERVER_CERT=1).
	// Empty: the replica's own ssl_ca, when it has one (nodes whose
	// certificates come from one CA); a node without one replicates as it
	// did before.
	ReplicationCA string
	// Interval between two checks of every node (default 1s).
	Interval time.Duration
	// CheckTimeout bounds one check of one node (default: Interval, at
	// least 500ms).
	CheckTimeout time.Duration
	// FailoverCooldown is the anti-flapping period: no automatic failover
	// within it after the previous one (default 1h; negative: none).
	// Manual switchovers ignore it.
	FailoverCooldown time.Duration
	// DrainTimeout bounds the wait for a candidate to apply its relay log,
	// and for a switchover target to catch up (default 30s).
	DrainTimeout time.Duration
	// SemiSyncWait is how long a new primary waits for a semi-sync replica
	// to attach before it is made writable (default 2s).
	SemiSyncWait time.Duration
	// AutoRejoin repoints nodes that do not replicate from the primary
	// (a former primary coming back, a replica of a dead primary).
	AutoRejoin bool
	// OnFailover and OnSwitchover are shell commands run after a change of
	// primary, with FULCRUM_DB_EVENT, FULCRUM_DB_OLD_PRIMARY and
	// FULCRUM_DB_NEW_PRIMARY (host:port) in their environment.
	OnFailover, OnSwitchover []string
	// HookTimeout bounds one hook (default 30s).
	HookTimeout time.Duration
	// OnPrimaryChange, when set, is called with the old and new primary's
	// names after a failover or switchover.
	OnPrimaryChange func(oldName, newName string)
	// MaxEvents is how many events the status keeps (default 100).
	MaxEvents int
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = max(c.Interval, 500*time.Millisecond)
	}
	if c.FailoverCooldown == 0 {
		c.FailoverCooldown = time.Hour
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.SemiSyncWait <= 0 {
		c.SemiSyncWait = 2 * time.Second
	}
	if c.HookTimeout <= 0 {
		c.HookTimeout = 30 * time.Second
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 100
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Name == "" {
			n.Name = n.Addr
		}
		if n.ReplicationAddr == "" {
			n.ReplicationAddr = n.Addr
		}
	}
}

// Event is something the manager saw or did.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"`
}

// Status is the manager's view of the cluster.
type Status struct {
	Primary     string       `json:"primary"`
	PrimaryAddr string       `json:"primary_addr"`
	Nodes       []NodeStatus `json:"nodes"`
	Events      []Event      `json:"events"`
	Failovers   int          `json:"failovers"`
	Switchovers int          `json:"switchovers"`
	// LastFailoverSeconds is the duration of the last failover, from the
	// decision to the new primary being writable.
	LastFailoverSeconds float64    `json:"last_failover_seconds"`
	LastFailoverAt      *time.Time `json:"last_failover_at,omitempty"`
	// FailoverHeldUntil is the end of the anti-flapping period.
	FailoverHeldUntil *time.Time `json:"failover_held_until,omitempty"`
	CheckedAt         time.Time  `json:"checked_at"`
}

// Manager watches a MariaDB cluster, fails over when the primary is dead,
// fences and rejoins former primaries, and performs switchovers.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	nodes map[string]NodeConfig
	dbs   map[string]*sql.DB

	// opMu serializes checks, failovers and switchovers.
	opMu sync.Mutex

	// mu guards the fields below.
	mu               sync.Mutex
	primary          string
	serverIDs        map[string]uint32
	last             []NodeStatus
	checkedAt        time.Time
	events           []Event
	seen             map[string]string // edge-triggered notes by key
	rejoinAt         map[string]time.Time
	failovers        int
	switchovers      int
	lastFailoverDur  time.Duration
	lastFailoverAt   time.Time
	lastAutoFailover time.Time
}

// NewManager checks cfg and opens (lazily) a connection pool per node.
func NewManager(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("dbha: manager: no nodes")
	}
	m := &Manager{
		cfg: cfg, log: cfg.Logger, nodes: map[string]NodeConfig{}, dbs: map[string]*sql.DB{},
		serverIDs: map[string]uint32{}, seen: map[string]string{}, rejoinAt: map[string]time.Time{},
	}
	for _, n := range cfg.Nodes {
		if _, _, err := net.SplitHostPort(n.Addr); err != nil {
			return nil, fmt.Errorf("dbha: node %q: address %q: %w", n.Name, n.Addr, err)
		}
		if _, dup := m.nodes[n.Name]; dup {
			return nil, fmt.Errorf("dbha: node %q listed twice", n.Name)
		}
		m.nodes[n.Name] = n
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr = cfg.AdminUser, cfg.AdminPassword, "tcp", n.Addr
		mc.Timeout = cfg.CheckTimeout
		if cfg.TLS != nil {
			mc.TLS = cfg.TLS.Clone()
		} else {
			mc.TLSConfig = "preferred"
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("dbha: node %q: %w", n.Name, err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(time.Minute)
		m.dbs[n.Name] = db
	}
	return m, nil
}

// Close closes the connection pools.
func (m *Manager) Close() error {
	for _, db := range m.dbs {
		db.Close()
	}
	return nil
}

// Run checks the cluster every Interval until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check runs one round: probe every node, then fence, rejoin or fail over
// as needed. Run calls it every Interval; tests call it directly.
func (m *Manager) Check(ctx context.Context) Status {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	st := m.probeAll(ctx)
	m.decide(ctx, st)
	m.mu.Lock()
	m.last = make([]NodeStatus, len(st))
	for i, s := range st {
		m.last[i] = *s
	}
	m.checkedAt = m.cfg.Now()
	m.mu.Unlock()
	return m.Status()
}

// Status returns the result of the last check and the recent events.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		Primary: m.primary, Nodes: append([]NodeStatus(nil), m.last...),
		Events: append([]Event(nil), m.events...), Failovers: m.failovers, Switchovers: m.switchovers,
		LastFailoverSeconds: m.lastFailoverDur.Seconds(), CheckedAt: m.checkedAt,
	}
	if n, ok := m.nodes[m.primary]; ok {
		s.PrimaryAddr = n.Addr
	}
	if !m.lastFailoverAt.IsZero() {
		t := m.lastFailoverAt
		s.LastFailoverAt = &t
	}
	if !m.lastAutoFailover.IsZero() && m.cfg.FailoverCooldown > 0 {
		if until := m.lastAutoFailover.Add(m.cfg.FailoverCooldown); until.After(m.cfg.Now()) {
			s.FailoverHeldUntil = &until
		}
	}
	return s
}

func (m *Manager) probeAll(ctx context.Context) []*NodeStatus {
	out := make([]*NodeStatus, len(m.cfg.Nodes))
	var wg sync.WaitGroup
	for i, n := range m.cfg.Nodes {
		out[i] = &NodeStatus{Name: n.Name, Addr: n.Addr}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, m.cfg.CheckTimeout)
			defer cancel()
			probe(cctx, m.dbs[n.Name], out[i])
		}()
	}
	wg.Wait()
	m.mu.Lock()
	for _, s := range out {
		if s.Reachable {
			m.serverIDs[s.Name] = s.ServerID
		}
	}
	m.mu.Unlock()
	return out
}

// event records and logs an event.
func (m *Manager) event(kind, node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.events = append(m.events, Event{Time: m.cfg.Now(), Kind: kind, Node: node, Message: msg})
	if over := len(m.events) - m.cfg.MaxEvents; over > 0 {
		m.events = append([]Event(nil), m.events[over:]...)
	}
	m.mu.Unlock()
	m.log.Info(msg, "event", kind, "node", node)
}

// note records an event once per change of the condition under key; clear
// forgets it so that a recurrence is reported again.
func (m *Manager) note(key, kind, node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	same := m.seen[key] == msg
	m.seen[key] = msg
	m.mu.Unlock()
	if !same {
		m.event(kind, node, "%s", msg)
	}
}

func (m *Manager) clear(key string, kind, node, format string, args ...any) {
	m.mu.Lock()
	_, had := m.seen[key]
	delete(m.seen, key)
	m.mu.Unlock()
	if had && format != "" {
		m.event(kind, node, format, args...)
	}
}

// pointsTo reports whether n replicates (or tries to) from p.
func (m *Manager) pointsTo(n *NodeStatus, p string) bool {
	if n.Replica == nil {
		return false
	}
	if n.Replica.MasterAddr() == m.nodes[p].ReplicationAddr {
		return true
	}
	m.mu.Lock()
	id := m.serverIDs[p]
	m.mu.Unlock()
	return id != 0 && n.Replica.MasterServerID == id && n.Replica.LastIOErrno == 0
}

func byName(st []*NodeStatus) map[string]*NodeStatus {
	out := map[string]*NodeStatus{}
	for _, s := range st {
		out[s.Name] = s
	}
	return out
}

func (m *Manager) currentPrimary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.primary
}

func (m *Manager) setPrimary(name string) {
	m.mu.Lock()
	m.primary = name
	m.mu.Unlock()
}

// discover finds the primary when the manager starts: the one writable
// node that replicates from nobody, else the node the replicas point to.
func (m *Manager) discover(ctx context.Context, st []*NodeStatus) string {
	var writable []*NodeStatus
	for _, s := range st {
		if s.Reachable && !s.ReadOnly && s.Replica == nil {
			writable = append(writable, s)
		}
	}
	if len(writable) == 1 {
		m.event("primary", writable[0].Name, "primary found: %s is writable and replicates from nobody", writable[0].Name)
		return writable[0].Name
	}
	votes := map[string]int{}
	for _, s := range st {
		if s.Replica == nil {
			continue
		}
		for _, n := range m.cfg.Nodes {
			if s.Replica.MasterAddr() == n.ReplicationAddr {
				votes[n.Name]++
			}
		}
	}
	best, bestVotes := "", 0
	for _, n := range m.cfg.Nodes {
		if votes[n.Name] > bestVotes {
			best, bestVotes = n.Name, votes[n.Name]
		}
	}
	if best == "" {
		m.note("discover", "primary", "", "no primary found: no node is writable and no replica points to one")
		return ""
	}
	m.clear("discover", "", "", "")
	b := byName(st)[best]
	if b.Reachable && b.Replica == nil && b.ReadOnly {
		// The replicas' primary came back read-only (every node starts so).
		// It is made writable again only if it has everything they have:
		// after a crash its binlog may have been truncated below what a
		// replica received, and then the replica must be promoted instead.
		have, _ := ParsePosition(b.GTIDBinlogPos)
		for _, s := range st {
			if s.Replica == nil || s.Replica.MasterAddr() != m.nodes[best].ReplicationAddr {
				continue
			}
			for _, p := range []string{s.Replica.GTIDIOPos, s.GTIDSlavePos} {
				if pos, err := ParsePosition(p); err == nil && have != nil && !have.Contains(pos) {
					m.note("discover", "primary", best, "not making %s writable: replica %s has transactions it lacks (%s beyond %s); make %s the primary with a switchover",
						best, s.Name, pos, have, s.Name)
					return ""
				}
			}
		}
		if _, err := m.makeWritable(ctx, best, bestVotes > 0); err != nil {
			m.note("discover", "primary", best, "adopting %s as primary: %v", best, err)
			return ""
		}
		m.event("primary", best, "primary adopted: %d replica(s) replicate from %s; made it writable", bestVotes, best)
	} else {
		m.event("primary", best, "primary found: %d replica(s) replicate from %s", bestVotes, best)
	}
	return best
}

func (m *Manager) decide(ctx context.Context, st []*NodeStatus) {
	by := byName(st)
	for _, s := range st {
		if !s.Reachable {
			m.note("reach:"+s.Name, "unreachable", s.Name, "%s unreachable: %s", s.Name, s.Error)
		} else {
			m.clear("reach:"+s.Name, "reachable", s.Name, "%s reachable again", s.Name)
		}
	}
	prim := m.currentPrimary()
	if prim == "" {
		prim = m.discover(ctx, st)
		if prim == "" {
			return
		}
		m.setPrimary(prim)
	}
	p := by[prim]
	if !p.Reachable || p.ReadOnly || p.Replica != nil {
		// The primary may have changed outside the manager (a switchover by
		// other means, a cluster restarted by fulcrum db start): follow the
		// one writable node that replicates from nobody rather than fence
		// it; when the old primary is unreachable, only if replicas follow
		// that node too.
		var leaders []*NodeStatus
		for _, s := range st {
			if s.Name != prim && s.Reachable && !s.ReadOnly && s.Replica == nil {
				leaders = append(leaders, s)
			}
		}
		followed := p.Reachable
		if len(leaders) == 1 && !followed {
			for _, s := range st {
				if s.Reachable && m.pointsTo(s, leaders[0].Name) {
					followed = true
				}
			}
		}
		if len(leaders) == 1 && followed {
			m.event("primary", leaders[0].Name, "primary changed outside the manager: %s is writable and replicates from nobody, %s no longer leads", leaders[0].Name, prim)
			prim = leaders[0].Name
			m.setPrimary(prim)
			p = leaders[0]
		}
	}
	var primPos Position
	if p.Reachable {
		primPos, _ = ParsePosition(p.GTIDBinlogPos)
		p.Role = "primary"
	}
	for _, s := range st {
		if s.Name != prim && s.Reachable && m.pointsTo(s, prim) {
			s.Role = "replica"
			if primPos != nil {
				if applied, err := ParsePosition(s.GTIDSlavePos); err == nil {
					s.GTIDBehind = applied.Behind(primPos)
				}
			}
		}
		m.reportReplication(s)
	}
	if p.Reachable {
		m.clear("primary", "primary", prim, "primary %s reachable again", prim)
		m.checkPrimary(ctx, p, st)
		return
	}
	// The primary does not answer the manager. Fail over only when every
	// replica lost it too (orchestrator's DeadMaster): the manager alone
	// being cut off is no reason.
	var replicas []*NodeStatus
	for _, s := range st {
		if s.Name != prim && s.Reachable && m.pointsTo(s, prim) {
			replicas = append(replicas, s)
		}
	}
	if len(replicas) == 0 {
		m.note("primary", "unreachable", prim, "primary %s unreachable and no replica reachable to confirm it dead: no failover", prim)
		return
	}
	for _, r := range replicas {
		if r.Replica.IORunning == "Yes" {
			m.note("primary", "unreachable", prim, "primary %s unreachable from the manager, but %s still replicates from it: no failover", prim, r.Name)
			return
		}
	}
	m.mu.Lock()
	last := m.lastAutoFailover
	m.mu.Unlock()
	if !last.IsZero() && m.cfg.FailoverCooldown > 0 && m.cfg.Now().Before(last.Add(m.cfg.FailoverCooldown)) {
		m.note("primary", "failover-held", prim, "primary %s dead (all %d replicas lost it), but the last automatic failover was at %s: anti-flapping holds failover until %s; a manual switchover overrides",
			prim, len(replicas), last.Format(time.RFC3339), last.Add(m.cfg.FailoverCooldown).Format(time.RFC3339))
		return
	}
	m.event("dead-primary", prim, "primary %s dead: unreachable, and all %d replicas lost it", prim, len(replicas))
	if _, err := m.failover(ctx, prim, replicas, false); err != nil {
		m.note("primary", "failover-failed", prim, "failover failed: %v", err)
	} else {
		m.clear("primary", "", "", "")
	}
}

// reportReplication notes replication errors of s once, when they appear.
func (m *Manager) reportReplication(s *NodeStatus) {
	var probs []string
	if r := s.Replica; s.Reachable && r != nil {
		if r.LastSQLErrno != 0 {
			probs = append(probs, fmt.Sprintf("SQL thread error %d: %s", r.LastSQLErrno, r.LastSQLError))
		} else if r.SQLRunning != "Yes" {
			probs = append(probs, "SQL thread stopped")
		}
		if r.LastIOErrno != 0 {
			probs = append(probs, fmt.Sprintf("IO thread error %d: %s", r.LastIOErrno, r.LastIOError))
		}
	}
	if len(s.Errant) > 0 {
		probs = append(probs, fmt.Sprintf("errant GTID %s (written on this replica, not from the primary)", strings.Join(s.Errant, ",")))
	}
	if len(probs) > 0 {
		msg := strings.Join(probs, "; ")
		if s.Error == "" {
			s.Error = msg
		}
		m.note("repl:"+s.Name, "replication-error", s.Name, "%s: %s", s.Name, msg)
	} else if s.Reachable {
		m.clear("repl:"+s.Name, "replication-ok", s.Name, "%s: replication healthy again", s.Name)
	}
}

// checkPrimary keeps a reachable primary's cluster in shape: semi-sync on,
// no other writable node, every other node replicating from it.
func (m *Manager) checkPrimary(ctx context.Context, p *NodeStatus, st []*NodeStatus) {
	if p.ReadOnly {
		m.note("ro:"+p.Name, "primary-read-only", p.Name, "primary %s is read-only", p.Name)
	} else {
		m.clear("ro:"+p.Name, "", "", "")
	}
	hasReplicas := false
	for _, s := range st {
		if s.Role == "replica" {
			hasReplicas = true
		}
	}
	if hasReplicas && !p.SemiSyncMasterEnabled {
		if err := m.execAll(ctx, p.Name, "SET GLOBAL rpl_semi_sync_master_enabled=1"); err != nil {
			m.note("semi:"+p.Name, "semi-sync", p.Name, "enabling semi-sync on %s: %v", p.Name, err)
		} else {
			m.event("semi-sync", p.Name, "semi-sync enabled on primary %s", p.Name)
		}
	} else if p.SemiSyncFallback() {
		m.note("semi:"+p.Name, "semi-sync", p.Name, "semi-sync on primary %s fell back to asynchronous: a commit was acknowledged without a replica (%d so far)", p.Name, p.SemiSyncNoTx)
	} else if p.SemiSyncMasterActive {
		m.clear("semi:"+p.Name, "semi-sync", p.Name, "semi-sync on primary %s synchronous again", p.Name)
	}
	for _, s := range st {
		if s.Name == p.Name || !s.Reachable {
			continue
		}
		if !s.ReadOnly {
			// Fencing: one writable node only.
			if err := m.execAll(ctx, s.Name, "SET GLOBAL read_only=1"); err != nil {
				m.note("fence:"+s.Name, "fence-failed", s.Name, "%s is writable beside primary %s, and setting it read-only failed: %v", s.Name, p.Name, err)
				continue
			}
			s.ReadOnly = true
			m.event("fenced", s.Name, "%s was writable beside primary %s: set read-only", s.Name, p.Name)
		}
		if s.Role == "replica" {
			m.clear("rejoin:"+s.Name, "", "", "")
			continue
		}
		if !m.cfg.AutoRejoin {
			m.note("rejoin:"+s.Name, "needs-rejoin", s.Name, "%s does not replicate from primary %s (auto_rejoin off)", s.Name, p.Name)
			continue
		}
		m.mu.Lock()
		next := m.rejoinAt[s.Name]
		m.mu.Unlock()
		if m.cfg.Now().Before(next) {
			continue
		}
		m.mu.Lock()
		m.rejoinAt[s.Name] = m.cfg.Now().Add(5 * time.Second)
		m.mu.Unlock()
		if err := m.rejoin(ctx, s, p); err != nil {
			m.note("rejoin:"+s.Name, "rejoin-failed", s.Name, "rejoining %s to %s: %v", s.Name, p.Name, err)
		} else {
			m.event("rejoined", s.Name, "%s rejoined as a read-only replica of %s", s.Name, p.Name)
		}
	}
}

// rejoin makes n a read-only replica of p.
func (m *Manager) rejoin(ctx context.Context, n, p *NodeStatus) error {
	if n.Replica == nil {
		have, err1 := ParsePosition(n.GTIDBinlogPos)
		prim, err2 := ParsePosition(p.GTIDBinlogPos)
		if err1 == nil && err2 == nil {
			if extra := have.Extra(prim); len(extra) > 0 {
				return fmt.Errorf("it has transactions the primary lacks (%v): it diverged; rebuild it from a dump", extra)
			}
		}
	}
	stmts := []string{"SET GLOBAL read_only=1", "SET GLOBAL rpl_semi_sync_master_enabled=0"}
	if n.Replica != nil {
		stmts = append(stmts, "STOP SLAVE")
	} else {
		// A former primary: its own binlog is its replication position.
		stmts = append(stmts, "SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos")
	}
	stmts = append(stmts, m.changeMaster(ctx, n.Name, p.Name), "START SLAVE")
	return m.execAll(ctx, n.Name, stmts...)
}

// changeMaster is the statement that points node at to, with TLS when
// ReplicationCA is set or node has a CA of its own (see Config).
func (m *Manager) changeMaster(ctx context.Context, node, to string) string {
	host, port, _ := net.SplitHostPort(m.nodes[to].ReplicationAddr)
	ca := m.cfg.ReplicationCA
	if ca == "" {
		var own sql.NullString
		if err := m.dbs[node].QueryRowContext(ctx, "SELECT @@global.ssl_ca").Scan(&own); err == nil {
			ca = own.String
		}
	}
	return changeMaster(host, port, m.cfg.ReplUser, m.cfg.ReplPassword, ca)
}

// execAll runs stmts on node in order, stopping at the first error. The
// whole is bounded by DrainTimeout so that a hung node cannot stall the
// manager.
func (m *Manager) execAll(ctx context.Context, node string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DrainTimeout)
	defer cancel()
	for _, s := range stmts {
		if _, err := m.dbs[node].ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %s: %w", node, redact(s), err)
		}
	}
	return nil
}

// candidate orders replicas for promotion.
type candidate struct {
	s     *NodeStatus
	io    Position
	slave Position
	order int
}

// choose returns the replicas that may be promoted, most advanced first,
// and the reason each other replica was refused.
func (m *Manager) choose(replicas []*NodeStatus) ([]candidate, map[string]string) {
	refused := map[string]string{}
	var cs []candidate
	order := map[string]int{}
	for i, n := range m.cfg.Nodes {
		order[n.Name] = i
	}
	for _, r := range replicas {
		switch {
		case len(r.Errant) > 0:
			refused[r.Name] = fmt.Sprintf("errant GTID %s: transactions written on the replica itself, which the primary never had", strings.Join(r.Errant, ","))
		case r.Replica.SQLRunning != "Yes":
			why := "SQL thread stopped"
			if r.Replica.LastSQLErrno != 0 {
				why = fmt.Sprintf("SQL thread stopped on error %d: %s", r.Replica.LastSQLErrno, r.Replica.LastSQLError)
			}
			refused[r.Name] = why + ": its relay log cannot be applied"
		default:
			io, err1 := ParsePosition(r.Replica.GTIDIOPos)
			slave, err2 := ParsePosition(r.GTIDSlavePos)
			if err := errors.Join(err1, err2); err != nil {
				refused[r.Name] = err.Error()
				continue
			}
			// The received position includes the applied one.
			for d, g := range slave {
				if io[d].Seq < g.Seq {
					io[d] = g
				}
			}
			cs = append(cs, candidate{s: r, io: io, slave: slave, order: order[r.Name]})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if ai, bi := a.io.Contains(b.io), b.io.Contains(a.io); ai != bi {
			return ai
		}
		if a.io.total() != b.io.total() {
			return a.io.total() > b.io.total()
		}
		if a.slave.total() != b.slave.total() {
			return a.slave.total() > b.slave.total()
		}
		return a.order < b.order
	})
	return cs, refused
}

// drain waits until node has applied everything its IO thread received.
// The replication threads are not restarted before: a GTID replica would
// discard its unapplied relay log (MDEV-4698). Gtid_IO_Pos moves only once
// a whole event group is in the relay log (MDEV-27697, MDEV-28550), so
// the wait never aims at a half-received transaction.
func (m *Manager) drain(ctx context.Context, node string) error {
	db := m.dbs[node]
	rs, err := readReplica(ctx, db)
	if err != nil {
		return err
	}
	if rs == nil {
		return nil
	}
	if rs.SQLRunning != "Yes" {
		return fmt.Errorf("SQL thread not running (error %d: %s)", rs.LastSQLErrno, rs.LastSQLError)
	}
	var res sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", rs.GTIDIOPos, m.cfg.DrainTimeout.Seconds()).Scan(&res); err != nil {
		return fmt.Errorf("MASTER_GTID_WAIT(%q): %w", rs.GTIDIOPos, err)
	}
	if !res.Valid || res.Int64 != 0 {
		return fmt.Errorf("relay log not applied up to %s within %v", rs.GTIDIOPos, m.cfg.DrainTimeout)
	}
	return nil
}

// failover promotes the most advanced eligible replica of the dead primary
// old. It returns the new primary's name.
func (m *Manager) failover(ctx context.Context, old string, replicas []*NodeStatus, manual bool) (string, error) {
	start := time.Now()
	cands, refused := m.choose(replicas)
	names := make([]string, 0, len(refused))
	for n := range refused {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m.event("refused", n, "%s refused for promotion: %s", n, refused[n])
	}
	var chosen string
	drainStart := time.Now()
	for _, c := range cands {
		if err := m.drain(ctx, c.s.Name); err != nil {
			m.event("refused", c.s.Name, "%s refused for promotion: %v", c.s.Name, err)
			continue
		}
		chosen = c.s.Name
		break
	}
	if chosen == "" {
		return "", fmt.Errorf("no replica of %s can be promoted (%d refused)", old, len(replicas))
	}
	drained := time.Since(drainStart)
	semiWait, err := m.promote(ctx, chosen, replicas, 0)
	if err != nil {
		return "", err
	}
	d := time.Since(start)
	m.mu.Lock()
	m.primary = chosen
	m.failovers++
	m.lastFailoverDur = d
	m.lastFailoverAt = m.cfg.Now()
	if !manual {
		m.lastAutoFailover = m.cfg.Now()
	}
	m.mu.Unlock()
	m.event("failover", chosen, "failover: %s promoted in place of %s in %v (relay log applied in %v, semi-sync replica attached in %v)",
		chosen, old, d.Round(time.Millisecond), drained.Round(time.Millisecond), semiWait.Round(time.Millisecond))
	m.afterChange("failover", old, chosen, m.cfg.OnFailover)
	return chosen, nil
}

// promote makes node the primary and repoints the other replicas to it.
// Writes are allowed last, once a semi-sync replica is attached, so that
// the first acknowledged write is already on a replica.
// It returns how long the new primary waited for a semi-sync replica.
func (m *Manager) promote(ctx context.Context, node string, others []*NodeStatus, attached int) (time.Duration, error) {
	if err := m.execAll(ctx, node, "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
		return 0, fmt.Errorf("promoting: %w", err)
	}
	repointed := attached
	for _, o := range others {
		if o.Name == node {
			continue
		}
		if err := m.execAll(ctx, o.Name, "STOP SLAVE", m.changeMaster(ctx, o.Name, node), "START SLAVE"); err != nil {
			m.event("repoint-failed", o.Name, "repointing %s to %s: %v", o.Name, node, err)
			continue
		}
		repointed++
		m.event("repointed", o.Name, "%s now replicates from %s", o.Name, node)
	}
	return m.makeWritable(ctx, node, repointed > 0)
}

// makeWritable enables master-side semi-sync on node, waits (up to
// SemiSyncWait) for a semi-sync replica when replicas were pointed at it,
// then clears read_only. It returns the time waited.
func (m *Manager) makeWritable(ctx context.Context, node string, replicas bool) (time.Duration, error) {
	db := m.dbs[node]
	if _, err := db.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled=1"); err != nil {
		return 0, fmt.Errorf("%s: enabling semi-sync: %w", node, err)
	}
	start := time.Now()
	if replicas && !waitSemiSyncClients(ctx, db, m.cfg.SemiSyncWait) {
		m.event("semi-sync", node, "no semi-sync replica attached to %s within %v: commits wait up to the semi-sync timeout", node, m.cfg.SemiSyncWait)
	}
	waited := time.Since(start)
	if _, err := db.ExecContext(ctx, "SET GLOBAL read_only=0"); err != nil {
		return waited, fmt.Errorf("%s: clearing read_only: %w", node, err)
	}
	return waited, nil
}

func (m *Manager) afterChange(kind, old, new string, hooks []string) {
	if m.cfg.OnPrimaryChange != nil {
		m.cfg.OnPrimaryChange(old, new)
	}
	env := append(os.Environ(), "FULCRUM_DB_EVENT="+kind,
		"FULCRUM_DB_OLD_PRIMARY="+m.nodes[old].Addr, "FULCRUM_DB_NEW_PRIMARY="+m.nodes[new].Addr)
	for _, h := range hooks {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.HookTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", h)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				m.event("hook-failed", new, "%s hook %q: %v: %s", kind, h, err, lastLines(string(out), 3))
				return
			}
			m.event("hook", new, "%s hook %q ran", kind, h)
		}()
	}
}

// ErrSwitchover reports a switchover that was refused before anything
// changed.
var ErrSwitchover = errors.New("dbha: switchover refused")

// Switchover makes the named node the primary without losing a
// transaction: the old primary turns read-only, the target applies
// everything it wrote, then the target is promoted and every other node,
// the old primary included, replicates from it. It ignores the
// anti-flapping period.
func (m *Manager) Switchover(ctx context.Context, to string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, ok := m.nodes[to]; !ok {
		for _, n := range m.cfg.Nodes {
			if n.Addr == to {
				to = n.Name
			}
		}
	}
	if _, ok := m.nodes[to]; !ok {
		return fmt.Errorf("%w: no node %q", ErrSwitchover, to)
	}
	st := m.probeAll(ctx)
	by := byName(st)
	old := m.currentPrimary()
	if old == "" {
		old = m.discover(ctx, st)
	}
	if old == to {
		return fmt.Errorf("%w: %s is already the primary", ErrSwitchover, to)
	}
	t := by[to]
	if !t.Reachable {
		return fmt.Errorf("%w: %s unreachable: %s", ErrSwitchover, to, t.Error)
	}
	p := by[old]
	if old == "" || !p.Reachable {
		// No live primary: this is a manual failover.
		var replicas []*NodeStatus
		for _, s := range st {
			if s.Reachable && s.Replica != nil {
				replicas = append(replicas, s)
			}
		}
		cs, refused := m.choose([]*NodeStatus{t})
		if len(cs) == 0 {
			return fmt.Errorf("%w: %s: %s", ErrSwitchover, to, refused[to])
		}
		if err := m.drain(ctx, to); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrSwitchover, to, err)
		}
		if _, err := m.promote(ctx, to, replicas, 0); err != nil {
			return err
		}
		m.mu.Lock()
		m.primary = to
		m.failovers++
		m.lastFailoverAt = m.cfg.Now()
		m.mu.Unlock()
		m.event("failover", to, "manual failover: %s promoted (primary %s unreachable)", to, old)
		m.afterChange("failover", old, to, m.cfg.OnFailover)
		return nil
	}
	if !m.pointsTo(t, old) || !t.Replica.Healthy() {
		return fmt.Errorf("%w: %s is not a healthy replica of %s (%s)", ErrSwitchover, to, old, t.Error)
	}
	if len(t.Errant) > 0 {
		return fmt.Errorf("%w: %s has errant GTID %s", ErrSwitchover, to, strings.Join(t.Errant, ","))
	}
	start := time.Now()
	if err := m.execAll(ctx, old, "SET GLOBAL read_only=1"); err != nil {
		return fmt.Errorf("%w: %v", ErrSwitchover, err)
	}
	var pos string
	var res sql.NullInt64
	err := m.dbs[old].QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos)
	if err == nil {
		err = m.dbs[to].QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, m.cfg.DrainTimeout.Seconds()).Scan(&res)
		if err == nil && (!res.Valid || res.Int64 != 0) {
			err = fmt.Errorf("%s did not reach %s within %v", to, pos, m.cfg.DrainTimeout)
		}
	}
	if err != nil {
		if rerr := m.execAll(ctx, old, "SET GLOBAL read_only=0"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		m.event("switchover-failed", to, "switchover to %s abandoned, %s writable again: %v", to, old, err)
		return fmt.Errorf("%w: %v", ErrSwitchover, err)
	}
	if err := m.execAll(ctx, to, "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
		return err
	}
	attached := 0
	if err := m.execAll(ctx, old, "SET GLOBAL rpl_semi_sync_master_enabled=0",
		"SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos", m.changeMaster(ctx, old, to), "START SLAVE"); err != nil {
		m.event("repoint-failed", old, "repointing former primary %s: %v", old, err)
	} else {
		attached = 1
	}
	var others []*NodeStatus
	for _, s := range st {
		if s.Name != old && s.Name != to && s.Reachable && s.Replica != nil {
			others = append(others, s)
		}
	}
	if _, err := m.promote(ctx, to, others, attached); err != nil {
		return err
	}
	m.mu.Lock()
	m.primary = to
	m.switchovers++
	m.mu.Unlock()
	m.event("switchover", to, "switchover: %s is the primary in place of %s (%v)", to, old, time.Since(start).Round(time.Millisecond))
	m.afterChange("switchover", old, to, m.cfg.OnSwitchover)
	return nil
}
