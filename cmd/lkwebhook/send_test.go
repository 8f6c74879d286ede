package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

func TestSendToRealReceiver(t *testing.T) {
	clearKeyEnv(t)
	recv, srv := startTestReceiver(t, livekitwebhook.Config{APIKey: "devkey", APISecret: "secret", DataDir: t.TempDir()})
	url := srv.URL + "/voice/livekit/webhooks"

	code, out, _ := runCLI(t, "send", "room_started", "--url", url, "--room", "call-1", "--id", "EV_sendtest0001")
	if code != 0 || !strings.Contains(out, "200 OK") || !strings.Contains(out, "Lkwh-Outcome: accepted") {
		t.Fatalf("room_started: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "send", "room_started", "--url", url, "--room", "call-1", "--id", "EV_sendtest0001")
	if code != 0 || !strings.Contains(out, "Lkwh-Outcome: duplicate") {
		t.Fatalf("duplicate: exit %d\n%s", code, out)
	}
	// Flags before the event name work too; the sids are derived, so these
	// land on the same session.
	if code, out, _ = runCLI(t, "send", "--url", url, "participant_joined", "--room", "call-1", "--identity", "bot", "--kind", "AGENT"); code != 0 {
		t.Fatalf("participant_joined: exit %d\n%s", code, out)
	}
	if code, out, _ = runCLI(t, "send", "participant_left", "--url", url, "--room", "call-1", "--identity", "bot", "--kind", "agent"); code != 0 {
		t.Fatalf("participant_left: exit %d\n%s", code, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var s livekitwebhook.Session
	eventually(t, "the session with the participant who left", func() bool {
		got, ok, err := recv.SessionByID(ctx, "call-1")
		if err != nil || !ok {
			return false
		}
		s = got
		return len(got.Participants) == 1 && got.Participants[0].State == "left"
	})
	if s.RoomSID != derivedID("RM_", "room", "call-1") || s.RoomName != "call-1" {
		t.Errorf("session %+v", s)
	}
	p := s.Participants[0]
	if p.Identity != "bot" || p.Kind != "agent" || p.DisconnectReason != "CLIENT_INITIATED" ||
		p.SID != derivedID("PA_", "participant", "call-1", "bot") {
		t.Errorf("participant %+v", p)
	}

	// Wrong secret: refused with 401, exit 1.
	code, out, _ = runCLI(t, "send", "room_started", "--url", url, "--room", "call-2", "--api-key", "devkey", "--api-secret", "not-the-secret")
	if code != 1 || !strings.Contains(out, "401") || !strings.Contains(out, "bad_signature") {
		t.Fatalf("wrong secret: exit %d\n%s", code, out)
	}
	// No token (legacy mode is off on this receiver).
	code, out, _ = runCLI(t, "send", "room_started", "--url", url, "--room", "call-2", "--no-token", "--legacy-signature")
	if code != 1 || !strings.Contains(out, "401") || !strings.Contains(out, "missing_token") {
		t.Fatalf("no token: exit %d\n%s", code, out)
	}

	// --body-file sends the bytes verbatim (a trailing newline included).
	body, err := livekitwebhooktest.Marshal(&livekit.WebhookEvent{Event: "room_finished", Id: "EV_bodyfile0001", CreatedAt: time.Now().Unix(),
		Room: &livekit.Room{Sid: derivedID("RM_", "room", "call-1"), Name: "call-1"}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(f, append(body, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "send", "--url", url, "--body-file", f)
	if code != 0 || !strings.Contains(out, "Lkwh-Outcome: accepted") {
		t.Fatalf("body file: exit %d\n%s", code, out)
	}
	// Its own id (EV_bodyfile0001) was kept: the same file again is a duplicate.
	code, out, _ = runCLI(t, "send", "--url", url, "--body-file", f)
	if code != 0 || !strings.Contains(out, "Lkwh-Outcome: duplicate") {
		t.Fatalf("body file again: exit %d\n%s", code, out)
	}
}

// The request send makes is what LiveKit's own receiver code accepts, with
// LiveKit's headers.
func TestSendHeadersAsLiveKit(t *testing.T) {
	clearKeyEnv(t)
	t.Setenv("LIVEKIT_KEYS", "first: first-secret-0123456789abcdef\nsecond: second-secret-0123456789abcd")
	var mu sync.Mutex
	var got *livekit.WebhookEvent
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hdr = r.Header.Clone()
		ev, err := webhook.ReceiveWebhookEvent(r, auth.NewSimpleKeyProvider("first", "first-secret-0123456789abcdef"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = ev
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()

	code, out, stderr := runCLI(t, "send", "egress_ended", "--url", srv.URL, "--room", "r", "--created-at", "1795779667")
	if code != 0 || !strings.Contains(out, "200 OK") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if strings.Contains(stderr, "dev key") {
		t.Error("must not fall back to the dev key when LIVEKIT_KEYS is set")
	}
	mu.Lock()
	defer mu.Unlock()
	if a := hdr.Get("Authorization"); a == "" || strings.HasPrefix(a, "Bearer") {
		t.Errorf("Authorization %q: want the raw token", a)
	}
	if hdr.Get("Content-Type") != "application/webhook+json" || hdr.Get("User-Agent") != "LiveKit" || hdr.Get("X-LiveKit-Signature") != "" {
		t.Errorf("headers %v", hdr)
	}
	if got.Event != "egress_ended" || got.CreatedAt != 1795779667 || !strings.HasPrefix(got.Id, "EV_") || len(got.Id) != 15 {
		t.Errorf("event %v", got)
	}
	e := got.EgressInfo
	if got.Room != nil || e == nil || e.RoomName != "r" || e.RoomId != derivedID("RM_", "room", "r") ||
		e.Status != livekit.EgressStatus_EGRESS_COMPLETE || e.EgressId != derivedID("EG_", "egress", "r") {
		t.Errorf("egress info %v", e)
	}
}

func TestBuildEventDefaults(t *testing.T) {
	now := time.Unix(1795779667, 0)
	build := func(s eventSpec) *livekit.WebhookEvent {
		t.Helper()
		ev, err := buildEvent(s, now, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ev := build(eventSpec{event: "room_started", room: "a", metadata: `{"session":"s1"}`})
	if ev.CreatedAt != now.Unix() || ev.Room.CreationTime != now.Unix() || ev.Room.Metadata != `{"session":"s1"}` ||
		ev.Room.Sid != build(eventSpec{event: "room_finished", room: "a"}).Room.Sid || len(ev.Room.Sid) != 15 {
		t.Errorf("room_started %v", ev)
	}
	if a, b := build(eventSpec{event: "room_started", room: "a"}).Id, build(eventSpec{event: "room_started", room: "a"}).Id; a == b {
		t.Error("ids must be random")
	}
	ev = build(eventSpec{event: "participant_joined", room: "a", identity: "sip-1", kind: "SIP", createdAt: 100})
	if p := ev.Participant; p.Kind != livekit.ParticipantInfo_SIP || p.JoinedAt != 100 || p.JoinedAtMs != 100_000 ||
		p.State != livekit.ParticipantInfo_ACTIVE || p.DisconnectReason != 0 {
		t.Errorf("participant_joined %v", p)
	}
	ev = build(eventSpec{event: "participant_left", room: "a", identity: "u", joinedAt: 50})
	if p := ev.Participant; p.Kind != livekit.ParticipantInfo_STANDARD || p.JoinedAt != 50 ||
		p.DisconnectReason != livekit.DisconnectReason_CLIENT_INITIATED || p.State != livekit.ParticipantInfo_DISCONNECTED {
		t.Errorf("participant_left %v", p)
	}
	ev = build(eventSpec{event: "participant_left", room: "a", identity: "u", disconnectReason: "room-deleted"})
	if ev.Participant.DisconnectReason != livekit.DisconnectReason_ROOM_DELETED {
		t.Errorf("disconnect reason %v", ev.Participant.DisconnectReason)
	}
	ev = build(eventSpec{event: "room_finished", room: "a", endReason: "api_delete"})
	if ev.RoomEndReason != livekit.RoomEndReason_ROOM_END_API_DELETE {
		t.Errorf("end reason %v", ev.RoomEndReason)
	}
	ev = build(eventSpec{event: "track_published", room: "a", identity: "u"})
	if ev.Track == nil || ev.Track.Sid != derivedID("TR_", "track", "a", "u") || ev.Participant == nil || ev.Room == nil {
		t.Errorf("track_published %v", ev)
	}
	if _, err := buildEvent(eventSpec{event: "participant_joined", room: "a", identity: "u", kind: "robot"}, now, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "agent") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := buildEvent(eventSpec{event: "participant_joined", room: "a"}, now, io.Discard); err == nil {
		t.Error("participant events need an identity")
	}
}

func TestSigningKeyPrecedence(t *testing.T) {
	clearKeyEnv(t)
	k, s, _ := signingKey("", "", io.Discard)
	if k != "devkey" || s != "secret" {
		t.Errorf("dev fallback %s", k)
	}
	t.Setenv("LIVEKIT_KEYS", "zz: zz-secret\naa: aa-secret")
	if k, _, _ = signingKey("", "", io.Discard); k != "zz" {
		t.Errorf("first of LIVEKIT_KEYS: %s", k)
	}
	if k, s, _ = signingKey("aa", "", io.Discard); k != "aa" || s != "aa-secret" {
		t.Errorf("--api-key alone: %s", k)
	}
	t.Setenv("LIVEKIT_API_KEY", "env")
	t.Setenv("LIVEKIT_API_SECRET", "env-secret")
	if k, _, _ = signingKey("", "", io.Discard); k != "env" {
		t.Errorf("LIVEKIT_API_KEY: %s", k)
	}
	if k, s, _ = signingKey("flag", "flag-secret", io.Discard); k != "flag" || s != "flag-secret" {
		t.Errorf("flags: %s", k)
	}
}

// --dry-run prints the request send would make: the token follows
// --valid-for, --no-token drops it and --legacy-signature adds the header.
func TestSendDryRun(t *testing.T) {
	clearKeyEnv(t)
	header := func(out, name string) string {
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				return v
			}
		}
		return ""
	}
	code, out, _ := runCLI(t, "send", "room_started", "--room", "r", "--dry-run", "--valid-for", "15m")
	if code != 0 || !strings.HasPrefix(out, "POST "+defaultWebhookURL+"\n") || header(out, "User-Agent") != "LiveKit" ||
		header(out, "Content-Type") != "application/webhook+json" || !strings.Contains(out, `"event":"room_started"`) {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(header(out, "Authorization"), &c); err != nil {
		t.Fatalf("Authorization: %v\n%s", err, out)
	}
	if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != 15*time.Minute || c.Issuer != "devkey" {
		t.Errorf("token of %q valid for %v, want devkey and 15m", c.Issuer, got)
	}
	code, out, _ = runCLI(t, "send", "room_started", "--room", "r", "--dry-run", "--no-token", "--legacy-signature")
	if code != 0 || header(out, "Authorization") != "" || len(header(out, "X-Livekit-Signature")) != 64 {
		t.Errorf("--no-token --legacy-signature: exit %d\n%s", code, out)
	}
}
