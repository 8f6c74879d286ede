package livekitwebhook

import (
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// adminOnly guards endpoints that expose caller identities (sessions, DLQ,
// metrics): see AdminGuard.
func (r *Receiver) adminOnly(next http.Handler) http.Handler {
	return AdminGuard(r.cfg.AdminToken, next)
}

// adminAction guards a route that changes state on POST (DLQ replay,
// reconcile): AdminGuard, then for methods other than GET and HEAD a
// request forged by a web page is refused. Such a request has an Origin of
// another site (403), and without a token it cannot carry Content-Type:
// application/json (415 otherwise): a browser sends neither a cross-site
// JSON request nor an Authorization header without a CORS preflight, which
// the receiver never grants. So a page cannot make a browser on the
// operator's machine replay dead letters.
func (r *Receiver) adminAction(next http.Handler) http.Handler {
	return r.adminOnly(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			if status, reason := forgeryRefusal(r.cfg.AdminToken != "", req); status != 0 {
				writeJSON(w, status, refusalBody{Error: http.StatusText(status), Reason: reason})
				return
			}
		}
		next.ServeHTTP(w, req)
	}))
}

// proxyHeaders are set by reverse proxies (nginx, Envoy, Caddy, Traefik,
// load balancers): a request carrying one came from somewhere else, even
// when its TCP peer is a proxy on this host.
var proxyHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Via"}

// AdminGuard applies the admin rule of the sessions API to any handler.
// With a token, a matching "Authorization: Bearer <token>" is required (401
// otherwise). Without one, only plainly local requests are served (403
// otherwise): the TCP peer is loopback, no proxy header is present
// (Forwarded, X-Forwarded-*, X-Real-IP, Via) and Host is a loopback name or
// address, so that neither a reverse proxy on this host nor a web page that
// points its DNS name at 127.0.0.1 makes the endpoints public. A proxy that
// adds none of these headers cannot be told apart from a local client: set
// a token whenever one runs on the host.
func AdminGuard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if status, reason := accessRefusal(token, req); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="lkwebhook"`)
			}
			writeJSON(w, status, refusalBody{Error: http.StatusText(status), Reason: reason})
			return
		}
		next.ServeHTTP(w, req)
	})
}

// accessRefusal returns the status and reason refusing req, or 0.
func accessRefusal(token string, req *http.Request) (int, string) {
	if token != "" {
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return http.StatusUnauthorized, "admin_token"
		}
		return 0, ""
	}
	switch {
	case !isLoopback(req.RemoteAddr):
		return http.StatusForbidden, "loopback_only"
	case proxied(req.Header):
		return http.StatusForbidden, "proxied"
	case !loopbackHost(req.Host):
		return http.StatusForbidden, "host_not_local"
	}
	return 0, ""
}

// forgeryRefusal returns the status and reason refusing a state-changing
// request a web page could have made, or 0.
func forgeryRefusal(withToken bool, req *http.Request) (int, string) {
	if !sameOrigin(req) {
		return http.StatusForbidden, "cross_origin"
	}
	if !withToken { // with one, the Authorization header already needs a preflight
		mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		if mt != "application/json" {
			return http.StatusUnsupportedMediaType, "json_required"
		}
	}
	return 0, ""
}

func proxied(h http.Header) bool {
	for _, k := range proxyHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// sameOrigin: no Origin (not a browser, or a same-origin GET), or an Origin
// whose host is the request's Host. "null" (sandboxed frames, redirects)
// is another site.
func sameOrigin(req *http.Request) bool {
	o := req.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, req.Host)
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHost reports whether a Host header names this machine:
// "localhost" (and *.localhost, which browsers resolve to loopback
// themselves) or a loopback address. An empty Host (HTTP/1.0) is no
// browser's.
func loopbackHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
