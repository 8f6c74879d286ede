package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// cookieName holds the console's login: a value derived from the admin
// token (an HMAC of a fixed label keyed by it), never the token itself, so
// that a cookie read off a disk does not give the bearer token for the
// APIs, and every cookie dies when the token changes.
const cookieName = "lkwh_console"

// mac is HMAC-SHA256 of label keyed by key, in hex.
func mac(key []byte, label string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	return hex.EncodeToString(h.Sum(nil))
}

// guard decides who may see the console and checks state-changing
// requests.
type guard struct {
	token  string
	access func(*http.Request) (int, string)
	// session is the cookie value a login sets ("" without a token);
	// csrfKey keys the CSRF token: the session value, or without a token a
	// random secret of this process.
	session string
	csrfKey []byte
}

func newGuard(token string, access func(*http.Request) (int, string)) *guard {
	g := &guard{token: token, access: access}
	if token != "" {
		g.session = mac([]byte(token), "lkwebhook console session v1")
		g.csrfKey = []byte(g.session)
	} else {
		g.csrfKey = make([]byte, 32)
		_, _ = rand.Read(g.csrfKey)
	}
	if g.access == nil {
		g.access = func(*http.Request) (int, string) { return http.StatusForbidden, "no_access_rule" }
	}
	return g
}

// allowed reports whether req may read the console: a valid login cookie,
// or the admin rule of the sessions API (bearer token; without a token,
// plainly local requests only). status and reason refuse it otherwise.
func (g *guard) allowed(req *http.Request) (ok bool, status int, reason string) {
	if g.token != "" {
		if c, err := req.Cookie(cookieName); err == nil &&
			subtle.ConstantTimeCompare([]byte(c.Value), []byte(g.session)) == 1 {
			return true, 0, ""
		}
	}
	if status, reason := g.access(req); status != 0 {
		return false, status, reason
	}
	return true, 0, ""
}

// loginOK compares a submitted token with the admin token in constant
// time (their HMACs, so that the length does not show either).
func (g *guard) loginOK(given string) bool {
	if g.token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(mac([]byte(given), "lkwebhook console session v1")), []byte(g.session)) == 1
}

// csrf is the token every console POST carries. It is tied to the login
// (derived from the session value), or without a token to this process.
func (g *guard) csrf() string { return mac(g.csrfKey, "lkwebhook console csrf v1") }

// postOK checks a state-changing request: same origin, and the CSRF token
// in the form field "csrf" or the X-CSRF-Token header.
func (g *guard) postOK(req *http.Request) bool {
	if !sameOrigin(req) {
		return false
	}
	got := req.Header.Get("X-CSRF-Token")
	if got == "" {
		got = req.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(g.csrf())) == 1
}

// setLogin sets the login cookie: HttpOnly, SameSite=Strict, Secure over
// TLS, scoped to the console's path.
func (g *guard) setLogin(w http.ResponseWriter, req *http.Request, path string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: g.session, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: req.TLS != nil, MaxAge: 12 * 3600})
}

func clearLogin(w http.ResponseWriter, req *http.Request, path string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: req.TLS != nil, MaxAge: -1})
}

// sameOrigin: no Origin header (a same-origin form post of an older
// browser, or not a browser), or one whose host is the request's Host.
func sameOrigin(req *http.Request) bool {
	o := req.Header.Get("Origin")
	if o == "" {
		if ref := req.Header.Get("Referer"); ref != "" {
			u, err := url.Parse(ref)
			return err == nil && strings.EqualFold(u.Host, req.Host)
		}
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, req.Host)
}
