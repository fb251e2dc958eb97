package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// DB is the file format of `fulcrum db manage -c FILE`: existing MariaDB
// servers for the failover manager to watch. For example:
//
//	admin: 127.0.0.1:9910
//	admin_user: fulcrum_admin
//	admin_password_file: /etc/fulcrum/db-admin.password
//	repl_user: fulcrum_repl
//	repl_password_file: /etc/fulcrum/db-repl.password
//	nodes:
//	  - {name: db1, address: 192.0.2.11:3306}
//	  - {name: db2, address: 192.0.2.12:3306}
//	  - {name: db3, address: 192.0.2.13:3306}
//	failover_cooldown: 1h
//	auto_rejoin: true
//	tls: {ca: /etc/fulcrum/db-ca.pem}
//	hooks:
//	  on_failover: ["logger -t fulcrum \"db failover $FULCRUM_DB_OLD_PRIMARY -> $FULCRUM_DB_NEW_PRIMARY\""]
type DB struct {
	// Admin is the address of the manager's status, /metrics and
	// switchover API (default 127.0.0.1:9910). Beyond loopback it requires
	// AdminTokenFile.
	Admin string `yaml:"admin"`
	// AdminTokenFile holds the bearer token every request to Admin must
	// carry (required when Admin is not a loopback address).
	AdminTokenFile string `yaml:"admin_token_file"`
	// AdminUser is the MariaDB account of the manager: it needs SUPER, READ
	// ONLY ADMIN and the replication privileges.
	AdminUser         string `yaml:"admin_user"`
	AdminPasswordFile string `yaml:"admin_password_file"`
	// ReplUser is the account replicas connect as (REPLICATION SLAVE), put
	// into CHANGE MASTER when the manager repoints a replica.
	ReplUser         string   `yaml:"repl_user"`
	ReplPasswordFile string   `yaml:"repl_password_file"`
	Nodes            []DBNode `yaml:"nodes"`
	// Interval between two checks of every node (default 1s).
	Interval Duration `yaml:"interval"`
	// CheckTimeout bounds one check of one node (default: interval).
	CheckTimeout Duration `yaml:"check_timeout"`
	// FailoverCooldown is the anti-flapping period: no automatic failover
	// within it after the previous one (default 1h; a negative duration
	// disables it). Manual switchovers ignore it.
	FailoverCooldown Duration `yaml:"failover_cooldown"`
	// DrainTimeout bounds the wait for a candidate to apply its relay log
	// before promotion (default 30s).
	DrainTimeout Duration `yaml:"drain_timeout"`
	// SemiSyncWait is how long a new primary waits for a semi-sync replica
	// before it is made writable (default 2s).
	SemiSyncWait Duration `yaml:"semi_sync_wait"`
	// AutoRejoin makes a former primary coming back, or a replica of a
	// dead primary, replicate from the current primary (default false;
	// always on for a local cluster).
	AutoRejoin bool    `yaml:"auto_rejoin"`
	Hooks      DBHooks `yaml:"hooks"`
	// TLS verifies the nodes' certificates on the manager's connections
	// (nil: TLS whenever a node offers it, unverified). Replicas the
	// manager repoints verify their new primary with their own ssl_ca.
	TLS *DBTLS `yaml:"tls"`

	adminPassword, replPassword string
}

// DBNode is one MariaDB server.
type DBNode struct {
	// Name identifies the node in status and switchover (default dbN, its
	// position from 1).
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// ReplicationAddress is where the other nodes reach this one, when it
	// differs from Address (default: Address).
	ReplicationAddress string `yaml:"replication_address"`
}

// DBHooks are shell commands run after a change of primary, with
// FULCRUM_DB_EVENT, FULCRUM_DB_OLD_PRIMARY and FULCRUM_DB_NEW_PRIMARY in
// their environment.
type DBHooks struct {
	OnFailover   []string `yaml:"on_failover"`
	OnSwitchover []string `yaml:"on_switchover"`
	// Timeout bounds one hook (default 30s).
	Timeout Duration `yaml:"timeout"`
}

// DBTLS is the `tls` section of a client of MariaDB servers (the manager,
// the web servers' database, the load balancer's mysql checks): TLS 1.2 or
// later, the server's certificate verified. MariaDB starts TLS inside its
// own protocol (an SSL request after the server's greeting), so this is
// not a TCP backend's `tls` section, which would wrap the whole stream.
type DBTLS struct {
	// CA is a PEM file of the authorities the servers' certificates chain
	// to (required).
	CA string `yaml:"ca"`
	// ServerName is the name the certificates must carry (default: the
	// host of each server's address; an IP address must then be among the
	// certificate's IP addresses).
	ServerName string `yaml:"server_name"`
}

// ClientConfig returns the TLS configuration t describes, reading CA; nil
// for a nil t.
func (t *DBTLS) ClientConfig() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	pool, err := readCAs(t.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}, nil
}

func readCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// validate checks t; with readFiles it also reads CA, which files whose
// relative paths are resolved after validation (web.yaml) leave to the
// program.
func (t *DBTLS) validate(p string, readFiles bool) []*fieldError {
	var errs []*fieldError
	if t.CA == "" {
		errs = append(errs, errorf(p+".ca", "a CA file is required"))
	} else if _, err := readCAs(t.CA); err != nil && readFiles {
		errs = append(errs, errorf(p+".ca", "%q: %v", t.CA, err))
	}
	if t.ServerName != "" && !validHostname(t.ServerName) {
		if _, err := netip.ParseAddr(t.ServerName); err != nil {
			errs = append(errs, errorf(p+".server_name", "%q: not a DNS name or IP address", t.ServerName))
		}
	}
	return errs
}

// LoadDB reads, defaults and validates a db.yaml file, and reads its
// password files.
func LoadDB(path string) (*DB, error) {
	var c DB
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseDB is LoadDB on data already read; name is used in errors.
func ParseDB(name string, data []byte) (*DB, error) {
	var c DB
	if err := decode(name, data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// AdminPassword returns the content of admin_password_file (without its
// final newline).
func (c *DB) AdminPassword() string { return c.adminPassword }

// ReplPassword returns the content of repl_password_file.
func (c *DB) ReplPassword() string { return c.replPassword }

func (c *DB) setDefaults() {
	def(&c.Admin, "127.0.0.1:9910")
	defDur(&c.Interval, time.Second)
	defDur(&c.CheckTimeout, c.Interval.D())
	defDur(&c.FailoverCooldown, time.Hour)
	defDur(&c.DrainTimeout, 30*time.Second)
	defDur(&c.SemiSyncWait, 2*time.Second)
	defDur(&c.Hooks.Timeout, 30*time.Second)
	for i := range c.Nodes {
		n := &c.Nodes[i]
		def(&n.Name, fmt.Sprintf("db%d", i+1))
		def(&n.ReplicationAddress, n.Address)
	}
}

func (c *DB) validate() []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if _, err := ParseHostPort(c.Admin); err != nil {
		add(errorf("admin", "%q: %v", c.Admin, err))
	} else if host, _, _ := net.SplitHostPort(c.Admin); host != "localhost" && !isLoopbackIP(host) && c.AdminTokenFile == "" {
		add(errorf("admin", "%q is not a loopback address: admin_token_file is required", c.Admin))
	}
	if c.AdminUser == "" {
		add(errorf("admin_user", "a user is required"))
	}
	if c.ReplUser == "" {
		add(errorf("repl_user", "a user is required"))
	}
	readPw := func(key, path string, into *string) {
		if path == "" {
			add(errorf(key, "a password file is required"))
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			add(errorf(key, "%q: %v", path, err))
			return
		}
		*into = strings.TrimRight(string(data), "\r\n")
	}
	readPw("admin_password_file", c.AdminPasswordFile, &c.adminPassword)
	readPw("repl_password_file", c.ReplPasswordFile, &c.replPassword)
	if len(c.Nodes) == 0 {
		add(errorf("nodes", "at least one node is required"))
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	for i, n := range c.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		if names[n.Name] {
			add(errorf(p+".name", "duplicate node name %q", n.Name))
		}
		names[n.Name] = true
		if _, err := ParseHostPort(n.Address); err != nil {
			add(errorf(p+".address", "%q: %v", n.Address, err))
		} else if addrs[n.Address] {
			add(errorf(p+".address", "%q: listed twice", n.Address))
		}
		addrs[n.Address] = true
		if _, err := ParseHostPort(n.ReplicationAddress); err != nil {
			add(errorf(p+".replication_address", "%q: %v", n.ReplicationAddress, err))
		}
	}
	if c.TLS != nil {
		errs = append(errs, c.TLS.validate("tls", true)...)
	}
	if c.Interval.D() < 50*time.Millisecond {
		add(errorf("interval", "%v: must be at least 50ms", c.Interval.D()))
	}
	for key, d := range map[string]Duration{"check_timeout": c.CheckTimeout, "drain_timeout": c.DrainTimeout,
		"semi_sync_wait": c.SemiSyncWait, "hooks.timeout": c.Hooks.Timeout} {
		if d.D() <= 0 {
			add(errorf(key, "%v: must be positive", d.D()))
		}
	}
	for i, h := range c.Hooks.OnFailover {
		if strings.TrimSpace(h) == "" {
			add(errorf(fmt.Sprintf("hooks.on_failover[%d]", i), "empty command"))
		}
	}
	for i, h := range c.Hooks.OnSwitchover {
		if strings.TrimSpace(h) == "" {
			add(errorf(fmt.Sprintf("hooks.on_switchover[%d]", i), "empty command"))
		}
	}
	return errs
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
