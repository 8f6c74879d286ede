package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
)

// DefaultLeeway is the clock skew tolerated on nbf and exp, as LiveKit's own
// receiver does.
const DefaultLeeway = 60 * time.Second

// LegacyKeys lists every secret that may have made a legacy signature. The
// key providers of livekit/protocol do not enumerate, so the caller supplies
// the secrets it loaded.
type LegacyKeys func() []string

// Verifier checks webhook requests. It is safe for concurrent use.
type Verifier struct {
	keys   auth.KeyProvider
	leeway time.Duration
	now    func() time.Time
	legacy LegacyKeys
	parser *jwt.Parser
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithLeeway sets the tolerated clock skew on nbf and exp.
func WithLeeway(d time.Duration) Option { return func(v *Verifier) { v.leeway = d } }

// WithClock replaces time.Now (tests replay captured requests with it).
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithLegacySignature accepts X-LiveKit-Signature made with any of the
// secrets that keys returns. Off by default: real LiveKit never sends it.
func WithLegacySignature(keys LegacyKeys) Option { return func(v *Verifier) { v.legacy = keys } }

// New returns a Verifier that looks secrets up in keys.
func New(keys auth.KeyProvider, opts ...Option) *Verifier {
	v := &Verifier{keys: keys, leeway: DefaultLeeway, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	// HS256 is enforced in the key function rather than with
	// jwt.WithValidMethods so that a wrong algorithm gets its own reason.
	v.parser = jwt.NewParser(
		jwt.WithLeeway(v.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
	)
	return v
}

// Result tells who signed a verified request.
type Result struct {
	APIKey string // iss of the token; "" for a legacy signature
	Legacy bool   // accepted through X-LiveKit-Signature
}

// Verify checks the Authorization header value (raw token, optionally with a
// "Bearer " prefix) against body. When the token is absent and legacy
// signatures are enabled, legacySig (the X-LiveKit-Signature value) is
// checked instead.
func (v *Verifier) Verify(authorization, legacySig string, body []byte) (Result, error) {
	token := strings.TrimSpace(authorization)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		if v.legacy != nil && legacySig != "" {
			return Result{Legacy: true}, v.verifyLegacy(legacySig, body)
		}
		return Result{}, ErrMissingToken
	}
	key, err := v.verifyToken(token, body)
	return Result{APIKey: key}, err
}

func (v *Verifier) verifyToken(token string, body []byte) (string, error) {
	var c claims
	var key string
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrBadAlgorithm
		}
		iss, _ := t.Claims.GetIssuer()
		key = iss
		secret := v.keys.GetSecret(iss)
		if iss == "" || secret == "" {
			return nil, ErrUnknownKey
		}
		return []byte(secret), nil
	})
	if err != nil {
		return key, classify(err)
	}
	if c.Sha256 == "" {
		return key, ErrMissingHash
	}
	sum := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(c.Sha256), []byte(want)) != 1 {
		return key, ErrHashMismatch
	}
	return key, nil
}

// classify maps jwt's errors onto this package's sentinels. Only a malformed
// token keeps jwt's text as context: it describes the format, never a key.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return ErrUnknownKey
	case errors.Is(err, ErrBadAlgorithm):
		return ErrBadAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	default:
		return fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
}

func (v *Verifier) verifyLegacy(sig string, body []byte) error {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return ErrBadLegacySig
	}
	for _, secret := range v.legacy() {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if hmac.Equal(got, mac.Sum(nil)) {
			return nil
		}
	}
	return ErrBadLegacySig
}
