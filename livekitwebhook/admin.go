package livekitwebhook

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// adminOnly guards endpoints that expose caller identities (sessions, DLQ,
// metrics): with Config.AdminToken set they need "Authorization: Bearer
// <token>"; without one they answer loopback clients only.
func (r *Receiver) adminOnly(next http.Handler) http.Handler {
	return AdminGuard(r.cfg.AdminToken, next)
}

// AdminGuard applies the admin rule of the sessions API to any handler:
// with a token, a matching "Authorization: Bearer <token>" is required (401
// otherwise); without one, only loopback clients are served (403 otherwise).
func AdminGuard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if token != "" {
			got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="lkwebhook"`)
				writeJSON(w, http.StatusUnauthorized, refusalBody{Error: "Unauthorized", Reason: "admin_token"})
				return
			}
		} else if !isLoopback(req.RemoteAddr) {
			writeJSON(w, http.StatusForbidden, refusalBody{Error: "Forbidden", Reason: "loopback_only"})
			return
		}
		next.ServeHTTP(w, req)
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
