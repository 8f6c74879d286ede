package livekitwebhook

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// testStream opens a stream of eng by name, for tests that look at what is
// stored (the package itself goes through the store's repositories).
func testStream(t testing.TB, eng *engine.Engine, name string) jetstream.Stream {
	t.Helper()
	s, err := eng.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testKV opens a KV bucket of eng by name.
func testKV(t testing.TB, eng *engine.Engine, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := eng.JetStream().KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
