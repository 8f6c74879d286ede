package livekitwebhook

import (
	"context"
	"testing"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine/enginetest"
)

// Raw access to what is stored, for tests that look at it (the package
// itself goes through the store's repositories).
var (
	testStream    = enginetest.Stream
	testKV        = enginetest.KV
	testSubscribe = enginetest.Subscribe
	publish       = enginetest.Publish
)

// testMsg is a message as a core NATS subscriber receives it.
type testMsg = *enginetest.Msg

// baselineLoop is the bare KV get + compare-and-set + ack loop, with the
// processor's worker count.
func baselineLoop(b *testing.B, ctx context.Context, eng *engine.Engine, n, keys int) float64 {
	return enginetest.BaselineLoop(b, ctx, eng, n, keys, DefaultConfig().Workers)
}
