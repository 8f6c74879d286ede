package livekitwebhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

var initStats sync.Once

func initWebhookStats() {
	initStats.Do(func() { webhook.InitWebhookStats(prometheus.Labels{}) })
}

// TestNotifierDeliversOnceAfterRetry: LiveKit's own notifier, a receiver
// whose first answer fails; the retry is accepted and stored once.
func TestNotifierDeliversOnceAfterRetry(t *testing.T) {
	initWebhookStats()
	tr := startReceiver(t, testConfig(t))
	var calls atomic.Int32
	front := http.NewServeMux()
	front.HandleFunc("/hook", func(w http.ResponseWriter, req *http.Request) {
		if calls.Add(1) == 1 {
			// Process it for real, then fail the answer: the sender retries
			// an event the receiver already stored.
			tr.ServeHTTP(&discardWriter{h: http.Header{}}, req)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		tr.ServeHTTP(w, req)
	})
	fs := startHTTP(t, front)
	n := webhook.NewResourceURLNotifier(webhook.ResourceURLNotifierParams{
		URL: fs + "/hook", APIKey: testKey, APISecret: testSecret,
		HTTPClientParams: webhook.HTTPClientParams{RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, MaxRetries: 3},
	})
	defer n.Stop(true)
	var sent atomic.Bool
	n.RegisterProcessedHook(func(_ context.Context, whi *livekit.WebhookInfo) {
		if whi.IsDropped {
			t.Errorf("event dropped: %s", whi.SendError)
		}
		sent.Store(true)
	})
	ev := roomEvent("EV_retry000001", "room_started", "retry-room", "RM_retry", time.Now().Unix())
	if err := n.QueueNotify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "notifier done", sent.Load)
	if got := calls.Load(); got < 2 {
		t.Fatalf("receiver saw %d attempts, want a retry", got)
	}
	if got := storedEvents(t, tr.Receiver); got != 1 {
		t.Fatalf("stored %d events, want 1", got)
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }

// TestDefaultNotifierAccepted: the notifier livekit-server uses, unchanged.
func TestDefaultNotifierAccepted(t *testing.T) {
	initWebhookStats()
	tr := startReceiver(t, testConfig(t))
	n, err := webhook.NewDefaultNotifier(webhook.WebHookConfig{URLs: []string{tr.url}, APIKey: testKey},
		auth.NewSimpleKeyProvider(testKey, testSecret))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"room_started", "participant_joined", "room_finished"} {
		ev := roomEvent("EV_default0000"+string(rune('a'+i)), name, "default-room", "RM_default", time.Now().Unix())
		if name == "participant_joined" {
			ev.Participant = &livekit.ParticipantInfo{Sid: "PA_1", Identity: "alice", JoinedAt: time.Now().Unix()}
		}
		if err := n.QueueNotify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	n.Stop(false) // waits for the queues to drain
	eventually(t, 10*time.Second, "3 events stored", func() bool { return storedEvents(t, tr.Receiver) == 3 })
}

func TestRefusals(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keys = "otherkey: another-secret-of-at-least-32-chars"
	cfg.MaxBodyBytes = 4096
	var refused []*RefusalError
	var mu sync.Mutex
	tr := startReceiver(t, cfg, WithRefusalHandler(func(_ *http.Request, re *RefusalError) {
		mu.Lock()
		refused = append(refused, re)
		mu.Unlock()
	}))
	ev := roomEvent("EV_refusal0001", "room_started", "r", "RM_r", time.Now().Unix())
	body := marshal(t, ev)
	good := sign(t, testKey, testSecret, body, 5*time.Minute)
	big := make([]byte, 8192)
	for i := range big {
		big[i] = ' '
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"iss": testKey, "exp": time.Now().Add(time.Minute).Unix(), "sha256": "x"}).SignedString([]byte(testSecret))
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testKey, "sha256": b64sha(body)}).SignedString([]byte(testSecret))
	future, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testKey, "nbf": time.Now().Add(10 * time.Minute).Unix(), "exp": time.Now().Add(20 * time.Minute).Unix(), "sha256": b64sha(body)}).SignedString([]byte(testSecret))
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testKey, "exp": time.Now().Add(-2 * time.Minute).Unix(), "sha256": b64sha(body)}).SignedString([]byte(testSecret))
	inLeeway, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testKey, "exp": time.Now().Add(-30 * time.Second).Unix(), "sha256": b64sha(body)}).SignedString([]byte(testSecret))
	tampered := []byte(strings.Replace(string(body), `"r"`, `"x"`, 1))
	malformed := []byte(`{"event":"room_started","room":{"sid":42}}`)
	noName := []byte(`{"id":"EV_noname","createdAt":"1"}`)

	cases := []struct {
		name   string
		method string
		body   []byte
		hdr    map[string]string
		status int
		reason string
		is     error
	}{
		{"wrong method", http.MethodGet, nil, nil, 405, "method_not_allowed", ErrMethodNotAllowed},
		{"content type", "", body, map[string]string{"Content-Type": "text/plain", "Authorization": good}, 415, "unsupported_media_type", ErrUnsupportedMedia},
		{"too large by length", "", big, map[string]string{"Authorization": good}, 413, "body_too_large", ErrBodyTooLarge},
		{"missing token", "", body, nil, 401, "missing_token", ErrMissingToken},
		{"garbage token", "", body, map[string]string{"Authorization": "not.a.jwt"}, 401, "malformed_token", ErrMalformedToken},
		{"unknown key", "", body, map[string]string{"Authorization": sign(t, "nokey", testSecret, body, time.Minute)}, 401, "unknown_key", ErrUnknownKey},
		{"bad signature", "", body, map[string]string{"Authorization": sign(t, testKey, "wrong-secret-wrong-secret-wrong-secret", body, time.Minute)}, 401, "bad_signature", ErrBadSignature},
		{"wrong algorithm", "", body, map[string]string{"Authorization": hs512}, 401, "bad_algorithm", ErrBadAlgorithm},
		{"no exp", "", body, map[string]string{"Authorization": noExp}, 401, "no_expiry", ErrNoExpiry},
		{"expired", "", body, map[string]string{"Authorization": expired}, 401, "expired", ErrExpired},
		{"not yet valid", "", body, map[string]string{"Authorization": future}, 401, "not_yet_valid", ErrNotYetValid},
		{"tampered body", "", tampered, map[string]string{"Authorization": good}, 401, "hash_mismatch", ErrHashMismatch},
		{"legacy header only, legacy off", "", body, map[string]string{"X-LiveKit-Signature": legacySig(testSecret, body)}, 401, "missing_token", ErrMissingToken},
		{"malformed event", "", malformed, map[string]string{"Authorization": sign(t, testKey, testSecret, malformed, time.Minute)}, 400, "malformed_event", ErrMalformedEvent},
		{"no event name", "", noName, map[string]string{"Authorization": sign(t, testKey, testSecret, noName, time.Minute)}, 400, "malformed_event", ErrMalformedEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			refused = nil
			mu.Unlock()
			var code int
			var resp string
			var hdr http.Header
			if c.method == http.MethodGet {
				res, err := http.Get(tr.url)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				code, hdr = res.StatusCode, res.Header
				if hdr.Get("Allow") != "POST" {
					t.Errorf("Allow = %q", hdr.Get("Allow"))
				}
			} else {
				code, resp, _ = post(t, tr.url, c.body, c.hdr)
			}
			if code != c.status {
				t.Fatalf("status %d (%s), want %d", code, resp, c.status)
			}
			if resp != "" && !strings.Contains(resp, `"reason": "`+c.reason+`"`) {
				t.Errorf("body %s lacks reason %s", resp, c.reason)
			}
			if strings.Contains(resp, testSecret) {
				t.Errorf("secret leaked in answer")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(refused) != 1 || !errors.Is(refused[0], c.is) || refused[0].Reason != c.reason {
				t.Fatalf("refusal handler got %v, want %v", refused, c.is)
			}
		})
	}
	// Still valid within the leeway, with a Bearer prefix, and under the
	// second key: accepted.
	for name, tok := range map[string]string{
		"leeway":     inLeeway,
		"bearer":     "Bearer " + good,
		"second key": sign(t, "otherkey", "another-secret-of-at-least-32-chars", body, time.Minute),
	} {
		code, resp, _ := post(t, tr.url, body, map[string]string{"Authorization": tok})
		if code != 200 {
			t.Errorf("%s: status %d %s", name, code, resp)
		}
	}
	if got := storedEvents(t, tr.Receiver); got != 1 {
		t.Fatalf("stored %d, want 1 (refusals store nothing, the three accepts are one id)", got)
	}
	if n := tr.Receiver.engine().Expected(); n != 0 {
		t.Fatalf("%d arrivals still announced to the engine after the refusals, want 0", n)
	}
}

// TestBodyTooLargeChunked: no Content-Length, the cap still holds.
func TestBodyTooLargeChunked(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 2048
	tr := startReceiver(t, cfg)
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 1024)
		for i := 0; i < 64; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, tr.url, pr)
	req.Header.Set("Authorization", "x")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Fatalf("status %d, want 413", res.StatusCode)
	}
}

func TestLegacySignatureOptIn(t *testing.T) {
	cfg := testConfig(t)
	cfg.LegacySignature = true
	tr := startReceiver(t, cfg)
	body := marshal(t, roomEvent("EV_legacy00001", "room_started", "r", "RM_l", time.Now().Unix()))
	if code, resp, _ := post(t, tr.url, body, map[string]string{"X-LiveKit-Signature": legacySig(testSecret, body)}); code != 200 {
		t.Fatalf("legacy accepted? %d %s", code, resp)
	}
	if code, resp, _ := post(t, tr.url, body, map[string]string{"X-LiveKit-Signature": legacySig("nope", body)}); code != 401 || !strings.Contains(resp, "bad_legacy_signature") {
		t.Fatalf("bad legacy: %d %s", code, resp)
	}
}

func TestUnknownEventStoredAndFilter(t *testing.T) {
	cfg := testConfig(t)
	cfg.Events = "room_started, brand_new_event"
	tr := startReceiver(t, cfg)
	code, resp := postEvent(t, tr.url, &livekit.WebhookEvent{Id: "EV_unknown0001", Event: "brand_new_event", CreatedAt: time.Now().Unix()})
	if code != 200 || resp != "accepted" {
		t.Fatalf("unknown event: %d %s", code, resp)
	}
	code, resp = postEvent(t, tr.url, roomEvent("EV_filtered001", "room_finished", "r", "RM_f", time.Now().Unix()))
	if code != 200 || resp != "ignored" {
		t.Fatalf("filtered event: %d %s", code, resp)
	}
	if got := storedEvents(t, tr.Receiver); got != 1 {
		t.Fatalf("stored %d, want 1", got)
	}
}

func TestDedupeSurvivesRestartAndNoIDDedupe(t *testing.T) {
	cfg := testConfig(t)
	tr := startReceiver(t, cfg)
	ev := roomEvent("EV_restart0001", "room_started", "r", "RM_restart", time.Now().Unix())
	if code, resp := postEvent(t, tr.url, ev); code != 200 || !strings.Contains(resp, "accepted") {
		t.Fatalf("%d %s", code, resp)
	}
	noID := roomEvent("", "room_started", "r2", "RM_noid", time.Now().Unix())
	postEvent(t, tr.url, noID)
	if code, resp := postEvent(t, tr.url, noID); code != 200 || !strings.Contains(resp, "duplicate") {
		t.Fatalf("no-id duplicate: %d %s", code, resp)
	}
	tr.srv.Close()
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A new process has not seen the id, so it answers "accepted"; the
	// events stream, rebuilt from disk, still keeps the event once.
	tr2 := startReceiver(t, cfg)
	if code, resp := postEvent(t, tr2.url, ev); code != 200 || resp != "accepted" {
		t.Fatalf("after restart: %d %s", code, resp)
	}
	if got := storedEvents(t, tr2.Receiver); got != 2 {
		t.Fatalf("stored %d after restart, want 2", got)
	}
}

func TestEngineDownAnswers503(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	// Hold the lifecycle lock: the engine restart waits for it, so the
	// engine stays unreachable until the end of the test.
	tr.life.Lock()
	defer tr.life.Unlock()
	tr.engine().Conn().Close()
	code, resp, hdr := post(t, tr.url, marshal(t, roomEvent("EV_down0000001", "room_started", "r", "RM_d", time.Now().Unix())),
		map[string]string{"Authorization": sign(t, testKey, testSecret, marshal(t, roomEvent("EV_down0000001", "room_started", "r", "RM_d", time.Now().Unix())), time.Minute)})
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(resp, "engine_unavailable") {
		t.Fatalf("engine down: %d %q Retry-After=%q", code, resp, hdr.Get("Retry-After"))
	}
	res, err := http.Get(tr.base + "/voice/livekit/sessions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if tr.Health().Status == "healthy" {
		t.Fatal("health says healthy with the engine down")
	}
}

func TestDrainAnswers503(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	tr.Drain()
	code, _ := postEvent(t, tr.url, roomEvent("EV_drain000001", "room_started", "r", "RM_d", time.Now().Unix()))
	if code != 503 {
		t.Fatalf("draining: %d, want 503", code)
	}
}

func b64sha(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func legacySig(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// TestContentTypes: LiveKit's type, JSON with parameters or in any case,
// and no type at all are accepted; anything else is 415.
func TestContentTypes(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	for i, tc := range []struct {
		contentType string
		want        int
	}{
		{"application/webhook+json", 200},
		{"", 200},
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"Application/Webhook+JSON", 200},
		{"text/plain", 415},
		{"application/json-patch+json", 415},
		{"application/webhook+json;;", 415},
	} {
		body := marshal(t, roomEvent(fmt.Sprintf("EV_ctype%06d", i), "room_started", "r", "RM_r", time.Now().Unix()))
		code, got, _ := post(t, tr.url, body, map[string]string{
			"Authorization": sign(t, testKey, testSecret, body, time.Minute), "Content-Type": tc.contentType})
		if code != tc.want {
			t.Errorf("Content-Type %q: %d %s, want %d", tc.contentType, code, got, tc.want)
		}
	}
}

// TestReadAll: the body comes back whole whatever the reader's chunking and
// the size hint, in one allocation when the hint is the length plus one.
func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100)
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int
	}{
		{"announced length", bytes.NewReader(body), len(body) + 1},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(body)), len(body) + 1},
		{"hint too small", bytes.NewReader(body), 7},
		{"hint exactly the length", bytes.NewReader(body), len(body)},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(body)), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.r, tc.size)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(body))
			}
		})
	}
	rd := bytes.NewReader(body)
	if allocs := testing.AllocsPerRun(20, func() { rd.Reset(body); _, _ = readAll(rd, len(body)+1) }); allocs > 1 {
		t.Errorf("%v allocations for a body of the announced length, want 1", allocs)
	}
	wantErr := errors.New("connection reset")
	if _, err := readAll(iotest.ErrReader(wantErr), 10); !errors.Is(err, wantErr) {
		t.Errorf("error %v, want %v", err, wantErr)
	}
}
