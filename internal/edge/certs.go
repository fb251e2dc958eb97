package edge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Certs holds a frontend's certificates and keeps them fresh: files are
// reloaded when they change, OCSP staples fetched and refreshed, ACME
// certificates obtained and renewed. Handshakes read the current set
// through an atomic pointer, so a reload never blocks or drops a
// connection.
type Certs struct {
	log    *slog.Logger
	every  time.Duration // how often Run checks files and staples
	ocsp   bool
	client *http.Client // for OCSP responders
	now    func() time.Time
	acme   *acmeManager // nil unless the certificates come from ACME

	conf        *tls.Config   // whose session ticket keys Run rotates
	ticketEvery time.Duration // a new ticket key this often (default 1h)
	ticketKeep  int           // keys accepted (default 24: tickets resume for a day)

	cur atomic.Pointer[certSet]

	mu sync.Mutex
	// mu guards the field below.
	sources []*certSource
}

// certSource is one certificate and where it comes from.
type certSource struct {
	certFile, keyFile   string // empty for a certificate made in memory
	certStamp, keyStamp fileStamp
	cert                *tls.Certificate // as loaded, without staple
	local               *localIssuer     // signs the staple itself (local CA); nil: fetched
	staple              []byte
	stapleNext          time.Time // when to fetch the staple again
	stapleFailed        bool      // the last fetch failed (logged once)
}

// fileStamp tells whether a file changed: a replacement by rename changes
// the inode, an edit in place the size or modification time.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s, nil
}

// certSet is what handshakes see: immutable once published.
type certSet struct {
	byName map[string][]*tls.Certificate // exact DNS names, lower case
	wild   map[string][]*tls.Certificate // "*.example.com" under ".example.com"
	def    *tls.Certificate              // when no name matches: the first
}

func newCerts(log *slog.Logger, every time.Duration, ocsp bool) *Certs {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &Certs{
		log:         log,
		every:       every,
		ocsp:        ocsp,
		client:      &http.Client{Timeout: 10 * time.Second},
		now:         time.Now,
		ticketEvery: time.Hour,
		ticketKeep:  24,
	}
}

// addFile loads a certificate/key pair that Run will watch.
func (c *Certs) addFile(certFile, keyFile string) error {
	s := &certSource{certFile: certFile, keyFile: keyFile}
	if err := s.load(); err != nil {
		return err
	}
	c.sources = append(c.sources, s)
	return nil
}

// addLocal adds a certificate made in memory by the local CA, which
// signs its staples.
func (c *Certs) addLocal(cert *tls.Certificate, ca *localIssuer) {
	c.sources = append(c.sources, &certSource{cert: cert, local: ca})
}

func (s *certSource) load() error {
	cs, err := stampOf(s.certFile)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	ks, err := stampOf(s.keyFile)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("certificate %s, key %s: %w", s.certFile, s.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("certificate %s: %w", s.certFile, err)
		}
	}
	s.cert, s.certStamp, s.keyStamp = &cert, cs, ks
	s.staple, s.stapleNext, s.stapleFailed = nil, time.Time{}, false
	return nil
}

func (s *certSource) changed() bool {
	if s.certFile == "" {
		return false
	}
	cs, err1 := stampOf(s.certFile)
	ks, err2 := stampOf(s.keyFile)
	return err1 == nil && err2 == nil && (cs != s.certStamp || ks != s.keyStamp)
}

// publish builds the set handshakes see from the sources. c.mu is held.
func (c *Certs) publish() {
	set := &certSet{byName: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	for _, s := range c.sources {
		cert := s.cert
		if len(s.staple) > 0 {
			cp := *cert
			cp.OCSPStaple = s.staple
			cert = &cp
		}
		if set.def == nil {
			set.def = cert
		}
		if cert.Leaf == nil {
			continue
		}
		for _, n := range cert.Leaf.DNSNames {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*"); ok && strings.HasPrefix(rest, ".") {
				set.wild[rest] = append(set.wild[rest], cert)
			} else {
				set.byName[n] = append(set.byName[n], cert)
			}
		}
	}
	c.cur.Store(set)
}

// GetCertificate chooses the certificate for a handshake by SNI: an exact
// name, then a wildcard, then the first certificate. Among several for one
// name it picks the first the client supports (ECDSA or RSA). It is the
// tls.Config hook and does not allocate for lower-case names.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil {
		return c.acme.getCertificate(hello)
	}
	set := c.cur.Load()
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if cs := set.byName[name]; len(cs) > 0 {
			return pick(cs, hello), nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if cs := set.wild[name[i:]]; len(cs) > 0 {
				return pick(cs, hello), nil
			}
		}
	}
	if set.def == nil {
		return nil, fmt.Errorf("edge: no certificate for %q", hello.ServerName)
	}
	return set.def, nil
}

func pick(cs []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(cs) > 1 {
		for _, c := range cs {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return cs[0]
}

// Reload reloads the certificate files that changed since they were last
// read. A file that fails to load (a half-written pair, say) keeps the
// previous certificate in service and is tried again at the next call.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	changed := false
	for _, s := range c.sources {
		if !s.changed() {
			continue
		}
		if err := s.load(); err != nil {
			errs = append(errs, err)
			continue
		}
		changed = true
		c.log.Info("certificate reloaded", "cert", s.certFile, "names", s.cert.Leaf.DNSNames, "not_after", s.cert.Leaf.NotAfter)
	}
	if changed {
		c.publish()
	}
	if len(errs) > 0 {
		return fmt.Errorf("edge: reloading certificates: %w", errs[0])
	}
	return nil
}

// Run keeps the certificates fresh until ctx is done: it checks the files
// every reload_interval, refreshes OCSP staples when they are due and, for
// ACME, obtains and renews certificates. It also rotates the session ticket
// keys hourly and keeps a day of them, where Go alone would accept a ticket
// key for 7 days, so a stolen key exposes at most a day of resumed sessions.
func (c *Certs) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.rotateTickets(ctx)
	}()
	if c.acme != nil {
		return c.acme.run(ctx)
	}
	c.refreshStaples(ctx)
	t := time.NewTicker(c.every)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := c.Reload()
		if err != nil && err.Error() != lastErr {
			c.log.Warn("certificate not reloaded, the previous one stays in service", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		c.refreshStaples(ctx)
	}
}

// rotateTickets installs a new session ticket key every ticketEvery and
// keeps the last ticketKeep for decrypting (RFC 5077 section 5.5: rotate
// keys, since they protect every resumed session).
func (c *Certs) rotateTickets(ctx context.Context) {
	if c.conf == nil {
		return
	}
	var keys [][32]byte
	rotate := func() {
		var k [32]byte
		rand.Read(k[:])
		keys = append([][32]byte{k}, keys[:min(len(keys), c.ticketKeep-1)]...)
		c.conf.SetSessionTicketKeys(keys)
	}
	rotate()
	t := time.NewTicker(c.ticketEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rotate()
		}
	}
}
