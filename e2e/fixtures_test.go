package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
)

// TestFixtures checks every captured webhook in fixtureDir and the SIP
// capture folders without a clock: it decodes, carries an EV_ id, its
// token's sha256 claim matches the raw body, and the token's HS256
// signature matches the secret of its iss in keys.yaml. Full verification
// with a fixed clock is done by the main module's tests.
func TestFixtures(t *testing.T) {
	for _, dir := range []string{fixtureDir, sipAnsweredDir, sipNoAnswerDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) { checkFixtureDir(t, dir) })
	}
}

func checkFixtureDir(t *testing.T, fixtureDir string) {
	fixtures, err := loadFixtures(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) == 0 {
		t.Fatalf("no fixtures in %s (make them with LKWEBHOOK_CAPTURE=1, see capture_test.go)", fixtureDir)
	}

	kf, err := os.Open(filepath.Join(fixtureDir, "keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	keys, err := auth.NewFileBasedKeyProviderFromReader(kf)
	if err != nil {
		t.Fatalf("keys.yaml: %v", err)
	}

	seen := map[string]bool{}
	ids := map[string]string{}
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			if f.Method != "POST" {
				t.Errorf("method = %q, want POST", f.Method)
			}
			if ct := f.Headers["Content-Type"]; ct != "application/webhook+json" {
				t.Errorf("Content-Type = %q, want application/webhook+json", ct)
			}

			ev := &livekit.WebhookEvent{}
			if err := protojson.Unmarshal([]byte(f.Body), ev); err != nil {
				t.Fatalf("body does not decode as livekit.WebhookEvent: %v", err)
			}
			if !strings.HasPrefix(ev.Id, "EV_") {
				t.Errorf("id = %q, want EV_ prefix", ev.Id)
			}
			if prev, dup := ids[ev.Id]; dup {
				t.Errorf("id %s also in %s", ev.Id, prev)
			}
			ids[ev.Id] = f.Name
			if want := strings.TrimSuffix(f.Name[3:], ".json"); ev.Event != want {
				t.Errorf("event = %q, file name says %q", ev.Event, want)
			}
			seen[ev.Event] = true
			if ev.CreatedAt <= 0 || ev.CreatedAt > f.ReceivedAtUnix {
				t.Errorf("createdAt = %d, received_at_unix = %d", ev.CreatedAt, f.ReceivedAtUnix)
			}
			if ev.Room.GetName() == "" || !strings.HasPrefix(ev.Room.GetSid(), "RM_") {
				t.Errorf("room = %v, want name and RM_ sid", ev.Room)
			}

			token := f.Headers["Authorization"]
			if strings.HasPrefix(strings.ToLower(token), "bearer ") {
				t.Fatalf("Authorization has a Bearer prefix: %q", token)
			}
			hdr, err := jwtHeader(token)
			if err != nil {
				t.Fatal(err)
			}
			if hdr["alg"] != "HS256" {
				t.Errorf("alg = %v, want HS256", hdr["alg"])
			}
			claims, err := jwtClaims(token)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(f.Body))
			if got, want := claims["sha256"], base64.StdEncoding.EncodeToString(sum[:]); got != want {
				t.Errorf("sha256 claim = %v, want %s (base64 of SHA-256 of the raw body)", got, want)
			}
			nbf, _ := claims["nbf"].(float64)
			exp, _ := claims["exp"].(float64)
			if at := float64(f.ReceivedAtUnix); at < nbf-60 || at > exp+60 {
				t.Errorf("received_at_unix %d outside [nbf %v, exp %v]", f.ReceivedAtUnix, nbf, exp)
			}

			iss, _ := claims["iss"].(string)
			secret := keys.GetSecret(iss)
			if secret == "" {
				t.Fatalf("iss %q not in keys.yaml", iss)
			}
			i := strings.LastIndexByte(token, '.')
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(token[:i]))
			sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
			if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
				t.Errorf("HS256 signature does not match the secret of %q in keys.yaml", iss)
			}
		})
	}

	for _, want := range []string{"room_started", "participant_joined", "track_published", "participant_left", "room_finished"} {
		if !seen[want] {
			t.Errorf("no %s fixture", want)
		}
	}
}
