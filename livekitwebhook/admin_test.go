package livekitwebhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// adminCall sends one request to an admin endpoint and returns the status
// and the refusal reason (if any). host, when set, replaces the Host header.
func adminCall(t *testing.T, method, u, host string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var ref refusalBody
	_ = json.Unmarshal(b, &ref)
	return res.StatusCode, ref.Reason
}

// Without an admin token, a request that came through a reverse proxy on
// this host (its TCP peer is loopback) is not local: refused, whatever the
// proxy header; so is a Host that is not a loopback name (a page that
// rebound its DNS name to 127.0.0.1).
func TestAdminWithoutTokenRefusesProxiedRequests(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	sessions, dlq := tr.base+"/voice/livekit/sessions", tr.base+"/voice/livekit/dlq"
	if code, reason := adminCall(t, http.MethodGet, sessions, "", nil); code != http.StatusOK {
		t.Fatalf("local GET sessions: %d %s", code, reason)
	}
	proxied := map[string]string{
		"Forwarded":         "for=203.0.113.9;proto=https",
		"X-Forwarded-For":   "203.0.113.9",
		"X-Real-IP":         "203.0.113.9",
		"X-Forwarded-Host":  "hooks.example.com",
		"X-Forwarded-Proto": "https",
		"Via":               "1.1 envoy",
	}
	for h, v := range proxied {
		for _, u := range []string{sessions, sessions + "/call-1", dlq} {
			if code, reason := adminCall(t, http.MethodGet, u, "", map[string]string{h: v}); code != http.StatusForbidden || reason != "proxied" {
				t.Errorf("GET %s with %s: %d %q, want 403 proxied", u, h, code, reason)
			}
		}
	}
	for _, host := range []string{"hooks.example.com", "evil.example:8080", "10.0.0.5:8080"} {
		if code, reason := adminCall(t, http.MethodGet, sessions, host, nil); code != http.StatusForbidden || reason != "host_not_local" {
			t.Errorf("GET sessions with Host %s: %d %q, want 403 host_not_local", host, code, reason)
		}
	}
	for _, host := range []string{"localhost:8080", "LOCALHOST", "127.0.0.1", "[::1]:8080", "app.localhost:1"} {
		if code, reason := adminCall(t, http.MethodGet, sessions, host, nil); code != http.StatusOK {
			t.Errorf("GET sessions with Host %s: %d %q, want 200", host, code, reason)
		}
	}
	// The webhook itself is not an admin endpoint: LiveKit behind a proxy is fine.
	body := marshal(t, roomEvent("EV_proxied0001", "room_started", "r", "RM_p", time.Now().Unix()))
	code, resp, _ := post(t, tr.url, body, map[string]string{"Authorization": sign(t, testKey, testSecret, body, time.Minute), "X-Forwarded-For": "203.0.113.9"})
	if code != http.StatusOK {
		t.Fatalf("webhook through a proxy: %d %s", code, resp)
	}
}

// A state-changing admin request that a web page could make a browser send
// (a simple POST, or any POST from another origin) is refused; a JSON POST
// of the same origin is served. The sessions API stays read-only.
func TestAdminStateChangesRefuseForgedRequests(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	replay := tr.base + "/voice/livekit/dlq/replay?all=true"
	reconcile := tr.base + "/voice/livekit/reconcile"
	self := "http://" + mustHost(t, tr.base)
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, c := range []struct {
		name   string
		url    string
		hdr    map[string]string
		status int
		reason string
	}{
		{"replay, no Content-Type", replay, nil, 415, "json_required"},
		{"replay, form", replay, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "json_required"},
		{"replay, text/plain cross-site", replay, map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403, "cross_origin"},
		{"replay, multipart", replay, map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "json_required"},
		{"replay, JSON from another origin", replay, map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "cross_origin"},
		{"replay, JSON from a null origin", replay, map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "cross_origin"},
		{"replay, JSON from another port", replay, map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403, "cross_origin"},
		{"reconcile, no Content-Type", reconcile, nil, 415, "json_required"},
		{"reconcile, JSON from another origin", reconcile, map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "cross_origin"},
		{"replay, JSON", replay, jsonCT, 200, ""},
		{"replay, JSON with charset, same origin", replay, map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": self}, 200, ""},
		{"reconcile, JSON (no reconciler configured)", reconcile, jsonCT, 404, ""},
	} {
		code, reason := adminCall(t, http.MethodPost, c.url, "", c.hdr)
		if code != c.status || (c.reason != "" && reason != c.reason) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, reason, c.status, c.reason)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if code, _ := adminCall(t, m, tr.base+"/voice/livekit/sessions", "", jsonCT); code != http.StatusMethodNotAllowed {
			t.Errorf("%s sessions: %d, want 405", m, code)
		}
	}
}

// With an admin token everything works as before, from anywhere and through
// proxies; only a cross-origin state change is refused.
func TestAdminWithToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminToken = "admin-t0ken-for-tests"
	tr := startReceiver(t, cfg)
	bearer := map[string]string{"Authorization": "Bearer " + cfg.AdminToken}
	proxied := map[string]string{"Authorization": "Bearer " + cfg.AdminToken, "X-Forwarded-For": "203.0.113.9", "Via": "1.1 nginx"}
	sessions := tr.base + "/voice/livekit/sessions"
	for _, c := range []struct {
		name, method, url, host string
		hdr                     map[string]string
		status                  int
	}{
		{"no token", http.MethodGet, sessions, "", nil, 401},
		{"wrong token", http.MethodGet, sessions, "", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"sessions", http.MethodGet, sessions, "", bearer, 200},
		{"sessions through a proxy", http.MethodGet, sessions, "hooks.example.com", proxied, 200},
		{"dlq", http.MethodGet, tr.base + "/voice/livekit/dlq", "", bearer, 200},
		{"replay, simple POST with the token", http.MethodPost, tr.base + "/voice/livekit/dlq/replay?all=true", "", bearer, 200},
		{"replay through a proxy", http.MethodPost, tr.base + "/voice/livekit/dlq/replay?all=true", "hooks.example.com", proxied, 200},
		{"replay, no token", http.MethodPost, tr.base + "/voice/livekit/dlq/replay?all=true", "", map[string]string{"Content-Type": "application/json"}, 401},
		{"replay with the token from another origin", http.MethodPost, tr.base + "/voice/livekit/dlq/replay?all=true", "",
			map[string]string{"Authorization": "Bearer " + cfg.AdminToken, "Origin": "https://evil.example"}, 403},
	} {
		if code, reason := adminCall(t, c.method, c.url, c.host, c.hdr); code != c.status {
			t.Errorf("%s: %d %q, want %d", c.name, code, reason, c.status)
		}
	}
}

func mustHost(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
