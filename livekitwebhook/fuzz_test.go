package livekitwebhook

import (
	"testing"
	"time"
)

// FuzzVerifyAndDecode: whatever the token and body, verification and
// decoding never panic and fail only with a typed 400 or 401.
func FuzzVerifyAndDecode(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add([]byte(fx.Body), fx.Headers["Authorization"], false)
		f.Add([]byte(fx.Body), "", true)
	}
	f.Add([]byte(`{"event":"room_started","room":{"sid":42}}`), "", true)
	f.Add([]byte(`[[[[[[[[[[`), "Bearer x.y.z", false)
	f.Add([]byte(`{"event":"x","createdAt":"-1","participant":{"kind":"NOPE","joinedAtMs":"9223372036854775807"}}`), "", true)
	cfg := DefaultConfig()
	cfg.APIKey, cfg.APISecret, cfg.Keys = testKey, testSecret, "devkey2: another-secret-of-at-least-32-chars"
	cfg.LegacySignature = true
	r, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, token string, signIt bool) {
		if signIt {
			token = sign(t, testKey, testSecret, body, time.Minute)
		}
		ev, _, err := r.verifyAndDecode(token, token, body)
		if err == nil {
			if ev == nil || ev.Event == "" {
				t.Fatalf("accepted without an event name: %v", ev)
			}
			return
		}
		ref := refusal(err)
		if (ref.Status != 400 && ref.Status != 401) || ref.Reason == "unverified" {
			t.Fatalf("untyped refusal %d %q for %v", ref.Status, ref.Reason, err)
		}
		if signIt && ref.Status == 401 {
			t.Fatalf("a correctly signed body refused as %q", ref.Reason)
		}
	})
}
