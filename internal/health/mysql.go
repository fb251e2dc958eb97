package health

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQLCheck configures a MySQL/MariaDB role check. The user needs no
// privilege for a primary check; a replica check runs SHOW SLAVE STATUS,
// which needs SLAVE MONITOR (MariaDB 10.5.9 and later) or REPLICATION CLIENT.
type MySQLCheck struct {
	// Role is "primary" (writable: @@read_only = 0) or "replica" (read-only
	// and replicating with a lag under MaxLag). Anything else fails every
	// check.
	Role string
	// MaxLag is the replication lag a replica must stay under (default 5s,
	// as the LB configuration's max_lag). Seconds_Behind_Master has a one
	// second resolution.
	MaxLag time.Duration
	// User and Password to log in with.
	User, Password string
	// TLS encrypts the check's connection and verifies the server's
	// certificate with it (ServerName empty: the host of the server's
	// address). nil: TLS when the server offers it, unverified (the MySQL
	// driver's "preferred"), so that a server with
	// require_secure_transport=ON, which refuses logins without TLS, can
	// still be checked. The check logs in because the role it checks is
	// only visible to a session (@@read_only, SHOW SLAVE STATUS).
	TLS *tls.Config
}

// MySQL checks the role of a MySQL/MariaDB server. It keeps one connection
// open between checks; Close releases it.
type MySQL struct {
	addr   string
	role   string
	maxLag time.Duration
	err    error   // a configuration error, returned by every Check
	db     *sql.DB // nil when err is set
}

var (
	_ Checker   = (*MySQL)(nil)
	_ io.Closer = (*MySQL)(nil)
)

// NewMySQL returns a Checker of the server at addr (host:port) in role
// c.Role: primary passes when the server answers and @@read_only = 0;
// replica passes when the server answers, @@read_only = 1, its replication
// IO and SQL threads both run, and Seconds_Behind_Master is under MaxLag.
// The read_only flag is the servers' own statement of their role, set only
// by the database manager. The returned *MySQL has a Close method; a
// Monitor's Run calls it on return.
func NewMySQL(addr string, c MySQLCheck) Checker {
	m := &MySQL{addr: addr, role: c.Role, maxLag: c.MaxLag}
	if m.maxLag <= 0 {
		m.maxLag = 5 * time.Second
	}
	if m.role != "primary" && m.role != "replica" {
		m.err = fmt.Errorf("mysql check: role %q: want primary or replica", c.Role)
		return m
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.User = c.User
	cfg.Passwd = c.Password
	// What goes wrong reaches the caller as the check's error; the driver
	// would also print it on its own.
	cfg.Logger = &mysql.NopLogger{}
	// Backstops only: every check's context carries the real deadline.
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 10 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	if c.TLS != nil {
		cfg.TLS = c.TLS.Clone()
	} else {
		cfg.TLSConfig = "preferred"
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		m.err = fmt.Errorf("mysql check: %w", err)
		return m
	}
	m.db = sql.OpenDB(conn)
	m.db.SetMaxOpenConns(1)
	m.db.SetMaxIdleConns(1)
	// A connection idle longer than a check interval may have been cut by
	// the server (wait_timeout) or a firewall; recycle it before then.
	m.db.SetConnMaxIdleTime(time.Minute)
	return m
}

// Check queries the server.
func (m *MySQL) Check(ctx context.Context) error {
	if m.err != nil {
		return m.err
	}
	var ro int
	if err := m.db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return fmt.Errorf("mysql check: %w", err)
	}
	switch {
	case m.role == "primary" && ro != 0:
		return errors.New("mysql check: primary expected, server is read_only")
	case m.role == "primary":
		return nil
	case ro == 0:
		return errors.New("mysql check: replica expected, server is writable (read_only=0)")
	}
	return m.checkReplication(ctx)
}

// checkReplication reads SHOW SLAVE STATUS (the default connection).
func (m *MySQL) checkReplication(ctx context.Context) error {
	rows, err := m.db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return fmt.Errorf("mysql check: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("mysql check: %w", err)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mysql check: %w", err)
		}
		return errors.New("mysql check: replica expected, server does not replicate (SHOW SLAVE STATUS is empty)")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return fmt.Errorf("mysql check: %w", err)
	}
	st := make(map[string]sql.NullString, len(cols))
	for i, c := range cols {
		st[c] = vals[i]
	}
	return replicaHealth(st, m.maxLag)
}

// replicaHealth judges one row of SHOW SLAVE STATUS.
func replicaHealth(st map[string]sql.NullString, maxLag time.Duration) error {
	for _, col := range []string{"Slave_IO_Running", "Slave_SQL_Running"} {
		if v := st[col]; v.String != "Yes" {
			msg := fmt.Sprintf("mysql check: replication broken: %s=%s", col, v.String)
			if e := st["Last_IO_Error"].String; col == "Slave_IO_Running" && e != "" {
				msg += ": " + e
			}
			if e := st["Last_SQL_Error"].String; col == "Slave_SQL_Running" && e != "" {
				msg += ": " + e
			}
			return errors.New(msg)
		}
	}
	sbm := st["Seconds_Behind_Master"]
	if !sbm.Valid {
		return errors.New("mysql check: replication lag unknown (Seconds_Behind_Master is NULL)")
	}
	secs, err := strconv.ParseInt(sbm.String, 10, 64)
	if err != nil {
		return fmt.Errorf("mysql check: Seconds_Behind_Master %q: %w", sbm.String, err)
	}
	if lag := time.Duration(secs) * time.Second; lag >= maxLag {
		return fmt.Errorf("mysql check: replication lag %v, want under %v", lag, maxLag)
	}
	return nil
}

// Close closes the connection to the server.
func (m *MySQL) Close() error {
	if m.db == nil {
		return nil
	}
	return m.db.Close()
}
