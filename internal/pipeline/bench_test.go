package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
)

// nopMsg settles into nothing: what the chain costs, not the store.
type nopMsg struct{}

func (nopMsg) Data() []byte               { return nil }
func (nopMsg) Header(string) string       { return "" }
func (nopMsg) Attempt() int               { return 1 }
func (nopMsg) Ack() error                 { return nil }
func (nopMsg) Nak(time.Duration) error    { return nil }
func (nopMsg) InProgress() error          { return nil }
func (nopMsg) Term() error                { return nil }
func done(context.Context, Message) error { return nil }

// processChain is the chain the processor would run, with a no-op tracer.
func processChain(h Handler) Handler {
	return Chain(h,
		Settle(time.Second),
		Trace(noop.NewTracerProvider().Tracer(""), "bench.process", propagation.TraceContext{}),
		Retry(RetryPolicy{}),
		DeadLetter(5, func(context.Context, Message, error, int) error { return nil }),
		Recover(),
		Timeout(time.Minute),
		InProgress(3*time.Second),
	)
}

// BenchmarkChain compares the whole middleware chain with the bare handler
// (only settled) per message: compare ns/op of the two in one run.
func BenchmarkChain(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		h    Handler
	}{{"bare", Settle(time.Second)(done)}, {"chain", processChain(done)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.h(ctx, nopMsg{})
			}
		})
	}
}

// BenchmarkRouter is the cost of going through a router's worker (per key
// order) against calling the handler on the dispatching goroutine.
func BenchmarkRouter(b *testing.B) {
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("room-%d", i)
	}
	b.Run("direct", func(b *testing.B) {
		h := Settle(time.Second)(done)
		for i := 0; b.Loop(); i++ {
			_ = h(context.Background(), nopMsg{})
		}
	})
	b.Run("router", func(b *testing.B) {
		var wg sync.WaitGroup
		r := NewRouter(func(context.Context, Message) error { wg.Done(); return nil }, WithWorkers(2))
		defer func() { _ = r.Stop(context.Background()) }()
		for i := 0; b.Loop(); i++ {
			wg.Add(1)
			_ = r.Dispatch(context.Background(), keys[i%len(keys)], nopMsg{})
		}
		wg.Wait()
	})
}
