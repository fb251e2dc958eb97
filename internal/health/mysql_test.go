package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"fulcrum/internal/edge"
	"fulcrum/internal/testenv"
)

// mariadb is a throwaway mariadbd with its own data directory, port and
// socket, stopped (by pid) when the test ends.
type mariadb struct {
	t      *testing.T
	bin    string
	dir    string
	port   int
	args   []string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	root   *sql.DB       // over the unix socket: root@localhost
}

func (m *mariadb) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// newMariaDB initialises a data directory and starts mariadbd on it, with
// extra arguments.
func newMariaDB(t *testing.T, serverID int, extra ...string) *mariadb {
	t.Helper()
	testenv.Short(t)
	bins := testenv.Program(t, "mariadb-install-db", "mariadbd")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// A private tmpdir: a mariadbd deletes every #sql file in its tmpdir
	// as it starts, so in a shared /tmp it deletes other servers' tables.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bins[0], "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--tmpdir="+tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	sock := filepath.Join(dir, "mysqld.sock")
	m := &mariadb{t: t, bin: bins[1], dir: dir, port: port}
	m.args = []string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--user=root",
		"--server-id=" + strconv.Itoa(serverID), "--log-bin=mysql-bin", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + filepath.Join(dir, "error.log"),
		"--tmpdir=" + tmp, "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=off"}
	m.args = append(m.args, extra...)
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User = "unix", sock, "root"
	cfg.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.root = sql.OpenDB(conn)
	t.Cleanup(func() {
		m.root.Close()
		m.kill()
	})
	m.start()
	return m
}

// start runs mariadbd and waits until it answers.
func (m *mariadb) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, m.args...)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mariadbd: %v", err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(m.cmd, m.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := m.root.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-m.exited:
			m.t.Fatalf("mariadbd exited: %v (see %s)", m.cmd.ProcessState, filepath.Join(m.dir, "error.log"))
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mariadbd not answering after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops mariadbd at once, by its pid, and waits for it to exit.
func (m *mariadb) kill() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
	// Drop root's pooled connections to the dead server.
	m.root.SetMaxIdleConns(0)
	m.root.SetMaxIdleConns(2)
}

// waitState waits until every thread of mariadbd is in the given state of
// /proc/PID/task/*/stat (T: stopped), as signals arrive asynchronously.
func (m *mariadb) waitState(want byte) {
	m.t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", m.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			m.t.Fatal(err)
		}
		all := true
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			// The state follows the command name in parentheses.
			if i := bytes.LastIndexByte(b, ')'); err != nil || i < 0 || i+2 >= len(b) || b[i+2] != want {
				all = false
				break
			}
		}
		if all {
			return
		}
	}
	m.t.Fatalf("mariadbd threads not in state %c after 5s", want)
}

func (m *mariadb) exec(queries ...string) {
	m.t.Helper()
	for _, q := range queries {
		if _, err := m.root.Exec(q); err != nil {
			m.t.Fatalf("%s: %v", q, err)
		}
	}
}

// checkMySQL runs one check with a one-second timeout.
func checkMySQL(c Checker) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Check(ctx)
}

func TestMySQLPrimary(t *testing.T) {
	db := newMariaDB(t, 1)
	db.exec("CREATE USER 'check'@'127.0.0.1' IDENTIFIED BY 'pw'",
		"GRANT SLAVE MONITOR ON *.* TO 'check'@'127.0.0.1'")
	newCheck := func(role, password string) Checker {
		c := NewMySQL(db.addr(), MySQLCheck{Role: role, User: "check", Password: password})
		t.Cleanup(func() { c.(*MySQL).Close() })
		return c
	}
	primary := newCheck("primary", "pw")
	replica := newCheck("replica", "pw")

	checkErr(t, checkMySQL(primary), "")
	checkErr(t, checkMySQL(replica), "mysql check: replica expected, server is writable (read_only=0)")
	checkErr(t, checkMySQL(newCheck("primary", "wrong")), "Access denied for user 'check'@'127.0.0.1'")
	checkErr(t, checkMySQL(newCheck("leader", "pw")), `mysql check: role "leader": want primary or replica`)

	db.exec("SET GLOBAL read_only = 1")
	checkErr(t, checkMySQL(primary), "mysql check: primary expected, server is read_only")
	checkErr(t, checkMySQL(replica), "mysql check: replica expected, server does not replicate (SHOW SLAVE STATUS is empty)")

	// Replication configured towards a port where no primary listens.
	db.exec(fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_CONNECT_RETRY=1",
		mustPort(t, closedAddr(t))), "START SLAVE")
	checkErr(t, checkMySQL(replica), "mysql check: replication broken: Slave_IO_Running=")
	db.exec("STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0")
	checkErr(t, checkMySQL(primary), "")

	// The server hangs: the check fails at its deadline, and passes again
	// once the server resumes.
	db.cmd.Process.Signal(syscall.SIGSTOP)
	db.waitState('T')
	start := time.Now()
	checkErr(t, checkMySQL(primary), "mysql check: ")
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("check of a hung server took %v, want about the 1s timeout", el)
	}
	db.cmd.Process.Signal(syscall.SIGCONT)
	checkErr(t, checkMySQL(primary), "")

	// The server dies: the check fails within its timeout, then passes
	// again on a fresh connection once the server is back.
	db.kill()
	start = time.Now()
	checkErr(t, checkMySQL(primary), "mysql check: ")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("check of a dead server took %v, want under the 1s timeout (plus slack)", el)
	}
	db.start()
	checkErr(t, checkMySQL(primary), "")
}

func TestMySQLReplica(t *testing.T) {
	primary := newMariaDB(t, 1)
	replica := newMariaDB(t, 2)
	for _, db := range []*mariadb{primary, replica} {
		db.exec("SET sql_log_bin = 0",
			"CREATE USER 'check'@'127.0.0.1' IDENTIFIED BY 'pw'",
			"GRANT SLAVE MONITOR ON *.* TO 'check'@'127.0.0.1'",
			"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'rp'",
			"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
			"SET sql_log_bin = 1")
	}
	replica.exec(
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='rp', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", primary.port),
		"SET GLOBAL read_only = 1",
		"START SLAVE")

	check := NewMySQL(replica.addr(), MySQLCheck{Role: "replica", MaxLag: 5 * time.Second, User: "check", Password: "pw"})
	t.Cleanup(func() { check.(*MySQL).Close() })
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = checkMySQL(check); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("replica check 15s after START SLAVE = %v, want nil", err)
	}
	asPrimary := NewMySQL(replica.addr(), MySQLCheck{Role: "primary", User: "check", Password: "pw"})
	t.Cleanup(func() { asPrimary.(*MySQL).Close() })
	checkErr(t, checkMySQL(asPrimary), "primary expected, server is read_only")

	// The primary dies: the replica's IO thread stops running.
	primary.kill()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = checkMySQL(check); err != nil {
			break
		}
	}
	checkErr(t, err, "mysql check: replication broken: Slave_IO_Running=")
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplicaHealth(t *testing.T) {
	ok := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	null := sql.NullString{}
	row := func(io, sqlThread string, sbm sql.NullString, lastIO, lastSQL string) map[string]sql.NullString {
		return map[string]sql.NullString{"Slave_IO_Running": ok(io), "Slave_SQL_Running": ok(sqlThread),
			"Seconds_Behind_Master": sbm, "Last_IO_Error": ok(lastIO), "Last_SQL_Error": ok(lastSQL)}
	}
	tests := []struct {
		name    string
		row     map[string]sql.NullString
		wantErr string
	}{
		{"in sync", row("Yes", "Yes", ok("0"), "", ""), ""},
		{"lag under max", row("Yes", "Yes", ok("4"), "", ""), ""},
		{"lag at max", row("Yes", "Yes", ok("5"), "", ""), "mysql check: replication lag 5s, want under 5s"},
		{"lag unknown", row("Yes", "Yes", null, "", ""), "Seconds_Behind_Master is NULL"},
		{"io connecting", row("Connecting", "Yes", null, "error connecting to master", ""),
			"mysql check: replication broken: Slave_IO_Running=Connecting: error connecting to master"},
		{"sql stopped", row("Yes", "No", null, "", "Duplicate entry"),
			"mysql check: replication broken: Slave_SQL_Running=No: Duplicate entry"},
		{"garbage lag", row("Yes", "Yes", ok("soon"), "", ""), `Seconds_Behind_Master "soon"`},
		{"missing columns", map[string]sql.NullString{}, "Slave_IO_Running="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := replicaHealth(tt.row, 5*time.Second)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("replicaHealth() = %q, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("replicaHealth() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestMySQLTLS checks a server that refuses logins without TLS
// (require_secure_transport=ON): the check speaks TLS, verified with the
// server's CA when given one, and fails on a certificate from another CA.
func TestMySQLTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca, err := edge.IssueLocalFiles(dir, []string{"127.0.0.1"}, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	db := newMariaDB(t, 1, "--ssl-ca="+ca, "--ssl-cert="+cert, "--ssl-key="+key, "--require-secure-transport=ON")
	db.exec("CREATE USER 'check'@'127.0.0.1' IDENTIFIED BY 'pw'")
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(ca); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading %s: %v", ca, err)
	}
	otherCA, err := edge.LocalCA(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	if pem, err := os.ReadFile(otherCA); err != nil || !otherPool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading %s: %v", otherCA, err)
	}
	for _, tt := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"verified", &tls.Config{RootCAs: pool}, ""},
		{"preferred (no tls configured)", nil, ""},
		{"other CA", &tls.Config{RootCAs: otherPool}, "certificate signed by unknown authority"},
		{"wrong name", &tls.Config{RootCAs: pool, ServerName: "db.example"}, "db.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewMySQL(db.addr(), MySQLCheck{Role: "primary", User: "check", Password: "pw", TLS: tt.tls})
			defer c.(*MySQL).Close()
			checkErr(t, checkMySQL(c), tt.want)
			if tt.want != "" {
				return
			}
			var name, cipher string
			if err := c.(*MySQL).db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
				t.Errorf("the check's session: Ssl_cipher = %q, %v; want a cipher", cipher, err)
			}
		})
	}
	// A client without TLS is refused by the server, as the check would
	// be if it did not speak TLS.
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.User, mc.Passwd, mc.Logger = "tcp", db.addr(), "check", "pw", &mysql.NopLogger{}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	plain := sql.OpenDB(conn)
	defer plain.Close()
	if err := plain.Ping(); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("plain login = %v, want access denied", err)
	}
}
