package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

func TestDLQListEmpty(t *testing.T) {
	clearKeyEnv(t)
	_, srv := startTestReceiver(t, livekitwebhook.Config{})
	code, out, _ := runCLI(t, "dlq", "list", "--url", srv.URL)
	if code != 0 || !strings.Contains(out, "no dead letters") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "dlq", "replay", "--all", "--url", srv.URL)
	if code != 0 || !strings.Contains(out, "replayed 0 dead letters") {
		t.Fatalf("replay --all: exit %d\n%s", code, out)
	}
	if code, _, _ = runCLI(t, "dlq", "replay", "--url", srv.URL); code != 2 {
		t.Errorf("replay without --id/--all: exit %d", code)
	}
}

func TestDLQListAndReplay(t *testing.T) {
	clearKeyEnv(t)
	failing := livekitwebhook.Hooks{OnRoomStarted: func(context.Context, *livekit.WebhookEvent, livekitwebhook.Session) error {
		return errors.New("backend down")
	}}
	_, srv := startTestReceiver(t, livekitwebhook.Config{MaxAttempts: 1, AdminToken: "admin-t0ken"},
		livekitwebhook.WithHooks(failing))
	url := srv.URL + "/voice/livekit/webhooks"
	if code, out, _ := runCLI(t, "send", "room_started", "--url", url, "--room", "dl", "--id", "EV_deadletter01"); code != 0 {
		t.Fatalf("send: exit %d\n%s", code, out)
	}

	code, out, stderr := runCLI(t, "dlq", "list", "--url", srv.URL)
	if code != 1 || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "admin-token") {
		t.Fatalf("without token: exit %d\n%s%s", code, out, stderr)
	}
	t.Setenv("LKWEBHOOK_ADMIN_TOKEN", "admin-t0ken")
	eventually(t, "the dead letter", func() bool {
		code, out, _ = runCLI(t, "dlq", "list", "--url", srv.URL)
		return code == 0 && strings.Contains(out, "EV_deadletter01")
	})
	for _, w := range []string{"SEQ", "EVENT ID", "room_started", "backend down", "1 dead letter"} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}

	code, out, _ = runCLI(t, "dlq", "replay", "--id", "EV_deadletter01", "--url", srv.URL)
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter\n") {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	code, _, stderr = runCLI(t, "dlq", "replay", "--id", "EV_nosuchevent", "--url", srv.URL, "--admin-token", "admin-t0ken")
	if code != 1 || !strings.Contains(stderr, "404") {
		t.Fatalf("unknown id: exit %d\n%s", code, stderr)
	}
}
