package e2e

import (
	"os"
	"testing"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
)

// TestMain removes the lkwebhook binary that lkserver.StartServe builds once
// per test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	lkserver.CleanupServeBuild()
	os.Exit(code)
}
