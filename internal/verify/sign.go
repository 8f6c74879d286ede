package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
)

// ContentType is the Content-Type LiveKit's notifier sends.
const ContentType = "application/webhook+json"

// DefaultValidFor is how long LiveKit's notifier makes a webhook token valid.
const DefaultValidFor = 5 * time.Minute

// Sign makes the Authorization token LiveKit's notifier puts on a webhook:
// an HS256 JWT from apiKey/apiSecret (iss = apiKey, nbf = iat = now, exp =
// now + validFor) whose sha256 claim is the standard base64 of SHA-256 over
// the exact body bytes. A validFor <= 0 means DefaultValidFor.
func Sign(apiKey, apiSecret string, body []byte, validFor time.Duration) (string, error) {
	if validFor <= 0 {
		validFor = DefaultValidFor
	}
	return auth.NewAccessToken(apiKey, apiSecret).
		SetValidFor(validFor).
		SetSha256(BodyHash(body)).
		ToJWT()
}

// BodyHash is the value of the sha256 claim for body: standard base64 (with
// padding) of its SHA-256.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Marshal encodes an event exactly as LiveKit's notifier does
// (livekit/protocol's protojson.Marshal: single line, lowerCamelCase,
// int64 as strings, enums as names, zero values omitted).
func Marshal(ev *livekit.WebhookEvent) ([]byte, error) {
	return protojson.Marshal(ev)
}

// LegacySignature is the hex HMAC-SHA256 of body with secret, as sent in
// X-LiveKit-Signature by setups built on an old third-party guide. Real
// LiveKit never sends it.
func LegacySignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
