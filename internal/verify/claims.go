package verify

import "github.com/golang-jwt/jwt/v5"

// claims are the claims LiveKit puts in a webhook token. golang-jwt decodes
// them (encoding/json): a hand-written decoder saved about 1.6 µs of a
// request's ≈57 µs of server CPU, under the 5 % that would justify owning
// code on the verification path.
type claims struct {
	jwt.RegisteredClaims
	Sha256 string `json:"sha256,omitempty"`
}
