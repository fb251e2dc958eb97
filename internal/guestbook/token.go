package guestbook

import (
	"net/http"
	"strconv"
	"strings"
)

// Read-your-writes: a write answers with a token (the MariaDB GTID position
// of the write); a read that carries it is served by a node that has applied
// the write. API clients echo the X-Read-After header; browsers get it back
// in a cookie.
const (
	HeaderReadAfter = "X-Read-After"
	HeaderDBNode    = "X-DB-Node"
	cookieReadAfter = "fulcrum_read_after"
	// tokenMaxAge bounds how long a browser keeps asking for its write: far
	// longer than any lag a replica may have and still take reads.
	tokenMaxAge = 60
)

// maxToken bounds a token's length: a GTID list with one entry per
// replication domain, of which a cluster has a few.
const maxToken = 256

// ParseToken checks a read-after token: a MariaDB GTID list, entries
// "domain-server-sequence" of decimal numbers separated by commas (MariaDB
// docs, "Global Transaction ID"). It returns ok false for anything else, so
// that a client cannot pass arbitrary text to the database.
func ParseToken(s string) (token string, ok bool) {
	if s == "" || len(s) > maxToken {
		return "", false
	}
	for _, gtid := range strings.Split(s, ",") {
		parts := strings.Split(gtid, "-")
		if len(parts) != 3 {
			return "", false
		}
		for i, bits := range []int{32, 32, 64} { // domain, server id, sequence
			if _, err := strconv.ParseUint(parts[i], 10, bits); err != nil {
				return "", false
			}
		}
	}
	return s, true
}

// readAfter returns the token a request carries, header first, or "".
func readAfter(r *http.Request) string {
	if t, ok := ParseToken(r.Header.Get(HeaderReadAfter)); ok {
		return t
	}
	if c, err := r.Cookie(cookieReadAfter); err == nil {
		if t, ok := ParseToken(c.Value); ok {
			return t
		}
	}
	return ""
}

// setReadAfter hands a write's token back to the client.
func setReadAfter(w http.ResponseWriter, token string) {
	if token == "" {
		return
	}
	w.Header().Set(HeaderReadAfter, token)
	http.SetCookie(w, &http.Cookie{
		Name: cookieReadAfter, Value: token, Path: "/",
		MaxAge: tokenMaxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}
