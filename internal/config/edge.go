package config

// TLS is a frontend's `tls` section: TLS termination.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// BackendTLS is a backend's `tls` section: TLS to its servers.
type BackendTLS struct {
	Verify bool `yaml:"verify"`
}

// ACLRule allows or denies requests by client address, host and path.
type ACLRule struct {
	Action string `yaml:"action"`
}

// RateLimit limits each client address.
type RateLimit struct {
	Rate float64 `yaml:"rate"`
}

func (t *TLS) setDefaults()                            {}
func (t *TLS) validate(p string) []*fieldError         { return nil }
func (t *BackendTLS) setDefaults()                     {}
func (t *BackendTLS) validate(p string) []*fieldError  { return nil }
func validateEdge(f *Frontend, p string) []*fieldError { return nil }
