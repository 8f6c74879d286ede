package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
)

const (
	tKey    = "APIkey1"
	tSecret = "s3cr3t-never-printed-0123456789abcdef"
)

func testEvent(t *testing.T) []byte {
	t.Helper()
	b, err := Marshal(&livekit.WebhookEvent{
		Event:     "room_started",
		Id:        "EV_abcdefghijkl",
		CreatedAt: 1795779667,
		Room:      &livekit.Room{Sid: "RM_abcdefghijkl", Name: "call-1", CreationTime: 1795779667},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSign(t *testing.T, key, secret string, body []byte) string {
	t.Helper()
	tok, err := Sign(key, secret, body, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handToken signs arbitrary claims (for shapes LiveKit never produces).
func handToken(t *testing.T, m jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString([]byte(tSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignMatchesLiveKitReceiver(t *testing.T) {
	body := testEvent(t)
	tok := mustSign(t, tKey, tSecret, body)
	if strings.HasPrefix(tok, "Bearer") {
		t.Fatal("token must be raw")
	}
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	_, claims, err := v.Verify(tSecret)
	if err != nil {
		t.Fatal(err)
	}
	if v.APIKey() != tKey || claims.Sha256 != BodyHash(body) {
		t.Fatalf("iss %q sha256 %q", v.APIKey(), claims.Sha256)
	}
	if _, err := New(auth.NewSimpleKeyProvider(tKey, tSecret)).Verify(tok, "", body); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(body, "\n") || !bytes.Contains(body, []byte(`"createdAt":"1795779667"`)) &&
		!bytes.Contains(body, []byte(`"createdAt": "1795779667"`)) {
		t.Fatalf("not LiveKit's protojson form: %s", body)
	}
}

func TestExplain(t *testing.T) {
	body := testEvent(t)
	keys := map[string]string{tKey: tSecret, "other": "another-secret-0123456789abcdef01"}
	now := time.Now()
	good := mustSign(t, tKey, tSecret, body)

	var indented bytes.Buffer
	if err := json.Indent(&indented, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	reencoded, _ := json.Marshal(generic) // sorted keys: same event, other order
	multiline := []byte("{\"event\":\"room_started\",\n\"id\":\"EV_x\"}")

	cases := []struct {
		name    string
		keys    map[string]string
		auth    string
		body    []byte
		now     time.Time
		wantErr error
		want    []string // substrings of the explanation, case-insensitive
		check   func(t *testing.T, e Explanation)
	}{
		{name: "ok", auth: good, body: body, now: now,
			want: []string{"HS256", `API key "APIkey1", which is configured`, "expires in 4m", "signature verifies", "matches the body", "Verdict: VALID"},
			check: func(t *testing.T, e Explanation) {
				if !e.SignatureValid || !e.HashMatch || !e.KeyKnown || e.Reason != "ok" {
					t.Errorf("%+v", e)
				}
			}},
		{name: "bearer prefix tolerated", auth: "Bearer " + good, body: body, now: now,
			want: []string{"Bearer", "Verdict: VALID"}},
		{name: "expired", auth: good, body: body, now: now.Add(8*time.Minute + 12*time.Second), wantErr: ErrExpired,
			want: []string{"expired 3m12s ago", "leeway 60s", "Verdict: REFUSED (expired)"}},
		{name: "expired within leeway", auth: good, body: body, now: now.Add(5*time.Minute + 30*time.Second),
			want: []string{"within the leeway of 60s", "Verdict: VALID"}},
		{name: "not yet valid", auth: good, body: body, now: now.Add(-3*time.Minute - 500*time.Millisecond), wantErr: ErrNotYetValid,
			want: []string{"not valid for another ", "clock is ahead", "not_yet_valid"}},
		{name: "nbf within leeway", auth: good, body: body, now: now.Add(-30 * time.Second),
			want: []string{"tolerated as clock skew", "Verdict: VALID"}},
		{name: "unknown key", keys: map[string]string{"other": "another-secret-0123456789abcdef01"},
			auth: good, body: body, now: now, wantErr: ErrUnknownKey,
			want: []string{`"APIkey1", which is not configured`, `configured key: "other"`, "none of the configured secrets", "unknown_key"}},
		{name: "key named wrong", keys: map[string]string{"renamed": tSecret},
			auth: good, body: body, now: now, wantErr: ErrUnknownKey,
			want: []string{`does verify with the secret configured for "renamed"`},
			check: func(t *testing.T, e Explanation) {
				if e.SignedWith != "renamed" {
					t.Errorf("SignedWith %q", e.SignedWith)
				}
			}},
		{name: "wrong secret", auth: mustSign(t, tKey, "wrong-secret-0123456789abcdef0123", body), body: body, now: now,
			wantErr: ErrBadSignature, want: []string{"does NOT verify", "bad_signature"}},
		{name: "trailing newline added", auth: good, body: append(append([]byte{}, body...), '\n'), now: now,
			wantErr: ErrHashMismatch, want: []string{"confirmed", "trailing newline was added", "hash_mismatch"},
			check: func(t *testing.T, e Explanation) {
				if !e.CauseConfirmed || e.HashMatch {
					t.Errorf("%+v", e)
				}
			}},
		{name: "trailing newline removed", auth: mustSign(t, tKey, tSecret, append(append([]byte{}, body...), '\n')), body: body, now: now,
			wantErr: ErrHashMismatch, want: []string{"trailing newline was removed"}},
		{name: "crlf", auth: mustSign(t, tKey, tSecret, multiline), body: bytes.ReplaceAll(multiline, []byte("\n"), []byte("\r\n")), now: now,
			wantErr: ErrHashMismatch, want: []string{"confirmed", "CRLF"}},
		{name: "whitespace only", auth: good, body: indented.Bytes(), now: now,
			wantErr: ErrHashMismatch, want: []string{"confirmed", "differs only in whitespace", "re-serialized"}},
		{name: "re-encoded other key order", auth: good, body: reencoded, now: now,
			wantErr: ErrHashMismatch, want: []string{"confirmed", "re-serialized the JSON"}},
		{name: "different body", auth: good, body: bytes.Replace(body, []byte("call-1"), []byte("call-2"), 1), now: now,
			wantErr: ErrHashMismatch, want: []string{"likely cause", "not the one this token was made for"},
			check: func(t *testing.T, e Explanation) {
				if e.CauseConfirmed {
					t.Error("must not be confirmed")
				}
			}},
		{name: "empty body", auth: good, body: nil, now: now, wantErr: ErrHashMismatch, want: []string{"body is empty"}},
		{name: "no token", auth: "", body: body, now: now, wantErr: ErrMissingToken, want: []string{"no Authorization token"}},
		{name: "hex signature instead of jwt", auth: LegacySignature(tSecret, body), body: body, now: now,
			wantErr: ErrMalformedToken, want: []string{"not a readable JWT", "X-LiveKit-Signature"}},
		{name: "garbage token", auth: "abc.def", body: body, now: now, wantErr: ErrMalformedToken, want: []string{"three dot-separated parts"}},
		{name: "hs512", auth: handToken(t, jwt.SigningMethodHS512, jwt.MapClaims{"iss": tKey, "exp": now.Add(time.Minute).Unix(), "sha256": BodyHash(body)}),
			body: body, now: now, wantErr: ErrBadAlgorithm, want: []string{"HS512", "only uses HS256"}},
		{name: "no exp", auth: handToken(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": tKey, "sha256": BodyHash(body)}),
			body: body, now: now, wantErr: ErrNoExpiry, want: []string{"no exp claim", "no iat claim"}},
		{name: "no sha256", auth: handToken(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": tKey, "exp": now.Add(time.Minute).Unix()}),
			body: body, now: now, wantErr: ErrMissingHash, want: []string{"no sha256 claim"}},
		{name: "several problems", auth: mustSign(t, tKey, "wrong-secret-0123456789abcdef0123", body), body: []byte("{}"),
			now: now.Add(time.Hour), wantErr: ErrBadSignature, want: []string{"expired 55m", "does NOT verify", "does not match", "3 problems"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.keys
			if k == nil {
				k = keys
			}
			e := Explain(k, tc.auth, tc.body, tc.now, DefaultLeeway)
			text := e.String()
			t.Log("\n" + text)

			// The verdict is the verifier's.
			_, verr := New(auth.NewFileBasedKeyProviderFromMap(k),
				WithClock(func() time.Time { return tc.now }), WithLeeway(DefaultLeeway)).Verify(tc.auth, "", tc.body)
			if Reason(verr) != Reason(e.Err) || (verr == nil) != e.OK {
				t.Fatalf("verdict %v, verifier says %v", e.Err, verr)
			}
			if tc.wantErr == nil && !e.OK || tc.wantErr != nil && !errors.Is(e.Err, tc.wantErr) {
				t.Fatalf("err %v, want %v", e.Err, tc.wantErr)
			}
			last := e.Lines[len(e.Lines)-1]
			if e.OK != strings.HasPrefix(last, "Verdict: VALID") {
				t.Fatalf("last line %q", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
					t.Errorf("explanation lacks %q", w)
				}
			}
			for _, s := range k {
				if strings.Contains(text, s) {
					t.Fatal("explanation shows a secret")
				}
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestSpaceAfterCommas(t *testing.T) {
	got := string(spaceAfterCommas([]byte(`{"a":"x,\"y,","b":[1,2]}`)))
	if want := `{"a":"x,\"y,", "b":[1, 2]}`; got != want {
		t.Fatalf("%s", got)
	}
}

func TestFormatting(t *testing.T) {
	if got := fmtLeeway(60 * time.Second); got != "60s" {
		t.Error(got)
	}
	if got := fmtDur(3*time.Minute + 12*time.Second + 700*time.Millisecond); got != "3m12s" {
		t.Error(got)
	}
}
