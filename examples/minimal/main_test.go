package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"
)

// syncBuffer is a bytes.Buffer safe for the test and run's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// postSigned signs ev as LiveKit does and posts it.
func postSigned(t *testing.T, url, key, secret string, ev *livekit.WebhookEvent) int {
	t.Helper()
	body, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	tok, err := auth.NewAccessToken(key, secret).SetValidFor(5 * time.Minute).
		SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/webhook+json")
	req.Header.Set("Authorization", tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		key, secret string // environment; "" = unset
		signKey     string
		signSecret  string
	}{
		{"dev keys", "", "", "devkey", "secret"},
		{"keys from environment", "APIprod", "a-production-secret-of-32-chars-x", "APIprod", "a-production-secret-of-32-chars-x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LIVEKIT_API_KEY", tc.key)
			t.Setenv("LIVEKIT_API_SECRET", tc.secret)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--finalize-grace", "200ms"}, &out)
			}()
			var url string
			re := regexp.MustCompile(`listening on (http://\S+)`)
			waitFor(t, "listening line", func() bool {
				select {
				case err := <-done:
					t.Fatalf("run ended early: %v\n%s", err, out.String())
				default:
				}
				m := re.FindStringSubmatch(out.String())
				if m != nil {
					url = m[1]
				}
				return m != nil
			})
			if got := strings.Contains(out.String(), "devkey/secret"); got != (tc.key == "") {
				t.Fatalf("dev key notice = %v:\n%s", got, out.String())
			}

			t0 := time.Now().Unix()
			room := &livekit.Room{Sid: "RM_min", Name: "support-42", CreationTime: t0}
			evs := []*livekit.WebhookEvent{
				{Id: "EV_min1", Event: "room_started", CreatedAt: t0, Room: room},
				{Id: "EV_min2", Event: "participant_joined", CreatedAt: t0 + 1, Room: room,
					Participant: &livekit.ParticipantInfo{Sid: "PA_1", Identity: "alice", JoinedAt: t0 + 1}},
				{Id: "EV_min3", Event: "participant_left", CreatedAt: t0 + 5, Room: room,
					Participant: &livekit.ParticipantInfo{Sid: "PA_1", Identity: "alice", JoinedAt: t0 + 1}},
				{Id: "EV_min4", Event: "room_finished", CreatedAt: t0 + 6, Room: room},
			}
			if code := postSigned(t, url, "wrong", "wrong-secret", evs[0]); code != http.StatusUnauthorized {
				t.Fatalf("wrongly signed post: %d", code)
			}
			for _, ev := range evs {
				if code := postSigned(t, url, tc.signKey, tc.signSecret, ev); code != http.StatusOK {
					t.Fatalf("%s: %d", ev.Event, code)
				}
			}
			waitFor(t, "join and report lines", func() bool {
				s := out.String()
				return strings.Contains(s, "participant joined: alice (STANDARD) in room support-42, session support-42") &&
					strings.Contains(s, "session ended: support-42 (completed") &&
					strings.Contains(s, `"disposition": "completed"`)
			})

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("run did not stop after cancel")
			}
			if !strings.Contains(out.String(), "stopped") {
				t.Fatalf("no stop line:\n%s", out.String())
			}
		})
	}
}

func TestRunBadFlags(t *testing.T) {
	var out syncBuffer
	if err := run(context.Background(), []string{"--nope"}, &out); err == nil {
		t.Fatal("unknown flag accepted")
	}
	t.Setenv("LIVEKIT_API_KEY", "")
	if err := run(context.Background(), []string{"--data", t.TempDir(), "--finalize-grace", "soon"}, &out); err == nil {
		t.Fatal("bad duration accepted")
	}
}
