package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"fulcrum/internal/config"
)

// acmeALPN is the protocol name of the TLS-ALPN-01 challenge (RFC 8737).
const acmeALPN = "acme-tls/1"

// acmeManager obtains and renews certificates from an ACME CA (RFC 8555)
// with certmagic, storing the account and certificates in the state
// directory. Challenges are answered by TLS-ALPN-01 on the frontend's own
// listener (GetCertificate recognizes the challenge handshakes); HTTP-01 is
// off because the frontend may not own port 80.
type acmeManager struct {
	names []string
	cache *certmagic.Cache
	magic *certmagic.Config
	log   *slog.Logger
}

func newACME(cfg *config.ACME, stateDir string, log *slog.Logger) (*acmeManager, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("edge: acme: no state directory")
	}
	zl := zap.New(slogCore{log: log.With("acme", cfg.Directory)})
	var roots *x509.CertPool
	if cfg.CARoot != "" {
		pem, err := os.ReadFile(cfg.CARoot)
		if err != nil {
			return nil, fmt.Errorf("edge: acme: ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edge: acme: ca_root %s: no PEM certificate in it", cfg.CARoot)
		}
	}
	m := &acmeManager{names: cfg.Names, log: log}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		Logger:           zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: filepath.Join(stateDir, "acme")},
		Logger:  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:                   cfg.Directory,
		TestCA:               cfg.Directory,
		Email:                cfg.Email,
		Agreed:               true,
		TrustedRoots:         roots,
		DisableHTTPChallenge: true,
		// Where certmagic may open its own challenge listener when the
		// frontend is not on port 443: loopback only.
		ListenHost: "127.0.0.1",
		Logger:     zl,
	})}
	return m, nil
}

func (m *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// run obtains the certificates (or loads them from storage), then keeps
// them renewed until ctx is done.
func (m *acmeManager) run(ctx context.Context) error {
	defer m.cache.Stop()
	if err := m.magic.ManageSync(ctx, m.names); err != nil {
		return fmt.Errorf("edge: acme: %w", err)
	}
	m.log.Info("acme certificates managed", "names", m.names)
	<-ctx.Done()
	return nil
}

// slogCore passes certmagic's zap records to slog.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }

func (c slogCore) With(fs []zapcore.Field) zapcore.Core {
	return slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		args = append(args, k, v)
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, e.Message, args...)
	return nil
}

func (c slogCore) Sync() error { return nil }
