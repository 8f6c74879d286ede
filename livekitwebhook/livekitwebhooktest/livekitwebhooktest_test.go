package livekitwebhooktest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const key, secret = "APIkey", "a-secret-of-at-least-thirty-two-characters"

// receive runs LiveKit's own reference receiver on req.
func receive(t *testing.T, req *http.Request) (*livekit.WebhookEvent, error) {
	t.Helper()
	var ev *livekit.WebhookEvent
	var err error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Content-Type"); got != "application/webhook+json" {
			t.Errorf("Content-Type %q", got)
		}
		if got := r.Header.Get("User-Agent"); got != "LiveKit" {
			t.Errorf("User-Agent %q", got)
		}
		if r.Header.Get("X-LiveKit-Signature") != "" {
			t.Error("real LiveKit sends no X-LiveKit-Signature")
		}
		ev, err = webhook.ReceiveWebhookEvent(r, auth.NewSimpleKeyProvider(key, secret))
	}))
	defer srv.Close()
	u := *req.URL
	req.URL.Scheme, req.URL.Host = "http", srv.Listener.Addr().String()
	req.Host = ""
	res, doErr := http.DefaultClient.Do(req)
	if doErr != nil {
		t.Fatalf("post to %s: %v", u.String(), doErr)
	}
	_ = res.Body.Close()
	return ev, err
}

func TestRequestVerifiesWithLiveKitsReceiver(t *testing.T) {
	p := &livekit.ParticipantInfo{Identity: "caller", Kind: livekit.ParticipantInfo_SIP}
	want := livekitwebhooktest.ParticipantEvent("participant_joined", "call-7", "RM_call7", p)
	req, err := livekitwebhooktest.NewRequest(context.Background(), "http://example.invalid/hook", key, secret, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := receive(t, req)
	if err != nil {
		t.Fatalf("LiveKit's receiver refused the request: %v", err)
	}
	if got.Id != want.Id || got.Event != "participant_joined" || got.Room.GetName() != "call-7" ||
		got.Participant.GetIdentity() != "caller" || got.Participant.GetState() != livekit.ParticipantInfo_ACTIVE ||
		got.Participant.GetJoinedAtMs() == 0 || got.Participant.GetSid() == "" {
		t.Fatalf("received %v", got)
	}
	if p.State != 0 || p.Sid != "" {
		t.Fatal("the participant given was modified")
	}
}

func TestTamperedAndExpiredAreRefusedByLiveKitsReceiver(t *testing.T) {
	body := []byte(`{"event":"room_started","room":{"sid":"RM_x","name":"x"},"id":"EV_x","createdAt":"1"}`)
	req, err := livekitwebhooktest.NewRawRequest(context.Background(), "http://h/", key, secret, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receive(t, req); err != nil {
		t.Fatalf("signed raw body refused: %v", err)
	}
	tampered, _ := livekitwebhooktest.NewRawRequest(context.Background(), "http://h/", key, secret, body)
	tampered.Body = http.NoBody
	tampered.ContentLength = 0
	if _, err := receive(t, tampered); err == nil {
		t.Fatal("a body that does not match the sha256 claim was accepted")
	}
	tok, err := livekitwebhooktest.SignAt(key, secret, body, time.Now().Add(-time.Hour), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := livekitwebhooktest.NewRawRequest(context.Background(), "http://h/", key, secret, body)
	expired.Header.Set("Authorization", tok)
	if _, err := receive(t, expired); err == nil {
		t.Fatal("an expired token was accepted")
	}
}

func TestNewIDHasLiveKitsForm(t *testing.T) {
	re := regexp.MustCompile(`^EV_[0-9A-Za-z]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := livekitwebhooktest.NewID("EV_")
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("id %q: bad form or repeated", id)
		}
		seen[id] = true
	}
}

func TestRoomEvent(t *testing.T) {
	ev := livekitwebhooktest.RoomEvent("room_finished", "call-7", "RM_call7")
	if ev.Event != "room_finished" || ev.Room.GetSid() != "RM_call7" || ev.CreatedAt == 0 {
		t.Fatalf("event %v", ev)
	}
	left := livekitwebhooktest.ParticipantEvent("participant_left", "call-7", "RM_call7", &livekit.ParticipantInfo{Sid: "PA_1"})
	if left.Participant.State != livekit.ParticipantInfo_DISCONNECTED || left.Participant.JoinedAtMs != 0 {
		t.Fatalf("left participant %v", left.Participant)
	}
}

// validity returns exp - iat of a token, read without verifying it.
func validity(t *testing.T, tok string) time.Duration {
	t.Helper()
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	return c.ExpiresAt.Sub(c.IssuedAt.Time)
}

func TestSignerValidFor(t *testing.T) {
	ev := livekitwebhooktest.RoomEvent("room_started", "call-8", "RM_call8")
	for _, tc := range []struct {
		validFor, want time.Duration
	}{
		{0, 5 * time.Minute}, // LiveKit's
		{15 * time.Minute, 15 * time.Minute},
	} {
		s := livekitwebhooktest.Signer{Key: key, Secret: secret, ValidFor: tc.validFor}
		req, err := s.NewRequest(context.Background(), "http://example.invalid/hook", ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := validity(t, req.Header.Get("Authorization")); got != tc.want {
			t.Errorf("ValidFor %v: token valid for %v, want %v", tc.validFor, got, tc.want)
		}
		got, err := receive(t, req)
		if err != nil || got.GetId() != ev.Id {
			t.Fatalf("ValidFor %v: LiveKit's receiver: %v %v", tc.validFor, got, err)
		}
	}
	// The package functions are LiveKit's five minutes.
	tok, err := livekitwebhooktest.Sign(key, secret, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := validity(t, tok); got != 5*time.Minute {
		t.Errorf("Sign: valid for %v, want 5m", got)
	}
}

func TestEgressEvent(t *testing.T) {
	info := &livekit.EgressInfo{EgressId: "EG_1", RoomId: "RM_call7", RoomName: "call-7", Status: livekit.EgressStatus_EGRESS_COMPLETE}
	ev := livekitwebhooktest.EgressEvent("egress_ended", info)
	if ev.Event != "egress_ended" || ev.Room != nil || ev.CreatedAt == 0 || ev.EgressInfo.GetRoomId() != "RM_call7" {
		t.Fatalf("event %v", ev)
	}
	if ev.EgressInfo == info {
		t.Fatal("info not copied")
	}
}
