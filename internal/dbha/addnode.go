package dbha

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// reDumpGTID finds the position mariadb-dump --gtid --master-data=2 writes
// (as a comment) for the snapshot it took.
var reDumpGTID = regexp.MustCompile(`^-- SET GLOBAL gtid_slave_pos='([0-9,\-]*)';`)

// AddNode adds a replica to the running cluster when its primary already
// holds data: a new data directory, a consistent dump of the primary that
// carries its GTID position (mariadb-dump --single-transaction --gtid),
// restored without writing the new node's binlog, then replication from
// that position. It returns the new node once it has caught up.
func (l *Local) AddNode(ctx context.Context) (LocalNode, error) {
	l.mu.Lock()
	primName := l.state.Primary
	free := l.state.FreePorts
	last := l.state.Nodes[len(l.state.Nodes)-1]
	maxID := 0
	for _, n := range l.state.Nodes {
		maxID = max(maxID, n.ServerID)
	}
	l.mu.Unlock()
	prim, err := l.node(primName)
	if err != nil {
		return LocalNode{}, err
	}
	host, _, _ := net.SplitHostPort(last.Addr)
	port := last.Port + 1
	if free {
		if port, err = freePort(host); err != nil {
			return LocalNode{}, err
		}
	}
	n := LocalNode{Name: "db" + strconv.Itoa(maxID+1), Port: port, ServerID: maxID + 1,
		Addr: net.JoinHostPort(host, strconv.Itoa(port)), Dir: filepath.Join(l.dir, "db"+strconv.Itoa(maxID+1))}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return n, err
	}
	if err := installDB(ctx, n); err != nil {
		return n, err
	}
	l.mu.Lock()
	l.state.Nodes = append(l.state.Nodes, n)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return n, err
	}
	if err := l.StartNode(ctx, n.Name); err != nil {
		return n, err
	}
	dump := filepath.Join(n.Dir, "seed.sql")
	f, err := os.OpenFile(dump, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return n, err
	}
	cmd := exec.CommandContext(ctx, "mariadb-dump", "--no-defaults", "--socket="+prim.socket(), "--user=root",
		"--all-databases", "--single-transaction", "--gtid", "--master-data=2", "--routines", "--events",
		"--triggers", "--flush-privileges", "--ignore-table=mysql.gtid_slave_pos")
	cmd.Stdout = f
	out, err := runCombined(cmd)
	f.Close()
	if err != nil {
		return n, fmt.Errorf("dbha: dumping %s: %v: %s", prim.Name, err, out)
	}
	pos, err := dumpPosition(dump)
	if err != nil {
		return n, err
	}
	in, err := os.Open(dump)
	if err != nil {
		return n, err
	}
	restore := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+n.socket(), "--user=root",
		"--init-command=SET SESSION sql_log_bin=0")
	restore.Stdin = in
	rout, err := restore.CombinedOutput()
	in.Close()
	if err != nil {
		return n, fmt.Errorf("dbha: restoring the dump of %s on %s: %v: %s", prim.Name, n.Name, err, lastLines(string(rout), 3))
	}
	os.Remove(dump)
	db, err := l.rootDB(n)
	if err != nil {
		return n, err
	}
	_, err = db.ExecContext(ctx, "SET GLOBAL gtid_slave_pos="+quote(pos))
	db.Close()
	if err != nil {
		return n, fmt.Errorf("dbha: %s: setting gtid_slave_pos to %s: %w", n.Name, pos, err)
	}
	if err := l.attach(ctx, n, prim, false); err != nil {
		return n, err
	}
	l.log.Info("replica added from a dump", "node", n.Name, "primary", prim.Name, "gtid", pos)
	return n, l.waitReplicas(ctx, prim)
}

func runCombined(cmd *exec.Cmd) (string, error) {
	var b strings.Builder
	cmd.Stderr = &b
	err := cmd.Run()
	return lastLines(b.String(), 3), err
}

func dumpPosition(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	pos, found := "", false
	for sc.Scan() {
		if m := reDumpGTID.FindStringSubmatch(sc.Text()); m != nil {
			pos, found = m[1], true
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("dbha: %s: no GTID position in the dump", path)
	}
	if _, err := ParsePosition(pos); err != nil {
		return "", err
	}
	return pos, nil
}
