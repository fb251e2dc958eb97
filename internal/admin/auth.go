package admin

import (
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Loopback reports whether addr (host:port) listens on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host means every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return loopbackHost(host)
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// static reports whether path is part of the stats page itself, which holds
// no data and is served without a token so the page can ask for one.
func static(path string) bool { return path == "/" || strings.HasPrefix(path, "/ui/") }

// allow checks a request before routing, answering it when refused.
func (a *Admin) allow(w http.ResponseWriter, r *http.Request) bool {
	if !a.authReq {
		// Open on loopback: refuse foreign Host names so a web page
		// cannot reach the API through DNS rebinding.
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if !loopbackHost(host) {
			writeError(w, r, http.StatusForbidden, "host %q: the admin API answers only to loopback names", r.Host)
			return false
		}
	} else if !static(r.URL.Path) {
		switch {
		case a.opts.Token == "":
			writeError(w, r, http.StatusUnauthorized, "admin address %s is not loopback and no admin_token_file is configured", a.opts.Addr)
			return false
		case !a.tokenOK(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="fulcrum"`)
			writeError(w, r, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer TOKEN)")
			return false
		}
	}
	// A cross-site form can POST without a preflight unless the body must
	// be JSON; requiring it makes browsers ask first, and we never say yes.
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodDelete {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/json" {
			writeError(w, r, http.StatusUnsupportedMediaType, "%s %s: Content-Type must be application/json", r.Method, r.URL.Path)
			return false
		}
	}
	return true
}

func (a *Admin) tokenOK(r *http.Request) bool { return bearerOK(r, a.opts.Token) }

// bearerOK reports whether r carries "Authorization: Bearer token".
func bearerOK(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(token)) == 1
}

// RequireToken serves h only to requests carrying the bearer token, for
// the other APIs of fulcrum (the database manager's) that listen beyond
// loopback.
func RequireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerOK(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fulcrum"`)
			http.Error(w, "a valid bearer token is required (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
