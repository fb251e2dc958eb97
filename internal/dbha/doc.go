// Package dbha runs MariaDB primary/replica clusters and keeps them
// available: local mariadbd instances, GTID and semi-synchronous
// replication, a manager that fails over without losing an acknowledged
// write, switchover, fencing and rejoin, and the manager's status and
// Prometheus metrics over HTTP (issue 3).
//
// # Local clusters (fulcrum db start, fulcrum up, tests)
//
//	l, err := dbha.StartLocal(ctx, dbha.LocalConfig{Dir: dir, Nodes: 3, BasePort: 13306})
//	addrs := l.Addrs()           // host:port of every node, primary first
//	creds := l.Credentials()     // admin, replication and application users
//	defer l.Stop()               // SIGTERM every node, wait for them
//
// StartLocal runs mariadb-install-db once and copies the data directory to
// the other nodes, starts one mariadbd per node, creates the users (the
// application user has neither SUPER nor READ ONLY ADMIN, so a write to a
// replica fails with error 1290), attaches the replicas and writes
// Dir/cluster.json and Dir/cluster.env (mode 0600: FULCRUM_DB_NODES,
// FULCRUM_DB_ADMIN_USER, FULCRUM_DB_ADMIN_PASSWORD, FULCRUM_DB_APP_USER,
// FULCRUM_DB_APP_PASSWORD, plus FULCRUM_DB_REPL_USER,
// FULCRUM_DB_REPL_PASSWORD and FULCRUM_DB_NAME). On a directory that holds a
// cluster it restarts the nodes with their data and roles. OpenLocal reads
// a cluster without starting it (to stop or manage it from another
// process). Kill(node) sends SIGKILL, as a crash would, and StartNode(ctx,
// node) brings a node back; for chaos. AddNode(ctx) adds a replica to a
// primary that holds data: a dump carrying its GTID position, then
// replication. A restart leads with the most advanced node and takes the
// primary from the servers, not from a cluster.json a failover made stale.
//
// Every node runs with log_slave_updates, binlog_format=ROW,
// gtid_strict_mode, sync_binlog=1, semi-sync wait point AFTER_SYNC and
// replica-side semi-sync; it always starts read-only with
// --init-rpl-role=SLAVE, so a crashed primary coming back is fenced and its
// unacknowledged binlog tail is truncated. Only the manager (or StartLocal
// for the recorded primary) clears read_only, and master-side semi-sync is
// enabled only on the primary, after a replica has attached.
//
// # The manager (fulcrum db manage)
//
//	m, err := dbha.NewManager(l.ManagerConfig()) // or a Config for existing servers
//	go m.Run(ctx)                               // checks every Config.Interval until ctx ends
//	http.Handle("/", m.Handler())               // /status JSON, /metrics, POST /switchover?to=
//	err = m.Switchover(ctx, "db2")
//
// Each check probes every node (read_only, GTID positions, SHOW SLAVE
// STATUS, semi-sync state). A primary that does not answer is failed over
// only when every reachable replica has lost it too (orchestrator's
// DeadMaster); when replicas still replicate from it the manager alone is
// cut off and nothing happens. The candidate is the replica with the most
// advanced received GTID position, never one with errant GTIDs (its own
// server_id beyond its replication position) or a stopped SQL thread; the
// reason of every refusal is an event. The candidate first applies its
// whole relay log (MASTER_GTID_WAIT on Gtid_IO_Pos), and only then are its
// replication threads stopped (MDEV-4698: a GTID replica discards its
// unapplied relay log when they restart); it is promoted, the other
// replicas are repointed, master-side semi-sync is enabled, and only then
// is read_only cleared. A second automatic failover within
// Config.FailoverCooldown is held (anti-flapping); Switchover overrides it.
// A node that comes back writable beside the primary is set read-only, and
// with AutoRejoin any node not replicating from the primary is repointed
// to it. Hooks run after each change of primary.
//
// A manager that finds its primary read-only while another node is the
// one writable node replicating from nobody follows that node instead of
// fencing it (the primary changed by other means). Observe probes without
// acting (`fulcrum db status --dir`); Status.WriteText prints the table.
//
// Config.Interval, CheckTimeout and the clock (Config.Now) are injected so
// that tests run the manager with short intervals.
package dbha
