package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Web is the file format of `fulcrum web -c FILE`: one web/app server that
// serves a static directory, an application mounted in-process and upstream
// application servers reverse-proxied for a path prefix (issue 5).
//
// A request is routed to the longest matching upstream path prefix, then to
// the application's routes, then to the static directory.
type Web struct {
	// Name identifies this server in the X-Served-By header of every
	// response and in logs (required).
	Name string `yaml:"name"`
	// Listen is the host:port to serve HTTP on (required; port 0 picks a
	// free port, for tests and embedding programs).
	Listen string `yaml:"listen"`
	// Admin is the address of the server's status (GET /status, JSON) and
	// Prometheus metrics (GET /metrics) (empty: none). They live on their
	// own port so that no application path is taken.
	Admin string `yaml:"admin"`
	// Grace is how long in-flight requests may take to finish on SIGTERM
	// (default 10s).
	Grace Duration `yaml:"grace"`
	// Drain is how long the server keeps serving after SIGTERM while
	// /healthz answers 503, so that load balancers stop sending before the
	// listener closes (default 0s: close at once). Grace starts after it.
	Drain Duration `yaml:"drain"`
	// AccessLog logs one line per request (default true).
	AccessLog *bool `yaml:"access_log"`
	// Static serves a directory of files (nil: no static files).
	Static *Static `yaml:"static"`
	// App names the application mounted in-process at / (empty: none).
	// Known: guestbook, which needs Database.
	App string `yaml:"app"`
	// Upstreams are application servers reverse-proxied for a path prefix.
	Upstreams []Upstream `yaml:"upstreams"`
	// Database is the MariaDB cluster the application uses and /healthz
	// checks (nil: none, and /healthz does not look at a database).
	Database *WebDatabase `yaml:"database"`
	// TLS serves Listen over HTTPS only (nil: plain HTTP), for load
	// balancers whose backend has a `tls` section. The admin address stays
	// plain HTTP.
	TLS *WebTLS `yaml:"tls"`
}

// WebTLS is the certificate a web server serves Listen with: TLS 1.2 or
// later, HTTP/2 and HTTP/1.1 by ALPN. The files are read at start.
type WebTLS struct {
	// Cert is a PEM file of the certificate (chain, leaf first) and Key
	// its private key (both required); relative paths are taken from the
	// configuration file's directory.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Static is a directory served as files.
type Static struct {
	// Root is the directory; a relative path is taken from the directory of
	// the configuration file (required).
	Root string `yaml:"root"`
	// CacheControl is the Cache-Control header of every file (default
	// "public, max-age=60"; "none" sends no header).
	CacheControl string `yaml:"cache_control"`
	// Gzip compresses responses of compressible types for clients that
	// accept it (default true).
	Gzip *bool `yaml:"gzip"`
}

// Upstream is an application server that serves every request whose path is
// PathPrefix or lies under it.
type Upstream struct {
	// PathPrefix starts with /; /legacy matches /legacy and /legacy/x but
	// not /legacyx (required).
	PathPrefix string `yaml:"path_prefix"`
	// URL is the upstream's http:// or https:// base URL; the request path
	// is appended to its path (required).
	URL string `yaml:"url"`
	// StripPrefix removes PathPrefix from the path before forwarding
	// (default false: the upstream sees the path as the client sent it).
	StripPrefix bool `yaml:"strip_prefix"`
	// Timeout bounds the wait for the upstream's response headers (default
	// 30s).
	Timeout Duration `yaml:"timeout"`
}

// WebDatabase is how a web server reaches the database cluster, through the
// read/write router.
type WebDatabase struct {
	// Nodes are the host:port addresses of every MariaDB node; the router
	// finds the primary among them (required).
	Nodes []string `yaml:"nodes"`
	// User is the application's database user (required).
	User string `yaml:"user"`
	// PasswordFile holds the user's password (a trailing newline is
	// ignored); a relative path is taken from the directory of the
	// configuration file. Empty: the environment variable
	// FULCRUM_DB_APP_PASSWORD, or no password.
	PasswordFile string `yaml:"password_file"`
	// Password is set by programs that embed the server; files use
	// PasswordFile.
	Password string `yaml:"-"`
	// Name is the database (schema) the application uses (required). It must
	// exist: the application user cannot create it.
	Name string `yaml:"name"`
	// MaxLag is the replication lag above which a replica takes no reads
	// (default 5s).
	MaxLag Duration `yaml:"max_lag"`
	// CheckInterval is how often the router reads each node's role and lag
	// (default 1s).
	CheckInterval Duration `yaml:"check_interval"`
	// TLS verifies the nodes' certificates (nil: TLS whenever a node
	// offers it, unverified). The CA path is relative to the
	// configuration file's directory.
	TLS *DBTLS `yaml:"tls"`
}

// Apps known to `fulcrum web`.
var webApps = []string{"guestbook"}

// LoadWeb reads, defaults and validates a web server configuration file.
// Relative paths in it (static.root, database.password_file) are resolved
// against the file's directory.
func LoadWeb(path string) (*Web, error) {
	var c Web
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	c.resolvePaths(filepath.Dir(path))
	return &c, nil
}

// ParseWeb is LoadWeb on data already read; name is used in errors and
// relative paths stay relative to the working directory.
func ParseWeb(name string, data []byte) (*Web, error) {
	var c Web
	if err := decode(name, data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Check fills in the defaults of a Web built in code rather than read from
// a file, and validates it; name stands for the file in errors.
func (c *Web) Check(name string) error {
	c.setDefaults()
	var es Errors
	for _, fe := range c.validate() {
		es = append(es, &Error{File: name, Key: fe.path, Msg: fe.msg})
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// AccessLogOn reports whether the access log is on (the default).
func (c *Web) AccessLogOn() bool { return c.AccessLog == nil || *c.AccessLog }

// GzipOn reports whether compression is on (the default).
func (s *Static) GzipOn() bool { return s.Gzip == nil || *s.Gzip }

func (c *Web) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if c.Static != nil {
		abs(&c.Static.Root)
	}
	if c.Database != nil {
		abs(&c.Database.PasswordFile)
		if c.Database.TLS != nil {
			abs(&c.Database.TLS.CA)
		}
	}
	if c.TLS != nil {
		abs(&c.TLS.Cert)
		abs(&c.TLS.Key)
	}
}

func (c *Web) setDefaults() {
	defDur(&c.Grace, 10*time.Second)
	if s := c.Static; s != nil {
		def(&s.CacheControl, "public, max-age=60")
	}
	for i := range c.Upstreams {
		defDur(&c.Upstreams[i].Timeout, 30*time.Second)
	}
	if d := c.Database; d != nil {
		defDur(&d.MaxLag, 5*time.Second)
		defDur(&d.CheckInterval, time.Second)
	}
}

func (c *Web) validate() []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	switch {
	case c.Name == "":
		add(errorf("name", "a name is required (it is sent as X-Served-By)"))
	case !validServerName(c.Name):
		add(errorf("name", "%q: use 1..64 letters, digits, '.', '_' or '-'", c.Name))
	}
	if c.Listen == "" {
		add(errorf("listen", "a host:port address is required"))
	} else if err := checkListen(c.Listen); err != nil {
		add(errorf("listen", "%q: %v", c.Listen, err))
	}
	if c.Admin != "" {
		if err := checkListen(c.Admin); err != nil {
			add(errorf("admin", "%q: %v", c.Admin, err))
		} else if c.Admin == c.Listen && !strings.HasSuffix(c.Admin, ":0") {
			add(errorf("admin", "%q: must differ from listen", c.Admin))
		}
	}
	if c.Grace.D() < 0 {
		add(errorf("grace", "%v: must not be negative", c.Grace.D()))
	}
	if c.Drain.D() < 0 {
		add(errorf("drain", "%v: must not be negative", c.Drain.D()))
	}
	if s := c.Static; s != nil {
		if s.Root == "" {
			add(errorf("static.root", "a directory is required"))
		}
		if strings.ContainsAny(s.CacheControl, "\r\n") {
			add(errorf("static.cache_control", "%q: must be one line", s.CacheControl))
		}
	}
	if c.App != "" && !oneOf(c.App, webApps...) {
		add(errorf("app", "%q: unknown application, want one of %s", c.App, strings.Join(webApps, ", ")))
	}
	if c.App == "guestbook" && c.Database == nil {
		add(errorf("app", "guestbook needs a database section"))
	}
	if c.Static == nil && c.App == "" && len(c.Upstreams) == 0 {
		add(errorf("static", "nothing to serve: set static, app or upstreams"))
	}
	prefixes := map[string]bool{}
	for i, u := range c.Upstreams {
		p := fmt.Sprintf("upstreams[%d]", i)
		switch {
		case !strings.HasPrefix(u.PathPrefix, "/"):
			add(errorf(p+".path_prefix", "%q: must start with /", u.PathPrefix))
		case u.PathPrefix == "/healthz" || strings.HasPrefix(u.PathPrefix, "/healthz/"):
			add(errorf(p+".path_prefix", "%q: /healthz belongs to the server", u.PathPrefix))
		case strings.ContainsAny(u.PathPrefix, "?#{} \t") || strings.Contains(u.PathPrefix, ".."):
			add(errorf(p+".path_prefix", "%q: must be a plain path", u.PathPrefix))
		}
		norm := strings.TrimSuffix(u.PathPrefix, "/")
		if prefixes[norm] {
			add(errorf(p+".path_prefix", "%q: duplicate prefix", u.PathPrefix))
		}
		prefixes[norm] = true
		if pu, err := url.Parse(u.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			add(errorf(p+".url", "%q: want an absolute http:// or https:// URL", u.URL))
		} else if pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
			add(errorf(p+".url", "%q: must not carry a query, fragment or credentials", u.URL))
		}
		if u.Timeout.D() <= 0 {
			add(errorf(p+".timeout", "%v: must be positive", u.Timeout.D()))
		}
	}
	if d := c.Database; d != nil {
		if len(d.Nodes) == 0 {
			add(errorf("database.nodes", "at least one node is required"))
		}
		seen := map[string]bool{}
		for i, n := range d.Nodes {
			np := fmt.Sprintf("database.nodes[%d]", i)
			if _, err := ParseHostPort(n); err != nil {
				add(errorf(np, "%q: %v", n, err))
			} else if seen[n] {
				add(errorf(np, "%q: duplicate node", n))
			}
			seen[n] = true
		}
		if d.User == "" {
			add(errorf("database.user", "a user is required"))
		}
		if d.Name == "" {
			add(errorf("database.name", "a database name is required"))
		} else if !validDBName(d.Name) {
			add(errorf("database.name", "%q: use 1..64 letters, digits or '_'", d.Name))
		}
		if d.MaxLag.D() <= 0 {
			add(errorf("database.max_lag", "%v: must be positive", d.MaxLag.D()))
		}
		if d.CheckInterval.D() < 10*time.Millisecond {
			add(errorf("database.check_interval", "%v: must be at least 10ms", d.CheckInterval.D()))
		}
		if d.TLS != nil {
			errs = append(errs, d.TLS.validate("database.tls", false)...)
		}
	}
	// The files are read by the server (New), once relative paths are
	// resolved against the file's directory.
	if t := c.TLS; t != nil && (t.Cert == "" || t.Key == "") {
		add(errorf("tls", "cert and key are both required: cert %q, key %q", t.Cert, t.Key))
	}
	return errs
}

// checkListen is ParseHostPort that also accepts port 0.
func checkListen(s string) error {
	if host, port, err := net.SplitHostPort(s); err == nil && port == "0" {
		s = net.JoinHostPort(host, "1")
	}
	_, err := ParseHostPort(s)
	return err
}

// validServerName accepts names that are safe in a header and a log line.
func validServerName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// validDBName accepts unquoted MariaDB identifiers without '$', which never
// need quoting in a DSN or a statement.
func validDBName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
