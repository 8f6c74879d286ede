// Package exampletest holds what the examples' tests share: posting a
// webhook signed exactly as LiveKit signs it, waiting for a condition, and
// a buffer the example and the test may use at once.
package exampletest

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// PostSigned posts ev to url as LiveKit's notifier would, signed with
// key/secret, and returns the status code.
func PostSigned(t testing.TB, url, key, secret string, ev *livekit.WebhookEvent) int {
	t.Helper()
	req, err := livekitwebhooktest.NewRequest(context.Background(), url, key, secret, ev)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// ClearKeyEnv empties every variable the examples read keys from, so a
// test runs on the keys it sets itself, whatever the shell exported.
func ClearKeyEnv(t testing.TB) {
	for _, k := range []string{"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_KEYS",
		"BELUGA_LIVEKIT_WEBHOOK_API_KEY", "BELUGA_LIVEKIT_WEBHOOK_API_SECRET", "BELUGA_LIVEKIT_WEBHOOK_KEYS",
		"BELUGA_LIVEKIT_WEBHOOK_KEY_FILE"} {
		t.Setenv(k, "")
	}
}
