package dbha

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the MariaDB driver
)

// NodeStatus is what one check of a node found.
type NodeStatus struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Role is primary, replica, or "" when unknown (unreachable, or not
	// replicating from the primary).
	Role      string    `json:"role"`
	Reachable bool      `json:"reachable"`
	CheckedAt time.Time `json:"checked_at"`
	// Error is the last problem: connection, replication or refusal.
	Error    string `json:"error,omitempty"`
	ServerID uint32 `json:"server_id,omitempty"`
	ReadOnly bool   `json:"read_only"`
	// GTID positions (@@gtid_binlog_pos, @@gtid_slave_pos,
	// @@gtid_current_pos).
	GTIDBinlogPos  string `json:"gtid_binlog_pos"`
	GTIDSlavePos   string `json:"gtid_slave_pos"`
	GTIDCurrentPos string `json:"gtid_current_pos"`
	// Replica is the replication state, nil when none is configured.
	Replica *ReplicaStatus `json:"replica,omitempty"`
	// Errant lists transactions written on this replica itself (its binlog
	// beyond its replication position): such a node is never promoted.
	Errant []string `json:"errant,omitempty"`
	// GTIDBehind is how many transactions this node lacks to reach the
	// primary's binlog position.
	GTIDBehind uint64 `json:"gtid_behind"`
	// Semi-sync, master side: enabled, actually synchronous (OFF after a
	// timeout fell back to asynchronous), attached semi-sync replicas, and
	// commits acknowledged by no replica.
	SemiSyncMasterEnabled bool   `json:"semi_sync_master_enabled"`
	SemiSyncMasterActive  bool   `json:"semi_sync_master_active"`
	SemiSyncClients       int    `json:"semi_sync_clients"`
	SemiSyncNoTx          uint64 `json:"semi_sync_no_tx"`
	SemiSyncSlaveActive   bool   `json:"semi_sync_slave_active"`
}

// SemiSyncFallback reports whether master-side semi-sync is enabled but
// has fallen back to asynchronous replication: Rpl_semi_sync_master_status
// is OFF and commits went unacknowledged. (The status is also OFF after
// semi-sync is enabled and before the first acknowledged commit; that is
// not a fallback.)
func (s *NodeStatus) SemiSyncFallback() bool {
	return s.SemiSyncMasterEnabled && !s.SemiSyncMasterActive && s.SemiSyncNoTx > 0
}

// ReplicaStatus is the part of SHOW SLAVE STATUS the manager uses.
type ReplicaStatus struct {
	MasterHost     string `json:"master_host"`
	MasterPort     int    `json:"master_port"`
	MasterServerID uint32 `json:"master_server_id"`
	// IORunning is Yes, No or Connecting; SQLRunning is Yes or No.
	IORunning    string `json:"io_running"`
	SQLRunning   string `json:"sql_running"`
	LastIOErrno  int    `json:"last_io_errno,omitempty"`
	LastIOError  string `json:"last_io_error,omitempty"`
	LastSQLErrno int    `json:"last_sql_errno,omitempty"`
	LastSQLError string `json:"last_sql_error,omitempty"`
	// SecondsBehind is Seconds_Behind_Master, -1 when NULL.
	SecondsBehind int64  `json:"seconds_behind"`
	GTIDIOPos     string `json:"gtid_io_pos"`
	// SSL is Master_SSL_Allowed: the replica connects with TLS;
	// SSLVerify is Master_SSL_Verify_Server_Cert: it checks the
	// primary's certificate.
	SSL       bool `json:"ssl"`
	SSLVerify bool `json:"ssl_verify"`
}

// MasterAddr is host:port of the primary this replica is configured for.
func (r *ReplicaStatus) MasterAddr() string {
	return r.MasterHost + ":" + strconv.Itoa(r.MasterPort)
}

// Healthy reports whether both replication threads run without error.
func (r *ReplicaStatus) Healthy() bool {
	return r.IORunning == "Yes" && r.SQLRunning == "Yes"
}

// probe checks one node with the manager's connection.
func probe(ctx context.Context, db *sql.DB, st *NodeStatus) {
	st.CheckedAt = time.Now()
	var ro, semi int
	var binlogState string
	err := db.QueryRowContext(ctx, "SELECT @@server_id, @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos, "+
		"@@gtid_current_pos, @@rpl_semi_sync_master_enabled, @@gtid_binlog_state").
		Scan(&st.ServerID, &ro, &st.GTIDBinlogPos, &st.GTIDSlavePos, &st.GTIDCurrentPos, &semi, &binlogState)
	if err != nil {
		st.Error = err.Error()
		return
	}
	st.Reachable = true
	st.ReadOnly = ro != 0
	st.SemiSyncMasterEnabled = semi != 0
	rs, err := readReplica(ctx, db)
	if err != nil {
		st.Error = err.Error()
		return
	}
	st.Replica = rs
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN "+
		"('Rpl_semi_sync_master_status','Rpl_semi_sync_master_clients','Rpl_semi_sync_master_no_tx','Rpl_semi_sync_slave_status')")
	if err != nil {
		st.Error = err.Error()
		return
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) != nil {
			continue
		}
		switch strings.ToLower(k) {
		case "rpl_semi_sync_master_status":
			st.SemiSyncMasterActive = v == "ON"
		case "rpl_semi_sync_master_clients":
			st.SemiSyncClients, _ = strconv.Atoi(v)
		case "rpl_semi_sync_master_no_tx":
			st.SemiSyncNoTx, _ = strconv.ParseUint(v, 10, 64)
		case "rpl_semi_sync_slave_status":
			st.SemiSyncSlaveActive = v == "ON"
		}
	}
	if rs != nil {
		if slave, err := ParsePosition(st.GTIDSlavePos); err == nil {
			st.Errant = errantGTIDs(binlogState, slave, st.ServerID)
		}
	}
}

// readReplica returns SHOW SLAVE STATUS, or nil when no replication is
// configured.
func readReplica(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (*ReplicaStatus, error) {
	rows, err := q.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := map[string]sql.NullString{}
	for i, c := range cols {
		m[c] = vals[i]
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(m[k].String); return n }
	rs := &ReplicaStatus{
		MasterHost:     m["Master_Host"].String,
		MasterPort:     atoi("Master_Port"),
		MasterServerID: uint32(atoi("Master_Server_Id")),
		IORunning:      m["Slave_IO_Running"].String,
		SQLRunning:     m["Slave_SQL_Running"].String,
		LastIOErrno:    atoi("Last_IO_Errno"),
		LastIOError:    m["Last_IO_Error"].String,
		LastSQLErrno:   atoi("Last_SQL_Errno"),
		LastSQLError:   m["Last_SQL_Error"].String,
		SecondsBehind:  -1,
		GTIDIOPos:      m["Gtid_IO_Pos"].String,
		SSL:            m["Master_SSL_Allowed"].String == "Yes",
		SSLVerify:      m["Master_SSL_Verify_Server_Cert"].String == "Yes",
	}
	if v := m["Seconds_Behind_Master"]; v.Valid {
		rs.SecondsBehind, _ = strconv.ParseInt(v.String, 10, 64)
	}
	if rs.MasterHost == "" {
		return nil, nil // RESET SLAVE ALL leaves no row; some versions leave an empty one
	}
	return rs, nil
}

// errantGTIDs returns the transactions a replica wrote itself: GTIDs of
// @@gtid_binlog_state (the last GTID of every domain and server) that
// carry the replica's own server_id and lie beyond its replication
// position. Replicated transactions carry their origin's server_id, so a
// replica that is still applying (its binlog ahead of gtid_slave_pos for a
// moment) is not mistaken for an errant one.
func errantGTIDs(binlogState string, slave Position, self uint32) []string {
	var out []string
	for _, f := range strings.Split(binlogState, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		g, err := ParseGTID(f)
		if err != nil || g.Server != self {
			continue
		}
		if g.Seq > slave[g.Domain].Seq {
			out = append(out, g.String())
		}
	}
	return out
}
