package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

func TestVerifyCommand(t *testing.T) {
	clearKeyEnv(t)
	body, err := livekitwebhooktest.Marshal(&livekit.WebhookEvent{Event: "room_started", Id: "EV_verify00001", CreatedAt: time.Now().Unix(),
		Room: &livekit.Room{Sid: "RM_verify00001", Name: "v"}})
	if err != nil {
		t.Fatal(err)
	}
	token, err := livekitwebhooktest.Sign("devkey", "secret", body)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "body.json")
	mutated := filepath.Join(dir, "mutated.json")
	if err := os.WriteFile(good, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mutated, append(append([]byte{}, body...), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	later := strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10)

	cases := []struct {
		name string
		env  string // LIVEKIT_KEYS
		args []string
		code int
		want []string
	}{
		{"ok with dev keys", "", []string{"--auth", token, "--body-file", good}, 0,
			[]string{"Verdict: VALID", "signature verifies"}},
		{"ok with env keys", "devkey: secret", []string{"--auth", token, "--body-file", good}, 0,
			[]string{"Verdict: VALID"}},
		{"expired", "", []string{"--auth", token, "--body-file", good, "--at", later, "--leeway", "60s"}, 1,
			[]string{"It expired 5m", "leeway 60s", "REFUSED (expired)"}},
		{"wrong key", "", []string{"--auth", token, "--body-file", good, "--keys", "other: other-secret-0123456789abcdef"}, 1,
			[]string{`"devkey", which is not configured`, "REFUSED (unknown_key)"}},
		{"body mutated", "", []string{"--auth", token, "--body-file", mutated}, 1,
			[]string{"does not match", "trailing newline was added", "REFUSED (hash_mismatch)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LIVEKIT_KEYS", tc.env)
			code, out, stderr := runCLI(t, append([]string{"verify"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(out+stderr, "other-secret") {
				t.Error("a secret was printed")
			}
		})
	}

	if code, _, _ := runCLI(t, "verify", "--body-file", good); code != 2 {
		t.Errorf("missing --auth: exit %d", code)
	}
}
