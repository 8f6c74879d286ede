package verify

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tidwall/gjson"
)

// claims are the claims LiveKit puts in a webhook token.
type claims struct {
	jwt.RegisteredClaims
	Sha256 string `json:"sha256,omitempty"`
}

// errClaimType is a registered claim of the wrong JSON type.
var errClaimType = errors.New("claim of the wrong type")

// UnmarshalJSON decodes the claims in one pass over the bytes. jwt decodes
// them with encoding/json's reflection, a fifth of a verification's CPU
// (1.6 of 8 µs, 16 of 54 allocations); encoding/json has checked the bytes
// are valid JSON before it calls this. It yields what encoding/json
// would, except that claim names match exactly, as RFC 7519 says they do.
func (c *claims) UnmarshalJSON(b []byte) error {
	obj := gjson.ParseBytes(b)
	switch {
	case obj.Type == gjson.Null:
		return nil // a no-op, as for any json.Unmarshaler
	case !obj.IsObject():
		return errClaimType
	}
	var err error
	obj.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "iss":
			err = claimString(v, &c.Issuer)
		case "sub":
			err = claimString(v, &c.Subject)
		case "jti":
			err = claimString(v, &c.ID)
		case "sha256":
			err = claimString(v, &c.Sha256)
		case "aud":
			c.Audience, err = claimStrings(v)
		case "exp":
			c.ExpiresAt, err = claimDate(v)
		case "nbf":
			c.NotBefore, err = claimDate(v)
		case "iat":
			c.IssuedAt, err = claimDate(v)
		}
		return err == nil
	})
	return err
}

// claimString leaves s alone for null, as encoding/json does.
func claimString(v gjson.Result, s *string) error {
	switch v.Type {
	case gjson.Null:
		return nil
	case gjson.String:
		*s = jsonString(v.Str)
		return nil
	}
	return errClaimType
}

// jsonString replaces each invalid UTF-8 byte with U+FFFD, as encoding/json
// does (gjson passes bytes through).
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // an invalid byte ranges as one utf8.RuneError
		b.WriteRune(r)
	}
	return b.String()
}

// claimStrings accepts a string or an array of strings (jwt.ClaimStrings).
func claimStrings(v gjson.Result) (jwt.ClaimStrings, error) {
	switch {
	case v.Type == gjson.Null:
		return nil, nil
	case v.Type == gjson.String:
		return jwt.ClaimStrings{jsonString(v.Str)}, nil
	case !v.IsArray():
		return nil, errClaimType
	}
	var out jwt.ClaimStrings // nil when empty, as jwt's own decoding
	for _, s := range v.Array() {
		if s.Type != gjson.String {
			return nil, errClaimType
		}
		out = append(out, jsonString(s.Str))
	}
	return out, nil
}

// claimDate is jwt.NumericDate's decoding: seconds, fractions allowed, as
// a JSON number or a string holding one (json.Number takes both).
func claimDate(v gjson.Result) (*jwt.NumericDate, error) {
	switch v.Type {
	case gjson.Null:
		return nil, nil
	case gjson.String, gjson.Number:
		num := v.Raw
		if v.Type == gjson.String {
			num = v.Str
			if !isJSONNumber(num) {
				return nil, errClaimType
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return nil, errClaimType
		}
		sec, frac := math.Modf(f)
		return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
	}
	return nil, errClaimType
}

// isJSONNumber reports whether s is one JSON number literal (what
// json.Number accepts from a string; ParseFloat alone takes "Inf", "0x1p3").
func isJSONNumber(s string) bool {
	r := gjson.Parse(s)
	return r.Type == gjson.Number && r.Raw == s && json.Valid([]byte(s))
}
