package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"fulcrum/internal/config"
)

// upstream reverse-proxies a path prefix to an application server: the
// design's web server → application server split.
type upstream struct {
	prefix    string // without a trailing slash, "" for "/"
	proxy     *httputil.ReverseProxy
	transport *http.Transport
}

func newUpstream(u config.Upstream, log *slog.Logger) (*upstream, error) {
	target, err := url.Parse(u.URL)
	if err != nil {
		return nil, err
	}
	up := &upstream{prefix: strings.TrimSuffix(u.PathPrefix, "/")}
	log = log.With("upstream", u.URL, "path_prefix", u.PathPrefix)
	tr := &http.Transport{
		// Never an environment proxy: upstreams are on the local network.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: u.Timeout.D(),
	}
	up.transport = tr
	up.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			if u.StripPrefix {
				pr.Out.URL.Path = stripPrefix(pr.In.URL.Path, up.prefix)
				pr.Out.URL.RawPath = ""
			}
			pr.SetURL(target)
			// Keep the chain the load balancer started, then add its hop.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport: tr,
		ModifyResponse: func(resp *http.Response) error {
			// This server's X-Served-By is already set; the upstream's
			// would be a second value.
			resp.Header.Del(headerServedBy)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				status = http.StatusGatewayTimeout
			}
			if r.Context().Err() != nil {
				// The client went away: nginx's 499, not the upstream's fault.
				w.WriteHeader(499)
				return
			}
			log.Warn("upstream failed", "path", r.URL.Path, "status", status, "err", err)
			http.Error(w, http.StatusText(status)+": the application server did not answer", status)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return up, nil
}

// register adds the upstream to mux for its prefix and everything under it.
func (up *upstream) register(mux *http.ServeMux) {
	mux.Handle(up.prefix+"/", up.proxy)
	if up.prefix != "" {
		mux.Handle(up.prefix, up.proxy)
	}
}

// stripPrefix removes prefix from p, keeping a leading slash.
func stripPrefix(p, prefix string) string {
	p = strings.TrimPrefix(p, prefix)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
