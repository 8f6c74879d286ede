package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/examples/internal/exampletest"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/testport"

	"github.com/livekit/protocol/livekit"
)

// Shared with the other examples' tests.
type syncBuffer = exampletest.SyncBuffer

var postSigned = exampletest.PostSigned

func waitFor(t *testing.T, what string, cond func() bool) {
	exampletest.WaitFor(t, 15*time.Second, what, cond)
}

// freeAddr returns a loopback address that was free a moment ago: another
// process can take it before run binds it (see startRun).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// probeClient does not wait long on whatever holds a taken port.
var probeClient = &http.Client{Timeout: time.Second}

// pickAddr picks run's --addr (a variable for TestStartRunPortTaken).
var pickAddr = freeAddr

// startRun runs the example and waits until its server answers. The
// example's Beluga adapter listens itself and does not report the port of
// ":0", so run gets a port found free; when another process took it
// meanwhile, run fails with EADDRINUSE and is started again on another.
func startRun(t *testing.T, ctx context.Context, args ...string) (url string, out *syncBuffer, done chan error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := pickAddr(t)
		out = &syncBuffer{}
		done = make(chan error, 1)
		runArgs := append([]string{"--addr", addr, "--data", t.TempDir()}, args...)
		go func() { done <- run(ctx, runArgs, out) }()
		url = "http://" + addr + "/voice/livekit/webhooks"
		var runErr error
		ended := false
		waitFor(t, "server up", func() bool {
			select {
			case runErr = <-done:
				ended = true
				return true
			default:
			}
			res, err := probeClient.Get(url)
			if err != nil {
				return false
			}
			_ = res.Body.Close()
			return res.StatusCode == http.StatusMethodNotAllowed
		})
		if !ended {
			return url, out, done
		}
		if !errors.Is(runErr, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("run ended early (attempt %d): %v\n%s", attempt, runErr, out.String())
		}
		t.Logf("run attempt %d: %v; trying another port", attempt, runErr)
	}
}

// TestStartRunPortTaken: the port picked for run is taken before run binds
// it; startRun starts run again on another port instead of failing.
func TestStartRunPortTaken(t *testing.T) {
	clearKeyEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	picks := 0
	pickAddr = func(t *testing.T) string {
		if picks++; picks == 1 {
			return busy.Addr().String()
		}
		return freeAddr(t)
	}
	t.Cleanup(func() { pickAddr = freeAddr })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _, done := startRun(t, ctx, "--room", "never-ends")
	if picks != 2 || strings.Contains(url, busy.Addr().String()) {
		t.Fatalf("run serving at %s after %d picks, want another port than %s after 2", url, picks, busy.Addr())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

var clearKeyEnv = exampletest.ClearKeyEnv

func TestRunEndsWhenRoomFinishes(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		key, secret string
	}{
		{"dev keys", nil, "devkey", "secret"},
		{"LIVEKIT_API_KEY", map[string]string{"LIVEKIT_API_KEY": "APIa", "LIVEKIT_API_SECRET": "secret-a-of-at-least-32-characters"},
			"APIa", "secret-a-of-at-least-32-characters"},
		{"LIVEKIT_KEYS", map[string]string{"LIVEKIT_KEYS": "APIb: secret-b-of-at-least-32-characters"},
			"APIb", "secret-b-of-at-least-32-characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearKeyEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			url, out, done := startRun(t, ctx, "--room", "call-1")

			t0 := time.Now().Unix()
			room := &livekit.Room{Sid: "RM_call1", Name: "call-1", CreationTime: t0}
			other := &livekit.Room{Sid: "RM_other", Name: "other", CreationTime: t0}
			for _, ev := range []*livekit.WebhookEvent{
				{Id: "EV_v1", Event: "room_started", CreatedAt: t0, Room: room},
				{Id: "EV_v2", Event: "participant_joined", CreatedAt: t0 + 1, Room: room,
					Participant: &livekit.ParticipantInfo{Sid: "PA_1", Identity: "caller", JoinedAt: t0 + 1}},
				{Id: "EV_v3", Event: "room_started", CreatedAt: t0, Room: other},
				{Id: "EV_v4", Event: "room_finished", CreatedAt: t0 + 2, Room: other},
			} {
				if code := postSigned(t, url, tc.key, tc.secret, ev); code != http.StatusOK {
					t.Fatalf("%s: %d\n%s", ev.Event, code, out.String())
				}
			}
			// Another room finishing does not end the pipeline.
			select {
			case err := <-done:
				t.Fatalf("run ended before its room finished: %v\n%s", err, out.String())
			case <-time.After(500 * time.Millisecond):
			}

			if code := postSigned(t, url, tc.key, tc.secret, &livekit.WebhookEvent{Id: "EV_v5", Event: "room_finished", CreatedAt: t0 + 30, Room: room, RoomEndReason: livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT}); code != http.StatusOK {
				t.Fatalf("room_finished: %d", code)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v\n%s", err, out.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("run still going 10s after room_finished\n%s", out.String())
			}
			if !strings.Contains(out.String(), `room "call-1" finished (ROOM_END_IDLE_TIMEOUT): pipeline ended`) {
				t.Fatalf("no finish line:\n%s", out.String())
			}
			if got := strings.Contains(out.String(), "devkey/secret"); got != (tc.env == nil) {
				t.Fatalf("dev key notice = %v:\n%s", got, out.String())
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	clearKeyEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, out, done := startRun(t, ctx, "--room", "never-ends")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("no interrupted line:\n%s", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	clearKeyEnv(t)
	var out syncBuffer
	if err := run(context.Background(), []string{"--room", ""}, &out); err == nil {
		t.Fatal("empty room accepted")
	}
	if err := run(context.Background(), []string{"--bogus"}, &out); err == nil {
		t.Fatal("unknown flag accepted")
	}
	// A busy port: the server fails, run returns its error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, []string{"--addr", ln.Addr().String(), "--data", t.TempDir()}, &out)
	if err == nil || !strings.Contains(err.Error(), "server") {
		t.Fatalf("busy port: %v", err)
	}
}
