package verify

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// reflectClaims are claims as jwt decodes them by default (encoding/json's
// reflection): the reference claims.UnmarshalJSON must agree with.
type reflectClaims struct {
	jwt.RegisteredClaims
	Sha256 string `json:"sha256,omitempty"`
}

// decodeBoth decodes data as jwt does (json.Unmarshal) into both types.
func decodeBoth(data []byte) (fast claims, fastErr error, ref reflectClaims, refErr error) {
	fastErr = json.Unmarshal(data, &fast)
	refErr = json.Unmarshal(data, &ref)
	return
}

func TestClaimsDecodeLikeEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		wantErr    bool
	}{
		{"livekit", `{"iss":"devkey","exp":1795803891,"nbf":1795803591,"iat":1795803591,"sha256":"l7wN/5p="}`, false},
		{"fractional dates", `{"exp":1795803891.75,"nbf":1.5e9,"iat":0}`, false},
		{"negative date", `{"exp":-5}`, false},
		{"all registered", `{"iss":"k","sub":"s","aud":["a","b"],"jti":"j","exp":2,"nbf":1,"iat":1}`, false},
		{"audience string", `{"aud":"one"}`, false},
		{"audience empty array", `{"aud":[]}`, false},
		{"nulls", `{"iss":null,"aud":null,"exp":null,"sha256":null}`, false},
		{"escaped strings", `{"iss":"d\u0065vkey","sha256":"a\/b"}`, false},
		{"escaped names", `{"\u0069ss":"k","ex\u0070":7}`, false},
		{"unknown claims kept out", `{"video":{"roomJoin":true},"name":"x","exp":3}`, false},
		{"duplicate key: last wins", `{"iss":"first","iss":"second","exp":1,"exp":2}`, false},
		{"empty object", `{}`, false},
		{"null claims", `null`, false},
		{"exp as a numeric string", `{"exp":"1795803891","nbf":"1.5e9"}`, false},
		{"exp as a non-numeric string", `{"exp":"soon"}`, true},
		{"exp as Inf", `{"exp":"Inf"}`, true},
		{"invalid UTF-8", "{\"iss\":\"a\xb5b\",\"aud\":[\"\xff\"]}", false},
		{"iss as number", `{"iss":5}`, true},
		{"sha256 as object", `{"sha256":{}}`, true},
		{"aud with a number", `{"aud":["a",1]}`, true},
		{"aud as object", `{"aud":{}}`, true},
		{"not an object", `[1,2]`, true},
		{"bool date", `{"nbf":true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, fastErr, ref, refErr := decodeBoth([]byte(tc.json))
			if (fastErr != nil) != tc.wantErr || (refErr != nil) != tc.wantErr {
				t.Fatalf("errors: fast %v, encoding/json %v; want error %v", fastErr, refErr, tc.wantErr)
			}
			if !tc.wantErr && !sameClaims(fast, ref) {
				t.Fatalf("fast %+v\nencoding/json %+v", fast, ref)
			}
		})
	}
}

func sameClaims(a claims, b reflectClaims) bool {
	return reflect.DeepEqual(a.RegisteredClaims, b.RegisteredClaims) && a.Sha256 == b.Sha256
}

// FuzzClaimsDecode checks the one-pass decoder against encoding/json on any
// claims a signer could put in a token: same verdict, same values. Claim
// names differing only in case are left out (RFC 7519 names are exact;
// encoding/json folds case).
func FuzzClaimsDecode(f *testing.F) {
	for _, s := range []string{
		`{"iss":"devkey","exp":1795803891,"nbf":1795803591,"iat":1795803591,"sha256":"x"}`,
		`{"aud":["a","b"],"exp":1.25}`, `{"aud":"a","sub":null}`, `{"exp":"1"}`, `[]`, `{"iss":"a","iss":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || foldsOntoClaim(data) {
			return
		}
		fast, fastErr, ref, refErr := decodeBoth(data)
		if (fastErr != nil) != (refErr != nil) {
			t.Fatalf("%s: fast %v, encoding/json %v", data, fastErr, refErr)
		}
		if fastErr == nil && !sameClaims(fast, ref) {
			t.Fatalf("%s:\nfast %+v\nencoding/json %+v", data, fast, ref)
		}
	})
}

// foldsOntoClaim reports a top-level key that encoding/json would match to
// a claim only by folding case.
func foldsOntoClaim(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	for k := range m {
		for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sha256"} {
			if k != name && strings.EqualFold(k, name) {
				return true
			}
		}
	}
	return false
}
