package livekitwebhooktest

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// What LiveKit's notifier puts on every webhook request.
const (
	ContentType = verify.ContentType
	UserAgent   = "LiveKit"
)

// Marshal encodes ev as LiveKit's notifier does (single-line protojson,
// lowerCamelCase, int64 as strings, enums as names, zero values omitted).
func Marshal(ev *livekit.WebhookEvent) ([]byte, error) { return verify.Marshal(ev) }

// Signer signs webhooks as a LiveKit server configured with one API key
// does. The package functions are a Signer with LiveKit's validity; set
// ValidFor for requests signed well before they are sent (a load test that
// signs everything first) or to test a receiver's expiry.
type Signer struct {
	Key, Secret string
	// ValidFor is how long a token is valid from the moment it is made;
	// zero is LiveKit's five minutes.
	ValidFor time.Duration
}

// Sign returns the Authorization value LiveKit sends with body: an HS256 JWT
// made with s.Secret whose iss is s.Key and whose sha256 claim hashes the
// exact bytes of body, valid from now for s.ValidFor.
func (s Signer) Sign(body []byte) (string, error) {
	return verify.Sign(s.Key, s.Secret, body, s.ValidFor)
}

// NewRequest marshals ev and returns the POST LiveKit would send to url.
func (s Signer) NewRequest(ctx context.Context, url string, ev *livekit.WebhookEvent) (*http.Request, error) {
	body, err := Marshal(ev)
	if err != nil {
		return nil, err
	}
	return s.NewRawRequest(ctx, url, body)
}

// NewRawRequest signs body as it is (a captured or deliberately odd body)
// and returns the POST LiveKit would send to url.
func (s Signer) NewRawRequest(ctx context.Context, url string, body []byte) (*http.Request, error) {
	tok, err := s.Sign(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Authorization", tok)
	return req, nil
}

// Sign returns the Authorization value LiveKit sends with body: an HS256 JWT
// made with apiSecret whose iss is apiKey and whose sha256 claim hashes the
// exact bytes of body. It is valid from now for five minutes.
func Sign(apiKey, apiSecret string, body []byte) (string, error) {
	return Signer{Key: apiKey, Secret: apiSecret}.Sign(body)
}

// SignAt returns the token LiveKit would have made at issuedAt, valid for
// validFor: with a time in the past it is expired, in the future not yet
// valid (tests of refusals). Claims as LiveKit's: iss, nbf, iat, exp, sha256.
func SignAt(apiKey, apiSecret string, body []byte, issuedAt time.Time, validFor time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"iss":    apiKey,
		"nbf":    issuedAt.Unix(),
		"iat":    issuedAt.Unix(),
		"exp":    issuedAt.Add(validFor).Unix(),
		"sha256": verify.BodyHash(body),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(apiSecret))
}

// NewRequest marshals ev and returns the POST LiveKit would send to url.
func NewRequest(ctx context.Context, url, apiKey, apiSecret string, ev *livekit.WebhookEvent) (*http.Request, error) {
	return Signer{Key: apiKey, Secret: apiSecret}.NewRequest(ctx, url, ev)
}

// NewRawRequest signs body as it is (a captured or deliberately odd body)
// and returns the POST LiveKit would send to url.
func NewRawRequest(ctx context.Context, url, apiKey, apiSecret string, body []byte) (*http.Request, error) {
	return Signer{Key: apiKey, Secret: apiSecret}.NewRawRequest(ctx, url, body)
}
