package verify

import (
	"testing"

	"github.com/livekit/protocol/auth"
)

// BenchmarkVerify is one webhook token's verification (parse, HS256,
// claims, body hash) with a LiveKit-sized body.
func BenchmarkVerify(b *testing.B) {
	body := []byte(`{"event":"participant_joined","room":{"sid":"RM_abcdefghijkl","name":"call-1"},"participant":{"sid":"PA_abcdefghijkl","identity":"caller","state":"ACTIVE","joinedAt":"1795779667","joinedAtMs":"1795779667123"},"id":"EV_abcdefghijkl","createdAt":"1795779667"}`)
	tok, err := Sign("devkey", "secret-secret-secret-secret-secret", body, 0)
	if err != nil {
		b.Fatal(err)
	}
	v := New(auth.NewSimpleKeyProvider("devkey", "secret-secret-secret-secret-secret"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, "", body); err != nil {
			b.Fatal(err)
		}
	}
}
