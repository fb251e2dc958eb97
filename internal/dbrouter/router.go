// Package dbrouter routes an application's SQL over a MariaDB
// primary/replica cluster: writes and transactions to the primary, reads
// round robin over replicas that lag less than MaxLag, or to the primary
// when none qualifies, with read-your-writes on request.
//
// Roles come from the servers themselves (@@read_only, SHOW SLAVE STATUS),
// refreshed every CheckInterval, so routing keeps working while the
// failover manager (internal/dbha) is down, and follows its failovers
// within one interval.
//
// Reading a replica's lag (SHOW SLAVE STATUS) needs the SLAVE MONITOR
// privilege, which the application user of a local cluster has; without
// it no replica qualifies and every read goes to the primary.
package dbrouter

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config configures a Router.
type Config struct {
	// Nodes is host:port of every node; roles are read from the servers
	// (@@read_only), never assumed from the order.
	Nodes                    []string
	User, Password, Database string
	// MaxLag: replicas lagging more are not read from (default 5s).
	MaxLag time.Duration
	// CheckInterval is how often roles and lag are refreshed (default
	// 500ms).
	CheckInterval time.Duration
	// WaitTimeout bounds the MASTER_GTID_WAIT of a read-your-writes read on
	// a replica before the read goes to the primary (default 1s).
	WaitTimeout time.Duration
	// TLS encrypts the connections to the nodes and verifies their
	// certificates with it; ServerName empty checks each node's host (an
	// IP address needs an IP address in the certificate). nil: TLS when a
	// node offers it, without verification (the MySQL driver's
	// "preferred", as the mariadb client does by default).
	TLS    *tls.Config
	Logger *slog.Logger
}

// ErrNoPrimary is returned when no writable node is known.
var ErrNoPrimary = errors.New("dbrouter: no primary")

// Token identifies a write for read-your-writes: the primary's @@last_gtid
// after it. The zero Token asks for no wait.
type Token struct{ GTID string }

// Result is the result of Exec: the node that ran it and the Token of the
// write.
type Result struct {
	sql.Result
	Node  string
	Token Token
}

// Rows are the rows of Query and the node that produced them.
type Rows struct {
	*sql.Rows
	Node string
	conn *sql.Conn // held for a read-your-writes read; released by Close
}

// Close closes the rows and releases their connection.
func (r *Rows) Close() error {
	err := r.Rows.Close()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
	return err
}

// nodeState is one node as the last refresh saw it.
type nodeState struct {
	addr     string
	up       bool
	readOnly bool
	// replicating: both replication threads run.
	replicating bool
	lag         time.Duration // Seconds_Behind_Master
	err         error
}

// Router routes queries to the nodes of one cluster.
type Router struct {
	cfg   Config
	log   *slog.Logger
	dbs   map[string]*sql.DB
	rr    atomic.Uint64
	kick  chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
	close sync.Once

	// mu guards the field below.
	mu    sync.Mutex
	state map[string]nodeState
}

// Open checks cfg, reads the roles once and starts the background
// refresher, stopped by Close. Unreachable nodes are not an error: they
// are retried at every refresh.
func Open(ctx context.Context, cfg Config) (*Router, error) {
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("dbrouter: no nodes")
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 5 * time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 500 * time.Millisecond
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Router{cfg: cfg, log: cfg.Logger, dbs: map[string]*sql.DB{}, state: map[string]nodeState{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	for _, a := range cfg.Nodes {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("dbrouter: node %q: %w", a, err)
		}
		if _, dup := r.dbs[a]; dup {
			return nil, fmt.Errorf("dbrouter: node %q listed twice", a)
		}
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr, mc.DBName = cfg.User, cfg.Password, "tcp", a, cfg.Database
		mc.Timeout = time.Second
		mc.ParseTime = true
		if cfg.TLS != nil {
			mc.TLS = cfg.TLS.Clone()
		} else {
			mc.TLSConfig = "preferred"
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("dbrouter: node %q: %w", a, err)
		}
		db := sql.OpenDB(conn)
		db.SetConnMaxIdleTime(time.Minute)
		r.dbs[a] = db
	}
	r.refresh(ctx)
	rctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go r.loop(rctx)
	return r, nil
}

// Close stops the refresher and closes every connection.
func (r *Router) Close() error {
	r.close.Do(func() {
		r.stop()
		<-r.done
		for _, db := range r.dbs {
			db.Close()
		}
	})
	return nil
}

func (r *Router) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		r.refresh(ctx)
	}
}

// refresh reads every node's role and lag.
func (r *Router) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.CheckInterval, time.Second))
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := map[string]nodeState{}
	for a, db := range r.dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := check(ctx, a, db)
			mu.Lock()
			next[a] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.mu.Lock()
	prev := r.state
	r.state = next
	r.mu.Unlock()
	for a, s := range next {
		if p, ok := prev[a]; !ok || p.up != s.up || p.readOnly != s.readOnly {
			r.log.Info("node state", "node", a, "up", s.up, "read_only", s.readOnly, "err", s.err)
		}
	}
}

func check(ctx context.Context, addr string, db *sql.DB) nodeState {
	s := nodeState{addr: addr}
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil {
		s.err = err
		return s
	}
	s.up, s.readOnly = true, ro != 0
	if !s.readOnly {
		return s
	}
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		s.err = err
		return s
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return s
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		s.err = err
		return s
	}
	m := map[string]sql.NullString{}
	for i, c := range cols {
		m[c] = vals[i]
	}
	lag := m["Seconds_Behind_Master"]
	s.replicating = m["Slave_IO_Running"].String == "Yes" && m["Slave_SQL_Running"].String == "Yes" && lag.Valid
	if n, err := strconv.Atoi(lag.String); err == nil {
		s.lag = time.Duration(n) * time.Second
	}
	return s
}

// Refresh reads roles and lag now instead of at the next interval.
func (r *Router) Refresh(ctx context.Context) { r.refresh(ctx) }

// Primary returns the address of the current primary: the one writable
// node. Several writable nodes (a failover half done) count as none.
func (r *Router) Primary() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []string
	for _, a := range r.cfg.Nodes {
		if s := r.state[a]; s.up && !s.readOnly {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", ErrNoPrimary
	default:
		return "", fmt.Errorf("%w: %d writable nodes %v", ErrNoPrimary, len(found), found)
	}
}

// replicas returns the readable replicas in configuration order.
func (r *Router) replicas() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.cfg.Nodes {
		if s := r.state[a]; s.up && s.readOnly && s.replicating && s.lag < r.cfg.MaxLag {
			out = append(out, a)
		}
	}
	return out
}

// isReadOnlyErr reports MariaDB error 1290 (ER_OPTION_PREVENTS_STATEMENT):
// the node turned read-only under us.
func isReadOnlyErr(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1290
}

// isConnErr reports errors where the node itself is gone.
func isConnErr(err error) bool {
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.As(err, &ne)
}

// Exec runs a write on the current primary and returns the Token of it
// (read on the same connection: @@last_gtid is per session). When the
// primary has just turned read-only (error 1290) the roles are refreshed
// and the write is tried once more on the new primary.
func (r *Router) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	res, err := r.exec(ctx, query, args...)
	if err != nil && (isReadOnlyErr(err) || errors.Is(err, ErrNoPrimary)) {
		r.refresh(ctx)
		return r.exec(ctx, query, args...)
	}
	if err != nil && isConnErr(err) {
		r.kickRefresh()
	}
	return res, err
}

func (r *Router) kickRefresh() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Router) exec(ctx context.Context, query string, args ...any) (Result, error) {
	p, err := r.Primary()
	if err != nil {
		return Result{}, err
	}
	conn, err := r.dbs[p].Conn(ctx)
	if err != nil {
		return Result{Node: p}, fmt.Errorf("dbrouter: primary %s: %w", p, err)
	}
	defer conn.Close()
	res, err := conn.ExecContext(ctx, query, args...)
	if err != nil {
		return Result{Node: p}, err
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
		return Result{Result: res, Node: p}, fmt.Errorf("dbrouter: the write succeeded on %s, reading @@last_gtid failed: %w", p, err)
	}
	return Result{Result: res, Node: p, Token: Token{GTID: gtid}}, nil
}

// Query runs a read: round robin over the healthy replicas lagging less
// than MaxLag, or on the primary when none qualifies. With a non-zero
// Token the replica first waits (MASTER_GTID_WAIT, up to WaitTimeout) for
// that write; if it does not get it in time, the read goes to the primary.
// A read that fails on a replica because the replica is gone is retried
// on the primary.
func (r *Router) Query(ctx context.Context, after Token, query string, args ...any) (*Rows, error) {
	reps := r.replicas()
	if len(reps) > 0 {
		a := reps[int(r.rr.Add(1)-1)%len(reps)]
		rows, err := r.queryReplica(ctx, a, after, query, args...)
		if err == nil && rows != nil {
			return rows, nil
		}
		if err != nil && !isConnErr(err) {
			return nil, err
		}
		if err != nil {
			r.kickRefresh()
		}
	}
	p, err := r.Primary()
	if err != nil {
		if errors.Is(err, ErrNoPrimary) {
			return r.queryStale(ctx, after, query, args...)
		}
		return nil, err
	}
	rows, err := r.dbs[p].QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return &Rows{Rows: rows, Node: p}, nil
}

// queryStale reads from any reachable read-only node while there is no
// primary: between a primary's death and a replica's promotion the
// replicas have lost their source, but what they hold is consistent (if a
// little behind), and reads must not fail for a failover. A read-your-writes
// token is still honoured: a node that has not applied it within
// WaitTimeout is passed over, and with none left the read fails.
func (r *Router) queryStale(ctx context.Context, after Token, query string, args ...any) (*Rows, error) {
	nodes := r.readOnly()
	var lastErr error = ErrNoPrimary
	for i := range nodes {
		a := nodes[(int(r.rr.Add(1)-1)+i)%len(nodes)]
		rows, err := r.queryReplica(ctx, a, after, query, args...)
		if err == nil && rows != nil {
			return rows, nil
		}
		if err != nil {
			lastErr = err
		}
	}
	return nil, lastErr
}

// readOnly returns the reachable read-only nodes, replicating or not.
func (r *Router) readOnly() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.cfg.Nodes {
		if s := r.state[a]; s.up && s.readOnly {
			out = append(out, a)
		}
	}
	return out
}

// queryReplica returns nil rows and no error when the replica has not
// applied after within WaitTimeout.
func (r *Router) queryReplica(ctx context.Context, a string, after Token, query string, args ...any) (*Rows, error) {
	db := r.dbs[a]
	if after.GTID == "" {
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return &Rows{Rows: rows, Node: a}, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var res sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", after.GTID, r.cfg.WaitTimeout.Seconds()).Scan(&res); err != nil {
		conn.Close()
		return nil, err
	}
	if !res.Valid || res.Int64 != 0 {
		conn.Close()
		return nil, nil
	}
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Rows{Rows: rows, Node: a, conn: conn}, nil
}

// QueryRow is Query for one row; the node is not reported. Scan errors
// carry the query's.
func (r *Router) QueryRow(ctx context.Context, after Token, query string, args ...any) *Row {
	rows, err := r.Query(ctx, after, query, args...)
	return &Row{rows: rows, err: err}
}

// Row is the result of QueryRow.
type Row struct {
	rows *Rows
	err  error
}

// Scan copies the first row's columns into dest; sql.ErrNoRows when there
// is none.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

// Begin starts a transaction on the primary and returns the primary's
// address.
func (r *Router) Begin(ctx context.Context) (*sql.Tx, string, error) {
	p, err := r.Primary()
	if err != nil {
		r.refresh(ctx)
		if p, err = r.Primary(); err != nil {
			return nil, "", err
		}
	}
	tx, err := r.dbs[p].BeginTx(ctx, nil)
	if err != nil {
		if isConnErr(err) {
			r.kickRefresh()
		}
		return nil, p, err
	}
	return tx, p, nil
}
