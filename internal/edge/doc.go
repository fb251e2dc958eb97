// Package edge is what a frontend does before a request reaches a backend:
// TLS termination (TLS 1.2 and 1.3, SNI, OCSP stapling, certificate reload,
// a local CA with its own OCSP responder, RFC 6960, and ACME, RFC 8555),
// access control lists, per-client rate and connection limits bounded in
// memory like HAProxy's stick tables, trusted proxies, and the PROXY
// protocol v1 and v2 (HAProxy's doc/proxy-protocol.txt). It also builds the
// TLS client configuration used toward backends.
//
// The per-request calls (ACL.Allow, Limiter.Allow, Trusted.Contains,
// Certs.GetCertificate) do not allocate; every nil receiver allows
// everything, so a frontend without the feature needs no special case.
package edge
