package livekitwebhook

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// consoleGet fetches a console page (path under ConsolePath) with hdr.
func consoleGet(t testing.TB, tr *testReceiver, path string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tr.base+tr.Config().ConsolePath+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// consolePost posts a form to the console.
func consolePost(t testing.TB, tr *testReceiver, path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tr.base+tr.Config().ConsolePath+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

// TestConsoleCallTimelineAndReplay: a call appears in the list, its page
// shows the report, every stored webhook with its raw body (turnPassword
// redacted), the duplicate, the hook calls with their errors; the failed
// hook's dead letter is replayed from the console with the CSRF token and
// refused without it; room names and identities are escaped.
func TestConsoleCallTimelineAndReplay(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	cfg := testConfig(t)
	cfg.MaxAttempts = 1
	cfg.ConsoleTraceURL = "http://jaeger.example/trace/{trace_id}"
	tr := startReceiver(t, cfg, WithTracerProvider(sdktrace.NewTracerProvider()), WithHooks(Hooks{OnParticipantJoined: func(context.Context, *livekit.WebhookEvent, Session) error {
		if failing.Load() {
			return errors.New("crm down")
		}
		return nil
	}}))
	room, sid := `<script>alert("room")</script>`, livekitwebhooktest.NewID("RM_")
	const turn = "TURN-SECRET-value-1234"
	started := livekitwebhooktest.RoomEvent("room_started", room, sid)
	started.Room.TurnPassword = turn
	started.Room.Metadata = `{"note":"<img src=x onerror=alert(1)>"}`
	joined := livekitwebhooktest.ParticipantEvent("participant_joined", room, sid,
		&livekit.ParticipantInfo{Identity: `<b>eve</b>`, Kind: livekit.ParticipantInfo_STANDARD})
	joined.Room.TurnPassword = turn
	for _, ev := range []*livekit.WebhookEvent{started, joined, joined} {
		if code, body := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	eventually(t, 20*time.Second, "the failed hook dead-lettered", func() bool {
		dl, err := tr.DeadLetters(context.Background(), 0)
		return err == nil && len(dl) == 1
	})

	code, list, hdr := consoleGet(t, tr, "/", nil)
	if code != http.StatusOK {
		t.Fatalf("calls: %d %s", code, list)
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("no CSP: %v", hdr)
	}
	if !strings.Contains(list, html.EscapeString(room)) || strings.Contains(list, room) {
		t.Errorf("room name not escaped in the calls page")
	}
	if !strings.Contains(list, `id="count-dlq">1<`) || !strings.Contains(list, `id="count-active">1<`) {
		t.Errorf("counts missing:\n%s", list)
	}
	code, call, _ := consoleGet(t, tr, "/call?sid="+url.QueryEscape(sid), nil)
	if code != http.StatusOK {
		t.Fatalf("call: %d %s", code, call)
	}
	for _, want := range []string{
		html.EscapeString(`<b>eve</b>`), "participant_joined", "room_started", started.Id, "hook <code>OnParticipantJoined</code> attempt 1",
		"crm down", "duplicate dropped at intake", "Dead-lettered", "[redacted]", "&lt;img src=x",
	} {
		if !strings.Contains(call, want) {
			t.Errorf("call page lacks %q", want)
		}
	}
	if strings.Contains(call, `<b>eve</b>`) || strings.Contains(call, "<img src=x") {
		t.Errorf("identity or metadata not escaped")
	}
	if !regexp.MustCompile(`href="http://jaeger.example/trace/[0-9a-f]{32}"`).MatchString(call) {
		t.Errorf("no trace link in the call page")
	}

	// Replay: refused without the CSRF token, done with it.
	form := url.Values{"id": {joined.Id}}
	if code, _, _ := consolePost(t, tr, "/deadletters/replay", form, nil); code != http.StatusForbidden {
		t.Fatalf("replay without CSRF: %d, want 403", code)
	}
	_, dlPage, _ := consoleGet(t, tr, "/deadletters", nil)
	form.Set("csrf", csrfOf(t, dlPage))
	if code, _, _ := consolePost(t, tr, "/deadletters/replay", form, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("replay from another origin: %d, want 403", code)
	}
	failing.Store(false)
	code, res, _ := consolePost(t, tr, "/deadletters/replay", form, map[string]string{"Accept": "application/json"})
	if code != http.StatusOK || !strings.Contains(res, `"replayed":1`) {
		t.Fatalf("replay: %d %s", code, res)
	}
	eventually(t, 20*time.Second, "the replayed hook succeeded", func() bool {
		_, call, _ := consoleGet(t, tr, "/call?sid="+url.QueryEscape(sid), nil)
		return strings.Contains(call, "attempt 2 at") && strings.Contains(call, ": ok</li>")
	})

	// No secret, admin token or turnPassword in any page.
	for _, p := range []string{"/", "/call?sid=" + url.QueryEscape(sid), "/deadletters", "/intake"} {
		_, body, _ := consoleGet(t, tr, p, nil)
		for _, secret := range []string{turn, testSecret} {
			if strings.Contains(body, secret) {
				t.Errorf("page %s shows a secret", p)
			}
		}
	}
}

// TestConsoleAccess: with an admin token, the console needs the bearer
// header or the login cookie (set by the form, never holding the token);
// without one it answers loopback only.
func TestConsoleAccess(t *testing.T) {
	const token = "console-admin-token-0123456789"
	cfg := testConfig(t)
	cfg.AdminToken = token
	tr := startReceiver(t, cfg)

	if code, _, _ := consoleGet(t, tr, "/", nil); code != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d, want 401", code)
	}
	if code, _, h := consoleGet(t, tr, "/", map[string]string{"Accept": "text/html"}); code != http.StatusSeeOther || !strings.HasSuffix(h.Get("Location"), "/login") {
		t.Fatalf("browser without login: %d %v, want a redirect to the login form", code, h)
	}
	if code, _, _ := consoleGet(t, tr, "/", map[string]string{"Authorization": "Bearer " + token}); code != http.StatusOK {
		t.Fatalf("bearer: %d", code)
	}
	if code, _, _ := consolePost(t, tr, "/login", url.Values{"token": {"wrong"}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	code, _, h := consolePost(t, tr, "/login", url.Values{"token": {token}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	cookie := h.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=" + tr.Config().ConsolePath} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, token) {
		t.Fatalf("the cookie holds the admin token")
	}
	kv := strings.SplitN(strings.SplitN(cookie, ";", 2)[0], "=", 2)
	code, page, _ := consoleGet(t, tr, "/", map[string]string{"Cookie": kv[0] + "=" + kv[1]})
	if code != http.StatusOK {
		t.Fatalf("with the cookie: %d", code)
	}
	if strings.Contains(page, token) {
		t.Fatalf("the page shows the admin token")
	}
	// The cookie does not open the APIs, and a forged one nothing.
	if code, _, _ := consoleGet(t, tr, "/", map[string]string{"Cookie": kv[0] + "=" + strings.Repeat("0", 64)}); code != http.StatusUnauthorized {
		t.Fatalf("forged cookie: %d", code)
	}
	// Logout needs the CSRF token.
	if code, _, _ := consolePost(t, tr, "/logout", url.Values{}, map[string]string{"Cookie": kv[0] + "=" + kv[1]}); code != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d", code)
	}
	code, _, h = consolePost(t, tr, "/logout", url.Values{"csrf": {csrfOf(t, page)}}, map[string]string{"Cookie": kv[0] + "=" + kv[1]})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", code, h)
	}

	// Without a token: loopback only, proxies refused.
	open := startReceiver(t, testConfig(t))
	if code, _, _ := consoleGet(t, open, "/", nil); code != http.StatusOK {
		t.Fatalf("loopback without token: %d", code)
	}
	if code, _, _ := consoleGet(t, open, "/", map[string]string{"X-Forwarded-For": "203.0.113.9"}); code != http.StatusForbidden {
		t.Fatalf("proxied without token: %d", code)
	}
}

// TestConsoleIntakeAndVerify: refusals are listed with their reason and
// never their token; the verify form explains a captured request without
// showing a secret, and needs the CSRF token.
func TestConsoleIntakeAndVerify(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	ev := livekitwebhooktest.RoomEvent("room_started", "verify-room", livekitwebhooktest.NewID("RM_"))
	ev.Room.TurnPassword = "TURN-in-verify-9876"
	body := marshal(t, ev)
	badTok := sign(t, testKey, "another-secret-of-at-least-32-chars!!", body, time.Minute)
	if code, _, _ := post(t, tr.url, body, map[string]string{"Authorization": badTok}); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	_, page, _ := consoleGet(t, tr, "/intake", nil)
	if !strings.Contains(page, "<code>bad_signature</code>") || strings.Contains(page, badTok) {
		t.Fatalf("intake page: refusal missing or token shown:\n%s", page)
	}
	good := sign(t, testKey, testSecret, body, time.Minute)
	form := url.Values{"authorization": {good}, "body": {string(body)}}
	if code, _, _ := consolePost(t, tr, "/intake/verify", form, nil); code != http.StatusForbidden {
		t.Fatalf("verify without CSRF: %d", code)
	}
	form.Set("csrf", csrfOf(t, page))
	code, res, _ := consolePost(t, tr, "/intake/verify", form, nil)
	if code != http.StatusOK || !strings.Contains(res, "Verifies") || !strings.Contains(res, "room_started") {
		t.Fatalf("verify: %d\n%s", code, res)
	}
	for _, s := range []string{testSecret, "TURN-in-verify-9876", good} {
		if strings.Contains(res, s) {
			t.Errorf("verify answer shows %q", s)
		}
	}
	form.Set("authorization", badTok)
	_, res, _ = consolePost(t, tr, "/intake/verify", form, nil)
	if !strings.Contains(res, "Does not verify (bad_signature)") {
		t.Errorf("bad verdict missing:\n%s", res)
	}
}

// TestConsoleShowsReportHookCalls: the report's hook calls, a failure (from
// the trail) then the retried success (kept in the room's record), show on
// the call page in order, numbered as attempts.
func TestConsoleShowsReportHookCalls(t *testing.T) {
	var calls atomic.Int32
	cfg := testConfig(t)
	cfg.MaxAttempts = 5
	tr := startReceiver(t, cfg, WithHooks(Hooks{Name: "billing", OnSessionEnded: func(context.Context, Report) error {
		if calls.Add(1) == 1 {
			return errors.New("billing down")
		}
		return nil
	}}))
	sid := livekitwebhooktest.NewID("RM_")
	for _, ev := range []*livekit.WebhookEvent{
		livekitwebhooktest.RoomEvent("room_started", "billed", sid),
		livekitwebhooktest.RoomEvent("room_finished", "billed", sid),
	} {
		if code, body := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	var call string
	eventually(t, 30*time.Second, "both report hook calls on the call page", func() bool {
		_, call, _ = consoleGet(t, tr, "/call?sid="+url.QueryEscape(sid), nil)
		return strings.Contains(call, "attempt 2 at")
	})
	first := strings.Index(call, "attempt 1 at")
	second := strings.Index(call, "attempt 2 at")
	if first < 0 || second < first || !strings.Contains(call[first:second], "billing down") || !strings.Contains(call[second:], ": ok</li>") {
		t.Fatalf("report hooks on the call page:\n%s", call)
	}
}
