package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/examples/internal/exampletest"

	"github.com/livekit/protocol/livekit"
)

// Shared with the other examples' tests.
type syncBuffer = exampletest.SyncBuffer

var postSigned = exampletest.PostSigned

func waitFor(t *testing.T, what string, cond func() bool) {
	exampletest.WaitFor(t, 15*time.Second, what, cond)
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
