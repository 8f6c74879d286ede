package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
)

// EnvCapture=1 enables TestCaptureFixtures, which rewrites fixtureDir.
const EnvCapture = "LKWEBHOOK_CAPTURE"

const (
	captureRoom     = "voice-sess-42"
	captureMetadata = `{"session_id":"sess-42"}`
	idleRoom        = "voice-idle"
	idleMetadata    = `{"session_id":"sess-43"}`
	webhookPath     = "/voice/livekit/webhooks"
)

// captured is one request seen by the recorder.
type captured struct {
	Fixture
	Event     *livekit.WebhookEvent
	DecodeErr error
	VerifyErr error // result of webhook.Receive at arrival, with the real clock
	Arrived   time.Time
}

// recorder is an HTTP endpoint that keeps every request exactly as received.
type recorder struct {
	t        testing.TB
	start    time.Time
	provider auth.KeyProvider

	mu   sync.Mutex
	reqs []*captured
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	now := time.Now()
	if err != nil {
		rec.t.Errorf("recorder: reading body: %v", err)
		http.Error(w, "read error", http.StatusInternalServerError)
		return
	}
	headers := map[string]string{"Host": r.Host}
	for k, v := range r.Header {
		headers[k] = strings.Join(v, ", ")
	}
	c := &captured{
		Fixture: Fixture{
			Method:         r.Method,
			Path:           r.URL.RequestURI(),
			Headers:        headers,
			Body:           string(body),
			ReceivedAtUnix: now.Unix(),
		},
		Arrived: now,
	}
	if !utf8.Valid(body) {
		rec.t.Errorf("recorder: body is not valid UTF-8, cannot store it as a JSON string: %q", body)
	}

	// Check with LiveKit's own receiver while the token is fresh.
	clone := r.Clone(r.Context())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	_, c.VerifyErr = webhook.Receive(clone, rec.provider)

	ev := &livekit.WebhookEvent{}
	if c.DecodeErr = protojson.Unmarshal(body, ev); c.DecodeErr == nil {
		c.Event = ev
	}

	rec.mu.Lock()
	rec.reqs = append(rec.reqs, c)
	n := len(rec.reqs)
	rec.mu.Unlock()

	rec.t.Logf("webhook #%02d at +%5.2fs: %s room=%q participant=%q reason=%v",
		n, now.Sub(rec.start).Seconds(), ev.GetEvent(), ev.GetRoom().GetName(),
		ev.GetParticipant().GetIdentity(), ev.GetParticipant().GetDisconnectReason())
	w.WriteHeader(http.StatusOK)
}

func (rec *recorder) snapshot() []*captured {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*captured(nil), rec.reqs...)
}

// find returns the first request whose event matches.
func (rec *recorder) find(match func(*livekit.WebhookEvent) bool) *captured {
	for _, c := range rec.snapshot() {
		if c.Event != nil && match(c.Event) {
			return c
		}
	}
	return nil
}

// wait blocks until an event matching what arrives, or fails the test after
// timeout.
func (rec *recorder) wait(t *testing.T, timeout time.Duration, what string, match func(*livekit.WebhookEvent) bool) *captured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got *captured
	if err := lkserver.WaitFor(ctx, func() bool { got = rec.find(match); return got != nil }); err != nil {
		t.Fatalf("no %s webhook within %v", what, timeout)
	}
	return got
}

func isEvent(name, room, identity string) func(*livekit.WebhookEvent) bool {
	return func(ev *livekit.WebhookEvent) bool {
		return ev.GetEvent() == name && ev.GetRoom().GetName() == room &&
			(identity == "" || ev.GetParticipant().GetIdentity() == identity)
	}
}

// TestCaptureFixtures records the webhooks that a real livekit-server sends
// for a short voice-agent scenario and writes them to fixtureDir. It runs only
// with LKWEBHOOK_CAPTURE=1:
//
//	cd e2e && LKWEBHOOK_CAPTURE=1 go test -count=1 -run TestCaptureFixtures -v .
func TestCaptureFixtures(t *testing.T) {
	if os.Getenv(EnvCapture) != "1" {
		t.Skipf("set %s=1 to capture fixtures from a real livekit-server into %s", EnvCapture, fixtureDir)
	}
	bin := lkserver.Binary(t)

	const apiKey = lkserver.DefaultAPIKey
	apiSecret := "fixture-secret-" + randomHex(t, 16) // 47 chars, throwaway
	rec := &recorder{t: t, start: time.Now(), provider: auth.NewSimpleKeyProvider(apiKey, apiSecret)}
	hook := httptest.NewServer(rec) // listens on 127.0.0.1
	t.Cleanup(hook.Close)

	srv := lkserver.Start(t, lkserver.Options{
		WebhookURLs:      []string{hook.URL + webhookPath},
		APIKey:           apiKey,
		APISecret:        apiSecret,
		EmptyTimeout:     30 * time.Second,
		DepartureTimeout: 2 * time.Second,
	})
	rs := srv.RoomService()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const step = 20 * time.Second

	// Room 1: agent + caller, caller leaves, room deleted through the API.
	created, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name:             captureRoom,
		Metadata:         captureMetadata,
		EmptyTimeout:     10,
		DepartureTimeout: 2,
	})
	if err != nil {
		t.Fatalf("CreateRoom %s: %v", captureRoom, err)
	}
	t.Logf("created %s sid=%s", captureRoom, created.Sid)
	rec.wait(t, step, "room_started", isEvent(webhook.EventRoomStarted, captureRoom, ""))

	agent := lkserver.Join(t, srv, captureRoom, "agent-A", livekit.ParticipantInfo_AGENT, false)
	rec.wait(t, step, "participant_joined agent-A", isEvent(webhook.EventParticipantJoined, captureRoom, "agent-A"))

	caller := lkserver.Join(t, srv, captureRoom, "caller-B", livekit.ParticipantInfo_STANDARD, true)
	rec.wait(t, step, "participant_joined caller-B", isEvent(webhook.EventParticipantJoined, captureRoom, "caller-B"))
	rec.wait(t, step, "track_published caller-B", isEvent(webhook.EventTrackPublished, captureRoom, "caller-B"))
	time.Sleep(time.Second) // let the audio flow a little

	caller.Disconnect()
	rec.wait(t, step, "participant_left caller-B", isEvent(webhook.EventParticipantLeft, captureRoom, "caller-B"))
	time.Sleep(time.Second) // anything else caused by the leave (track_unpublished)

	deletedAt := time.Now()
	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: captureRoom}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	fin := rec.wait(t, step, "room_finished "+captureRoom, isEvent(webhook.EventRoomFinished, captureRoom, ""))
	t.Logf("room_finished of %s %.2fs after DeleteRoom", captureRoom, fin.Arrived.Sub(deletedAt).Seconds())
	agent.Disconnect() // already removed by the server

	// Room 2: nobody joins; it closes on its empty timeout.
	idleCreatedAt := time.Now()
	if _, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name:         idleRoom,
		Metadata:     idleMetadata,
		EmptyTimeout: 3,
	}); err != nil {
		t.Fatalf("CreateRoom %s: %v", idleRoom, err)
	}
	rec.wait(t, step, "room_started "+idleRoom, isEvent(webhook.EventRoomStarted, idleRoom, ""))
	fin = rec.wait(t, 30*time.Second, "room_finished "+idleRoom, isEvent(webhook.EventRoomFinished, idleRoom, ""))
	t.Logf("room_finished of %s %.2fs after CreateRoom (empty_timeout 3 s)", idleRoom, fin.Arrived.Sub(idleCreatedAt).Seconds())

	// Late stragglers, then stop the server (it must send nothing more).
	time.Sleep(2 * time.Second)
	srv.Stop()
	time.Sleep(500 * time.Millisecond)
	reqs := rec.snapshot()

	// Checks of what real LiveKit sends.
	for i, c := range reqs {
		if c.DecodeErr != nil {
			t.Errorf("#%d: body does not decode as WebhookEvent: %v\n%s", i+1, c.DecodeErr, c.Body)
		}
		if c.VerifyErr != nil {
			t.Errorf("#%d %s: webhook.Receive rejected it at arrival: %v", i+1, c.Event.GetEvent(), c.VerifyErr)
		}
		if c.Method != http.MethodPost {
			t.Errorf("#%d: method %s, want POST", i+1, c.Method)
		}
		if got := c.Headers["Content-Type"]; got != "application/webhook+json" {
			t.Errorf("#%d: Content-Type %q, want application/webhook+json", i+1, got)
		}
		for k := range c.Headers {
			if strings.Contains(strings.ToLower(k), "signature") {
				t.Errorf("#%d: unexpected signature header %s", i+1, k)
			}
		}
		authz := c.Headers["Authorization"]
		if strings.HasPrefix(strings.ToLower(authz), "bearer ") || strings.Count(authz, ".") != 2 {
			t.Errorf("#%d: Authorization is not a raw JWT: %q", i+1, authz)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	writeFixtures(t, bin, apiKey, apiSecret, reqs)
}

func writeFixtures(t *testing.T, bin, apiKey, apiSecret string, reqs []*captured) {
	t.Helper()
	list := writeFixtureFiles(t, fixtureDir, apiKey, apiSecret, reqs)
	readme := fmt.Sprintf(readmeTemplate, serverVersion(bin), time.Now().UTC().Format("2006-01-02"),
		captureRoom, captureMetadata, idleRoom, idleMetadata, list)
	if err := os.WriteFile(filepath.Join(fixtureDir, "README.md"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d fixtures to %s", len(reqs), fixtureDir)
}

// serverVersion is what bin --version prints.
func serverVersion(bin string) string {
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return "unknown"
}

// writeFixtureFiles replaces the NN-<event>.json files of dir with reqs and
// writes keys.yaml; it returns the rows of the README's table of files.
func writeFixtureFiles(t *testing.T, dir, apiKey, apiSecret string, reqs []*captured) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.json"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}

	var list strings.Builder
	for i, c := range reqs {
		name := fmt.Sprintf("%02d-%s.json", i+1, c.Event.GetEvent())
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c.Fixture); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		ev := c.Event
		detail := "room `" + ev.GetRoom().GetName() + "`"
		if p := ev.GetParticipant(); p != nil {
			detail += fmt.Sprintf(", participant `%s`", p.GetIdentity())
			if strings.HasPrefix(ev.GetEvent(), "participant_") {
				// track events carry only sid and identity: no kind there
				detail += fmt.Sprintf(" (%s)", p.GetKind())
			}
			if p.GetDisconnectReason() != livekit.DisconnectReason_UNKNOWN_REASON {
				detail += ", disconnectReason " + p.GetDisconnectReason().String()
			}
			if st := p.GetAttributes()[livekit.AttrSIPCallStatus]; st != "" {
				detail += ", sip.callStatus " + st
			}
			if at := p.GetAttributes()[livekit.AttrSIPAnswerTime]; at != "" {
				detail += ", lk.sip.answerTime " + at
			}
		}
		if tr := ev.GetTrack(); tr != nil {
			detail += fmt.Sprintf(", track %s %s", tr.GetType(), tr.GetSource())
		}
		fmt.Fprintf(&list, "| `%s` | %s |\n", name, detail)
	}

	keys := fmt.Sprintf("# Throwaway key pair that signed the fixtures in this folder (test only).\n%s: %s\n", apiKey, apiSecret)
	if err := os.WriteFile(filepath.Join(dir, "keys.yaml"), []byte(keys), 0o644); err != nil {
		t.Fatal(err)
	}
	return list.String()
}

const readmeTemplate = "# Webhooks captured from a real livekit-server\n" +
	"\n" +
	"Every `NN-<event>.json` here is one HTTP request that livekit-server sent to a\n" +
	"webhook endpoint, recorded byte for byte on loopback. Do not edit them: the\n" +
	"body is hashed into the token (`sha256` claim) and any change breaks the\n" +
	"signature.\n" +
	"\n" +
	"- Server: `%s` (built with `e2e/install-livekit.sh`), single node, no Redis.\n" +
	"- Captured: %s (UTC).\n" +
	"- Made by: `cd e2e && LKWEBHOOK_CAPTURE=1 go test -count=1 -run TestCaptureFixtures -v .`\n" +
	"  (`e2e/capture_test.go`), which rewrites this folder.\n" +
	"- Checked by: `cd e2e && go test ./...` (`e2e/fixtures_test.go`).\n" +
	"\n" +
	"## Files\n" +
	"\n" +
	"- `keys.yaml`: the throwaway API key and secret that signed them, in\n" +
	"  livekit-server's key-file format (`key: secret`). Test only.\n" +
	"- `NN-<event>.json`: `{\"method\", \"path\", \"headers\", \"body\", \"received_at_unix\"}`.\n" +
	"  `body` is the raw request body as a JSON string (exact bytes once decoded).\n" +
	"  `headers` holds every header as received (multiple values joined with `, `),\n" +
	"  plus `Host`.\n" +
	"  `received_at_unix` is when the request arrived: verify the token with the clock\n" +
	"  fixed to it. The tokens are valid for 5 minutes only (`exp` = `nbf` + 300 s),\n" +
	"  so verifying with the real clock fails.\n" +
	"\n" +
	"## Scenario\n" +
	"\n" +
	"Server config: webhook to `http://127.0.0.1:<port>/voice/livekit/webhooks`, room\n" +
	"defaults `empty_timeout: 30`, `departure_timeout: 2`.\n" +
	"\n" +
	"1. RoomService `CreateRoom` `%s` with metadata `%s`, empty timeout 10 s,\n" +
	"   departure timeout 2 s.\n" +
	"2. Participant `agent-A` joins with kind AGENT (server-sdk-go, real WebRTC), publishes nothing.\n" +
	"3. Participant `caller-B` joins with kind STANDARD and publishes an Opus microphone track (silence).\n" +
	"4. `caller-B` disconnects (client-initiated leave).\n" +
	"5. RoomService `DeleteRoom` while `agent-A` is still in the room.\n" +
	"6. `CreateRoom` `%s` with metadata `%s` and empty timeout 3 s; nobody joins and the\n" +
	"   server closes it on its empty timeout.\n" +
	"\n" +
	"The test waited for each step's webhook before the next step, so the order\n" +
	"below is the order of the scenario.\n" +
	"\n" +
	"| file | event |\n" +
	"|---|---|\n" +
	"%s" +
	"\n" +
	"## What they show about livekit-server 1.13.5\n" +
	"\n" +
	"- Headers: `Authorization: <JWT>` with no `Bearer ` prefix, `Content-Type:\n" +
	"  application/webhook+json`, `User-Agent: Go-http-client/1.1` (not `LiveKit`),\n" +
	"  `Accept-Encoding: gzip`. No `X-LiveKit-Signature` or other signature header.\n" +
	"- JWT: HS256, claims `iss` (API key), `nbf`, `iat`, `exp` (= `nbf` + 300) and\n" +
	"  `sha256` (standard base64 of SHA-256 of the raw body). No `sub`, no grants.\n" +
	"- Body: protojson with a space after each comma (`\"event\":\"room_started\", \"room\":`),\n" +
	"  int64 as strings, zero values omitted. So `kind` is absent for STANDARD\n" +
	"  participants, `type` is absent for AUDIO tracks, and `numParticipants` is absent\n" +
	"  (0) even in participant events of a room with participants.\n" +
	"- `room_finished` has no `roomEndReason` (this server version does not set it),\n" +
	"  whether the room was deleted through the API or closed on its empty timeout.\n" +
	"- `track_published` / `track_unpublished` carry a minimal room (`sid`, `name`) and\n" +
	"  participant (`sid`, `identity`): no metadata, no kind.\n" +
	"- Room events carry `turnPassword`: a secret, never log it.\n" +
	"- On a client leave, `track_unpublished` comes right before `participant_left`\n" +
	"  (`disconnectReason: CLIENT_INITIATED`). On `DeleteRoom`, `participant_left` of the\n" +
	"  remaining participant (`ROOM_DELETED`) and then `room_finished` come at once.\n" +
	"- A room nobody joined closes on `empty_timeout`, counted in whole seconds from\n" +
	"  `creationTime` (truncated) and checked once a second, so it can close up to 1 s\n" +
	"  early or late: with `empty_timeout: 3`, `room_finished` came 2.2 s, 2.5 s and\n" +
	"  3.6 s after `CreateRoom` in three captures.\n"
