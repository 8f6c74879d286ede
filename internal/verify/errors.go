package verify

import "errors"

// Sentinel errors, one per refusal reason. Reason returns their label.
var (
	ErrMissingToken   = errors.New("livekit webhook: missing Authorization token")
	ErrMalformedToken = errors.New("livekit webhook: malformed token")
	ErrUnknownKey     = errors.New("livekit webhook: token signed with an unknown API key")
	ErrBadSignature   = errors.New("livekit webhook: bad token signature")
	ErrBadAlgorithm   = errors.New("livekit webhook: token algorithm is not HS256")
	ErrExpired        = errors.New("livekit webhook: token expired")
	ErrNotYetValid    = errors.New("livekit webhook: token not yet valid")
	ErrNoExpiry       = errors.New("livekit webhook: token has no exp claim")
	ErrHashMismatch   = errors.New("livekit webhook: body does not match the token's sha256 claim")
	ErrMissingHash    = errors.New("livekit webhook: token has no sha256 claim")
	ErrBadLegacySig   = errors.New("livekit webhook: X-LiveKit-Signature does not match the body")
)

var reasons = []struct {
	err    error
	reason string
}{
	{ErrMissingToken, "missing_token"},
	{ErrMalformedToken, "malformed_token"},
	{ErrUnknownKey, "unknown_key"},
	{ErrBadSignature, "bad_signature"},
	{ErrBadAlgorithm, "bad_algorithm"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrNoExpiry, "no_expiry"},
	{ErrHashMismatch, "hash_mismatch"},
	{ErrMissingHash, "missing_hash"},
	{ErrBadLegacySig, "bad_legacy_signature"},
}

// Reason returns a short, stable label for a verification error (for
// metrics and logs), or "unverified" for an error this package did not make.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "unverified"
}
