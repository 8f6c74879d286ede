package e2e

import (
	"os"
	"testing"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// TestMain builds lkwebhook on first use (once per test binary) and removes
// it at the end. LKWEBHOOK_E2E_SERVE_BIN runs a prebuilt one instead;
// LKWEBHOOK_E2E_SERVE_RACE=0/1 builds it without/with -race, by default as
// the test binary, so `go test -race` also race-checks `lkwebhook serve`.
func TestMain(m *testing.M) {
	race := servetest.RaceEnabled
	switch os.Getenv("LKWEBHOOK_E2E_SERVE_RACE") {
	case "0":
		race = false
	case "1":
		race = true
	}
	servetest.Main(m, servetest.Build{Race: race, Binary: os.Getenv("LKWEBHOOK_E2E_SERVE_BIN")})
}
