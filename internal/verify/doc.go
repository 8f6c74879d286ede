// Package verify checks that a webhook request was signed by LiveKit.
//
// Real LiveKit signs every webhook with an HS256 JWT in the Authorization
// header: the token's iss names the API key, and its sha256 claim is the
// standard base64 of SHA-256 over the exact raw body. This package verifies
// that token with the same JWT library livekit/protocol uses
// (github.com/golang-jwt/jwt/v5), looking the secret up by iss in an
// auth.KeyProvider, with a configurable leeway and clock.
//
// Every failure is one of the exported sentinel errors, so callers can
// errors.Is them and turn them into HTTP answers, metric labels and log
// fields. No error message ever contains a secret.
//
// A legacy X-LiveKit-Signature (hex HMAC-SHA256 of the body) can be accepted
// as well, for setups built on an old third-party guide. Real LiveKit never
// sends it; it is off unless enabled.
package verify
