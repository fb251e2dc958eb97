package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// LB is the file format of `fulcrum lb -c FILE`.
type LB struct {
	// Admin is the address of the runtime API, stats page and /metrics
	// (empty: none).
	Admin string `yaml:"admin"`
	// AdminTokenFile holds the bearer token required when Admin is not a
	// loopback address.
	AdminTokenFile string `yaml:"admin_token_file"`
	// StateDir keeps what fulcrum creates for itself: the local CA of
	// self-signed certificates, ACME accounts and certificates (default
	// $XDG_STATE_HOME/fulcrum, else ~/.local/state/fulcrum).
	StateDir string `yaml:"state_dir"`
	// Grace is how long in-flight requests may take to finish on SIGTERM
	// (default 10s).
	Grace     Duration   `yaml:"grace"`
	Frontends []Frontend `yaml:"frontends"`
	Backends  []Backend  `yaml:"backends"`
	// VRRP, when set, elects with peer load balancers which one holds the
	// virtual addresses.
	VRRP *VRRP `yaml:"vrrp"`
}

// Frontend is a set of listening addresses and the rules that choose a backend.
type Frontend struct {
	Name string `yaml:"name"`
	// Mode is http or tcp (default http).
	Mode string   `yaml:"mode"`
	Bind []string `yaml:"bind"`
	// DefaultBackend serves requests that match no route.
	DefaultBackend string  `yaml:"default_backend"`
	Routes         []Route `yaml:"routes"`
	// TimeoutClient is how long a client connection may stay idle, between
	// requests or while sending one (default 60s).
	TimeoutClient Duration `yaml:"timeout_client"`
	// TimeoutRequestHeader bounds the time to receive a whole request head
	// (default 10s), the defence against slow headers.
	TimeoutRequestHeader Duration `yaml:"timeout_request_header"`
	// MaxHeaderBytes limits the size of a request head (default 16384, like
	// HAProxy's tune.bufsize).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// AccessLog writes one line per request (tcp: per connection) to the
	// log (default true).
	AccessLog *bool `yaml:"access_log"`

	// Edge protection and TLS (see edge.go).
	TLS *TLS `yaml:"tls"`
	// RedirectHTTPS answers every plain-HTTP request with a 308 to https.
	RedirectHTTPS bool `yaml:"redirect_https"`
	// HSTS is the max-age of a Strict-Transport-Security header on TLS
	// frontends (0: none).
	HSTS Duration `yaml:"hsts"`
	// ACL rules, first match wins; no match allows.
	ACL       []ACLRule  `yaml:"acl"`
	RateLimit *RateLimit `yaml:"rate_limit"`
	// MaxConns caps the frontend's concurrent connections (0: no cap);
	// beyond it new connections wait in the kernel's accept queue.
	MaxConns int `yaml:"max_conns"`
	// TrustedProxies are the peers (CIDRs) whose X-Forwarded-For and
	// PROXY protocol headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AcceptProxy expects a PROXY protocol v1 or v2 header on every
	// connection from a trusted proxy.
	AcceptProxy bool `yaml:"accept_proxy"`
}

// Route sends matching HTTP requests to a backend. Empty fields match anything.
type Route struct {
	Host       string `yaml:"host"`
	PathPrefix string `yaml:"path_prefix"`
	Backend    string `yaml:"backend"`
}

// Backend is a group of servers and how traffic is spread over them.
type Backend struct {
	Name string `yaml:"name"`
	// Mode is http or tcp (default http).
	Mode string `yaml:"mode"`
	// Balance is the algorithm (default roundrobin).
	Balance string  `yaml:"balance"`
	Health  *Health `yaml:"health"`
	// Observe counts errors seen on live traffic toward marking a server down.
	Observe *Observe `yaml:"observe"`
	// Retries is how many times a failed connection is tried again (default 3).
	Retries *int `yaml:"retries"`
	// Redispatch lets a retry go to another server.
	Redispatch bool `yaml:"redispatch"`
	// TimeoutConnect bounds a connection attempt to a server (default 5s).
	TimeoutConnect Duration `yaml:"timeout_connect"`
	// TimeoutServer is how long a server may stay silent once it has the
	// request, and how long a tcp-mode connection may idle (default 60s).
	TimeoutServer Duration `yaml:"timeout_server"`
	Servers       []Server `yaml:"servers"`
	// TLS encrypts the connections to the servers.
	TLS *BackendTLS `yaml:"tls"`
	// SendProxy sends a PROXY protocol header (v1 or v2) on every
	// connection to a server.
	SendProxy string `yaml:"send_proxy"`
}

// Server is one backend server.
type Server struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// Weight is 0..256 (default 1); 0 takes no new traffic.
	Weight *int `yaml:"weight"`
	// MaxConn caps concurrent connections for balance `first` (0: no cap).
	MaxConn int `yaml:"maxconn"`
}

// Health is an active health check.
type Health struct {
	// Type is tcp, http or mysql.
	Type string `yaml:"type"`
	// Interval between checks (default 2s).
	Interval Duration `yaml:"interval"`
	// Timeout of one check (default: Interval).
	Timeout Duration `yaml:"timeout"`
	// Rise consecutive successes mark a server up (default 2); Fall
	// consecutive failures mark it down (default 3).
	Rise int `yaml:"rise"`
	Fall int `yaml:"fall"`
	// Method and Path of an http check (default OPTIONS /, like HAProxy's
	// option httpchk).
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Host header of an http check (default: the server's address).
	Host string `yaml:"host"`
	// Expect is the healthy status range of an http check, "200-399" by
	// default; a single code ("200") or a range.
	Expect string `yaml:"expect"`
	// Role for a mysql check: primary (writable) or replica (read-only,
	// replicating, lag under MaxLag).
	Role         string   `yaml:"role"`
	MaxLag       Duration `yaml:"max_lag"`
	User         string   `yaml:"user"`
	PasswordFile string   `yaml:"password_file"`
	// TLS verifies the server's certificate on a mysql check's connection
	// (nil: TLS whenever the server offers it, unverified).
	TLS *DBTLS `yaml:"tls"`
}

// Observe is passive health checking, HAProxy's `observe` with `error-limit`.
type Observe struct {
	// ErrorLimit consecutive errors count as one failed check (default 10).
	ErrorLimit int `yaml:"error_limit"`
	// HTTP5xx also counts 5xx responses (except 501 and 505) as errors.
	HTTP5xx bool `yaml:"http_5xx"`
}

// Balance algorithms known to fulcrum.
var balanceAlgorithms = []string{"roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random"}

// LoadLB reads, defaults and validates an LB configuration file.
func LoadLB(path string) (*LB, error) {
	var c LB
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseLB is LoadLB on data already read; name is used in errors.
func ParseLB(name string, data []byte) (*LB, error) {
	var c LB
	if err := decode(name, data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *LB) setDefaults() {
	if c.VRRP != nil {
		c.VRRP.setDefaults()
	}
	if c.Grace == 0 {
		c.Grace = Duration(10 * time.Second)
	}
	def(&c.StateDir, DefaultStateDir())
	for i := range c.Frontends {
		f := &c.Frontends[i]
		def(&f.Mode, "http")
		defDur(&f.TimeoutClient, 60*time.Second)
		defDur(&f.TimeoutRequestHeader, 10*time.Second)
		if f.MaxHeaderBytes == 0 {
			f.MaxHeaderBytes = 16384
		}
		if f.TLS != nil {
			f.TLS.setDefaults()
		}
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		def(&b.Mode, "http")
		def(&b.Balance, "roundrobin")
		if b.TLS != nil {
			b.TLS.setDefaults()
		}
		if b.Retries == nil {
			b.Retries = ptr(3)
		}
		defDur(&b.TimeoutConnect, 5*time.Second)
		defDur(&b.TimeoutServer, 60*time.Second)
		if h := b.Health; h != nil {
			defDur(&h.Interval, 2*time.Second)
			defDur(&h.Timeout, h.Interval.D())
			if h.Rise == 0 {
				h.Rise = 2
			}
			if h.Fall == 0 {
				h.Fall = 3
			}
			if h.Type == "http" {
				def(&h.Method, "OPTIONS")
				def(&h.Path, "/")
				def(&h.Expect, "200-399")
			}
			if h.Type == "mysql" {
				defDur(&h.MaxLag, 5*time.Second)
			}
		}
		if o := b.Observe; o != nil && o.ErrorLimit == 0 {
			o.ErrorLimit = 10
		}
		for j := range b.Servers {
			if b.Servers[j].Weight == nil {
				b.Servers[j].Weight = ptr(1)
			}
		}
	}
}

func (c *LB) validate() []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if c.Admin != "" {
		if _, err := ParseHostPort(c.Admin); err != nil {
			add(errorf("admin", "%q: %v", c.Admin, err))
		} else if !IsLoopback(c.Admin) && c.AdminTokenFile == "" {
			add(errorf("admin", "%q is not a loopback address: admin_token_file is required", c.Admin))
		}
	}
	if c.VRRP != nil {
		errs = append(errs, c.VRRP.validate("vrrp")...)
	}
	if len(c.Frontends) == 0 {
		add(errorf("frontends", "at least one frontend is required"))
	}
	backends := map[string]*Backend{}
	for i := range c.Backends {
		b := &c.Backends[i]
		p := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			add(errorf(p+".name", "a name is required"))
		} else if _, dup := backends[b.Name]; dup {
			add(errorf(p+".name", "duplicate backend name %q", b.Name))
		} else {
			backends[b.Name] = b
		}
		errs = append(errs, b.validate(p)...)
	}
	seenFE := map[string]bool{}
	seenBind := map[string]string{}
	for i := range c.Frontends {
		f := &c.Frontends[i]
		p := fmt.Sprintf("frontends[%d]", i)
		if f.Name == "" {
			add(errorf(p+".name", "a name is required"))
		} else if seenFE[f.Name] {
			add(errorf(p+".name", "duplicate frontend name %q", f.Name))
		}
		seenFE[f.Name] = true
		if !oneOf(f.Mode, "http", "tcp") {
			add(errorf(p+".mode", "%q: must be http or tcp", f.Mode))
		}
		if len(f.Bind) == 0 {
			add(errorf(p+".bind", "at least one address is required"))
		}
		for j, a := range f.Bind {
			bp := fmt.Sprintf("%s.bind[%d]", p, j)
			if err := checkBind(a); err != nil {
				add(errorf(bp, "%q: %v", a, err))
			} else if other, dup := seenBind[a]; dup && !strings.HasSuffix(a, ":0") {
				add(errorf(bp, "%q is already bound by frontend %q", a, other))
			} else {
				seenBind[a] = f.Name
			}
		}
		if f.TLS != nil {
			errs = append(errs, f.TLS.validate(p+".tls")...)
		}
		errs = append(errs, validateEdge(f, p)...)
		if f.MaxHeaderBytes < 1024 || f.MaxHeaderBytes > 1<<20 {
			add(errorf(p+".max_header_bytes", "%d: must be 1024..1048576", f.MaxHeaderBytes))
		}
		checkRef := func(key, name string) {
			if name == "" {
				return
			}
			b, ok := backends[name]
			if !ok {
				add(errorf(key, "%q: no such backend", name))
				return
			}
			if b.Mode != f.Mode {
				add(errorf(key, "%q: backend mode %s does not match frontend mode %s", name, b.Mode, f.Mode))
			}
		}
		if f.DefaultBackend == "" && len(f.Routes) == 0 {
			add(errorf(p+".default_backend", "a default_backend or routes are required"))
		}
		checkRef(p+".default_backend", f.DefaultBackend)
		for j, r := range f.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if f.Mode != "http" {
				add(errorf(rp, "routes need mode http"))
			}
			if r.Backend == "" {
				add(errorf(rp+".backend", "a backend is required"))
			}
			if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
				add(errorf(rp+".path_prefix", "%q: must start with /", r.PathPrefix))
			}
			checkRef(rp+".backend", r.Backend)
		}
	}
	return errs
}

func (b *Backend) validate(p string) []*fieldError {
	var errs []*fieldError
	add := func(e *fieldError) { errs = append(errs, e) }
	if !oneOf(b.Mode, "http", "tcp") {
		add(errorf(p+".mode", "%q: must be http or tcp", b.Mode))
	}
	if !oneOf(b.Balance, balanceAlgorithms...) {
		add(errorf(p+".balance", "%q: unknown algorithm, want one of %s", b.Balance, strings.Join(balanceAlgorithms, ", ")))
	}
	if b.Balance == "uri" && b.Mode != "http" {
		add(errorf(p+".balance", "uri needs mode http"))
	}
	if *b.Retries < 0 || *b.Retries > 100 {
		add(errorf(p+".retries", "%d: must be 0..100", *b.Retries))
	}
	if len(b.Servers) == 0 {
		add(errorf(p+".servers", "at least one server is required"))
	}
	if len(b.Servers) > 4095 {
		add(errorf(p+".servers", "%d servers: at most 4095", len(b.Servers)))
	}
	names := map[string]bool{}
	for j, s := range b.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		if s.Name == "" {
			add(errorf(sp+".name", "a name is required"))
		} else if strings.ContainsAny(s.Name, "/ \t") {
			add(errorf(sp+".name", "%q: must not contain '/' or spaces", s.Name))
		} else if names[s.Name] {
			add(errorf(sp+".name", "duplicate server name %q", s.Name))
		}
		names[s.Name] = true
		if _, err := ParseHostPort(s.Address); err != nil {
			add(errorf(sp+".address", "%q: %v", s.Address, err))
		}
		if w := *s.Weight; w < 0 || w > 256 {
			add(errorf(sp+".weight", "%d: must be 0..256", w))
		}
		if s.MaxConn < 0 {
			add(errorf(sp+".maxconn", "%d: must be 0 or more", s.MaxConn))
		}
	}
	if h := b.Health; h != nil {
		hp := p + ".health"
		switch h.Type {
		case "tcp":
		case "http":
			if b.Mode != "http" {
				add(errorf(hp+".type", "http checks need mode http"))
			}
			if !strings.HasPrefix(h.Path, "/") {
				add(errorf(hp+".path", "%q: must start with /", h.Path))
			}
			if _, _, err := ParseStatusRange(h.Expect); err != nil {
				add(errorf(hp+".expect", "%q: %v", h.Expect, err))
			}
		case "mysql":
			if b.Mode != "tcp" {
				add(errorf(hp+".type", "mysql checks need mode tcp"))
			}
			if !oneOf(h.Role, "primary", "replica") {
				add(errorf(hp+".role", "%q: must be primary or replica", h.Role))
			}
			if h.User == "" {
				add(errorf(hp+".user", "a user is required for mysql checks"))
			}
			if h.TLS != nil {
				errs = append(errs, h.TLS.validate(hp+".tls", true)...)
			}
		default:
			add(errorf(hp+".type", "%q: must be tcp, http or mysql", h.Type))
		}
		if h.TLS != nil && h.Type != "mysql" {
			add(errorf(hp+".tls", "only mysql checks take tls (an http check follows the backend's tls)"))
		}
		if h.Interval.D() < 10*time.Millisecond {
			add(errorf(hp+".interval", "%v: must be at least 10ms", h.Interval.D()))
		}
		if h.Timeout.D() <= 0 {
			add(errorf(hp+".timeout", "%v: must be positive", h.Timeout.D()))
		}
		if h.Rise < 1 || h.Fall < 1 {
			add(errorf(hp, "rise %d, fall %d: both must be at least 1", h.Rise, h.Fall))
		}
	}
	if b.TLS != nil {
		errs = append(errs, b.TLS.validate(p+".tls")...)
	}
	if b.SendProxy != "" && !oneOf(b.SendProxy, "v1", "v2") {
		add(errorf(p+".send_proxy", "%q: must be v1 or v2", b.SendProxy))
	}
	if o := b.Observe; o != nil && o.ErrorLimit < 1 {
		add(errorf(p+".observe.error_limit", "%d: must be at least 1", o.ErrorLimit))
	}
	return errs
}

// ParseHostPort checks a host:port address whose host is an IP address or a
// name and whose port is 1..65535.
func ParseHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("want host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q: must be 1..65535", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return "", fmt.Errorf("host %q: not an IP address or host name", host)
		}
	}
	return s, nil
}

// DefaultStateDir is $XDG_STATE_HOME/fulcrum, else ~/.local/state/fulcrum
// (./.fulcrum without a home directory).
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fulcrum")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "fulcrum")
	}
	return ".fulcrum"
}

// IsLoopback reports whether a host:port names a loopback address
// (127.0.0.0/8, ::1 or localhost).
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// checkBind checks a listening address: like ParseHostPort, but port 0
// (any free port) is allowed.
func checkBind(s string) error {
	if host, port, err := net.SplitHostPort(s); err == nil && port == "0" {
		_, err = ParseHostPort(net.JoinHostPort(host, "1"))
		return err
	}
	_, err := ParseHostPort(s)
	return err
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

// ParseStatusRange parses "200" or "200-399".
func ParseStatusRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("want a status code or a range such as 200-399")
	}
	return lo, hi, nil
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

func ptr[T any](v T) *T { return &v }

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
