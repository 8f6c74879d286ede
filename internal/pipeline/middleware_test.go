package pipeline

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recMsg is a Message that records how it was settled. The end-to-end
// tests use real JetStream messages; this one keeps the unit tests fast.
type recMsg struct {
	attempt int
	header  http.Header

	mu      sync.Mutex
	acks    int
	terms   int
	naks    []time.Duration
	beats   int
	onBeat  func(n int) // called with the heartbeat count, if set
	settled chan struct{}
}

var _ Message = (*recMsg)(nil)

func newRec(attempt int) *recMsg {
	return &recMsg{attempt: attempt, header: http.Header{}, settled: make(chan struct{}, 1)}
}

func (m *recMsg) Data() []byte             { return []byte("body") }
func (m *recMsg) Header(key string) string { return m.header.Get(key) }
func (m *recMsg) Attempt() int             { return m.attempt }

func (m *recMsg) settle(f func()) error {
	m.mu.Lock()
	f()
	m.mu.Unlock()
	select {
	case m.settled <- struct{}{}:
	default:
	}
	return nil
}

func (m *recMsg) Ack() error  { return m.settle(func() { m.acks++ }) }
func (m *recMsg) Term() error { return m.settle(func() { m.terms++ }) }
func (m *recMsg) Nak(delay time.Duration) error {
	return m.settle(func() { m.naks = append(m.naks, delay) })
}

func (m *recMsg) InProgress() error {
	m.mu.Lock()
	m.beats++
	n, f := m.beats, m.onBeat
	m.mu.Unlock()
	if f != nil {
		f(n)
	}
	return nil
}

// outcome is how m was settled: acks, terms and nak delays.
func (m *recMsg) outcome() (acks, terms int, naks []time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acks, m.terms, append([]time.Duration(nil), m.naks...)
}

// settledOnce fails unless m was settled exactly once, and returns the nak
// delay (-1 if acked, -2 if terminated).
func settledOnce(t *testing.T, m *recMsg) time.Duration {
	t.Helper()
	acks, terms, naks := m.outcome()
	if acks+terms+len(naks) != 1 {
		t.Fatalf("settled %d acks, %d terms, naks %v; want exactly one settlement", acks, terms, naks)
	}
	switch {
	case acks == 1:
		return -1
	case terms == 1:
		return -2
	}
	return naks[0]
}

var errBoom = errors.New("boom")

// testNakDelay is Settle's default in these tests: unlike any backoff, so
// that a test tells which delay a nak got.
const testNakDelay = 3 * time.Millisecond

func fails(err error) Handler {
	return func(context.Context, Message) error { return err }
}

func TestChainOrder(t *testing.T) {
	var got []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, m Message) error {
				got = append(got, name+" in")
				err := next(ctx, m)
				got = append(got, name+" out")
				return err
			}
		}
	}
	h := Chain(func(context.Context, Message) error { got = append(got, "handler"); return nil }, mw("a"), mw("b"))
	_ = h(context.Background(), newRec(1))
	want := "a in,b in,handler,b out,a out"
	if strings.Join(got, ",") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

func TestSettle(t *testing.T) {
	const def = 700 * time.Millisecond
	cases := []struct {
		name string
		h    Handler
		want time.Duration // nak delay, -1 ack, -2 term
	}{
		{"success acked", fails(nil), -1},
		{"failure nak'ed with the default", fails(errBoom), def},
		{"later nak'ed with its delay", fails(Later(42 * time.Second)), 42 * time.Second},
		{"handler's own term kept", func(_ context.Context, m Message) error { _ = m.Term(); return errBoom }, -2},
		{"handler's own ack not repeated", func(_ context.Context, m Message) error { return m.Ack() }, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newRec(1)
			_ = Settle(def)(c.h)(context.Background(), m)
			if got := settledOnce(t, m); got != c.want {
				t.Fatalf("settled with %v, want %v", got, c.want)
			}
		})
	}
}

// legacyBackoff is the processor's backoff before this package, which
// RetryPolicy's zero value keeps.
func legacyBounds(attempt int) (lo, hi time.Duration) {
	d := min(500*time.Millisecond<<min(attempt-1, 7), time.Minute)
	return d / 2, d
}

func TestRetryBackoff(t *testing.T) {
	var p RetryPolicy
	for attempt := 1; attempt <= 40; attempt++ {
		lo, hi := legacyBounds(attempt)
		for range 50 {
			if d := p.Backoff(attempt); d < lo || d > hi {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempt, d, lo, hi)
			}
		}
	}
	capped := RetryPolicy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	if d := capped.Backoff(1000); d < 2500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("capped Backoff(1000) = %v, want within [2.5s, 5s]", d)
	}
}

func TestRetry(t *testing.T) {
	var retried []time.Duration
	p := RetryPolicy{OnRetry: func(_ context.Context, _ Message, err error, d time.Duration) {
		if !errors.Is(err, errBoom) {
			t.Errorf("OnRetry err = %v", err)
		}
		retried = append(retried, d)
	}}
	h := Chain(fails(errBoom), Settle(testNakDelay), Retry(p))

	m := newRec(3)
	if err := h(context.Background(), m); !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want errBoom", err)
	}
	lo, hi := legacyBounds(3)
	if d := settledOnce(t, m); d < lo || d > hi {
		t.Fatalf("nak delay %v, want backoff within [%v, %v]", d, lo, hi)
	}
	if len(retried) != 1 {
		t.Fatalf("OnRetry called %d times, want 1", len(retried))
	}

	// Stopping: not a failure, so no backoff and no OnRetry.
	retried = nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m = newRec(5)
	_ = h(ctx, m)
	if d := settledOnce(t, m); d != testNakDelay {
		t.Fatalf("nak delay while stopping %v, want the default", d)
	}
	if len(retried) != 0 {
		t.Fatal("OnRetry called while stopping")
	}

	// Later: its own delay, no retry counted.
	m = newRec(5)
	_ = Chain(fails(Later(time.Hour)), Settle(testNakDelay), Retry(p))(context.Background(), m)
	if d := settledOnce(t, m); d != time.Hour || len(retried) != 0 {
		t.Fatalf("Later: nak %v, OnRetry %d; want 1h, 0", d, len(retried))
	}
}

type sunk struct {
	err      error
	attempts int
}

func TestDeadLetter(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	sinkErr := errors.New("dlq down")
	cases := []struct {
		name      string
		ctx       context.Context
		attempt   int
		max       int
		err       error
		sinkFails bool
		outside   bool // DeadLetter listed before Retry

		wantSunk bool
		wantNak  [2]time.Duration // bounds; {-1,-1}: acked
	}{
		{name: "retried before the last attempt", attempt: 2, max: 3, err: errBoom, wantNak: [2]time.Duration{500 * time.Millisecond, time.Second}},
		{name: "dead-lettered at the last attempt", attempt: 3, max: 3, err: errBoom, wantSunk: true, wantNak: [2]time.Duration{-1, -1}},
		{name: "past the last attempt", attempt: 9, max: 3, err: errBoom, wantSunk: true, wantNak: [2]time.Duration{-1, -1}},
		{name: "permanent at once", attempt: 1, max: 3, err: Permanent(errBoom), wantSunk: true, wantNak: [2]time.Duration{-1, -1}},
		{name: "no limit", attempt: 100, max: 0, err: errBoom, wantNak: [2]time.Duration{30 * time.Second, time.Minute}},
		{name: "no limit, permanent", attempt: 1, max: 0, err: Permanent(errBoom), wantSunk: true, wantNak: [2]time.Duration{-1, -1}},
		{name: "later is not a failure", attempt: 9, max: 3, err: Later(time.Minute), wantNak: [2]time.Duration{time.Minute, time.Minute}},
		{name: "stopping is not a failure", ctx: canceled, attempt: 9, max: 3, err: Permanent(errBoom), wantNak: [2]time.Duration{testNakDelay, testNakDelay}},
		{name: "sink failure nak'ed with backoff", attempt: 3, max: 3, err: errBoom, sinkFails: true, wantSunk: true, wantNak: [2]time.Duration{time.Second, 2 * time.Second}},
		{name: "listed outside Retry", attempt: 3, max: 3, err: errBoom, outside: true, wantSunk: true, wantNak: [2]time.Duration{-1, -1}},
		{name: "listed outside Retry, sink failure", attempt: 3, max: 3, err: errBoom, outside: true, sinkFails: true, wantSunk: true, wantNak: [2]time.Duration{time.Second, 2 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []sunk
			sink := func(_ context.Context, _ Message, err error, attempts int) error {
				got = append(got, sunk{err, attempts})
				if c.sinkFails {
					return sinkErr
				}
				return nil
			}
			retries := 0
			retry := Retry(RetryPolicy{OnRetry: func(context.Context, Message, error, time.Duration) { retries++ }})
			mws := []Middleware{Settle(testNakDelay), retry, DeadLetter(c.max, sink)}
			if c.outside {
				mws = []Middleware{Settle(testNakDelay), DeadLetter(c.max, sink), retry}
			}
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			m := newRec(c.attempt)
			err := Chain(fails(c.err), mws...)(ctx, m)

			if (len(got) == 1) != c.wantSunk || len(got) > 1 {
				t.Fatalf("sink called %d times, want sunk %v", len(got), c.wantSunk)
			}
			if c.wantSunk && (got[0].attempts != c.attempt || !errors.Is(got[0].err, errBoom)) {
				t.Fatalf("sink got %+v, want attempts %d and the cause", got[0], c.attempt)
			}
			d := settledOnce(t, m)
			if d < c.wantNak[0] || d > c.wantNak[1] {
				t.Fatalf("settled with %v, want within %v", d, c.wantNak)
			}
			deadLettered := c.wantSunk && !c.sinkFails
			if errors.Is(err, ErrDeadLettered) != deadLettered {
				t.Fatalf("err = %v, ErrDeadLettered want %v", err, deadLettered)
			}
			if c.sinkFails && !errors.Is(err, sinkErr) {
				t.Fatalf("err = %v, want the sink's error in it", err)
			}
			if deadLettered && !c.outside && retries != 0 {
				t.Fatalf("a dead-lettered failure was counted as retried")
			}
		})
	}
}

func TestRecover(t *testing.T) {
	m := newRec(1)
	var seen error
	h := Chain(func(context.Context, Message) error { panic("kaboom") },
		Settle(testNakDelay),
		Retry(RetryPolicy{OnRetry: func(_ context.Context, _ Message, err error, _ time.Duration) { seen = err }}),
		Recover())
	err := h(context.Background(), m)
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("err = %v, want ErrPanic with the value", err)
	}
	if !strings.Contains(err.Error(), "pipeline.TestRecover") {
		t.Fatalf("err has no stack of the panicking handler:\n%v", err)
	}
	if !errors.Is(seen, ErrPanic) {
		t.Fatalf("a panic is not retried as a failure: OnRetry saw %v", seen)
	}
	if d := settledOnce(t, m); d < 250*time.Millisecond || d > 500*time.Millisecond {
		t.Fatalf("nak delay %v, want the first backoff", d)
	}
}

func TestTimeout(t *testing.T) {
	blocks := func(ctx context.Context, _ Message) error { <-ctx.Done(); return ctx.Err() }

	err := Timeout(10*time.Millisecond)(blocks)(context.Background(), newRec(1))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout wrapping the handler's error", err)
	}

	// The outer context ending (stopping) is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Timeout(time.Hour)(blocks)(ctx, newRec(1)); errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled without ErrTimeout", err)
	}

	// A success after the deadline is a success.
	late := func(ctx context.Context, _ Message) error { <-ctx.Done(); return nil }
	if err := Timeout(time.Millisecond)(late)(context.Background(), newRec(1)); err != nil {
		t.Fatalf("err = %v, want nil", err)
	}

	if err := Timeout(0)(func(ctx context.Context, _ Message) error {
		if _, ok := ctx.Deadline(); ok {
			return errors.New("deadline set")
		}
		return nil
	})(context.Background(), newRec(1)); err != nil {
		t.Fatal(err)
	}
}

func TestInProgress(t *testing.T) {
	m := newRec(1)
	beats := make(chan int, 100)
	var returned bool
	var mu sync.Mutex
	m.onBeat = func(n int) {
		mu.Lock()
		defer mu.Unlock()
		if returned {
			t.Errorf("heartbeat %d after the handler returned", n)
		}
		beats <- n
	}
	h := Chain(func(context.Context, Message) error {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case n := <-beats:
				if n == 3 {
					return nil
				}
			case <-timeout:
				return errors.New("no heartbeats while the handler ran")
			}
		}
	}, InProgress(time.Millisecond))
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	returned = true
	mu.Unlock()

	// After the message is settled, heartbeats are dropped.
	m2 := newRec(1)
	m2.onBeat = func(int) { t.Error("heartbeat after the message was acked") }
	d := track(m2)
	_ = d.Ack()
	_ = d.InProgress()
}

func TestTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	prop := propagation.TraceContext{}

	// The parent travels in the message headers, as intake stores it.
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	m := newRec(1)
	prop.Inject(trace.ContextWithRemoteSpanContext(context.Background(), parent), propagation.HeaderCarrier(m.header))

	_ = Trace(tracer, "test.process", prop)(fails(errBoom))(context.Background(), m)
	_ = Trace(tracer, "test.later", prop)(fails(Later(time.Second)))(context.Background(), m)

	// Without a propagator the parent is ctx's span (a hook call).
	ctx, outer := tracer.Start(context.Background(), "outer")
	_ = Trace(tracer, "test.hook", nil, trace.WithSpanKind(trace.SpanKindInternal))(fails(nil))(ctx, m)
	outer.End()

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		spans[s.Name] = s
	}
	p := spans["test.process"]
	if p.Parent.TraceID() != parent.TraceID() || p.Parent.SpanID() != parent.SpanID() {
		t.Fatalf("process span parent %v, want the span in the headers", p.Parent)
	}
	if p.SpanKind != trace.SpanKindConsumer || p.Status.Code != codes.Error || len(p.Events) == 0 {
		t.Fatalf("process span kind %v status %v events %d; want consumer, error, the error recorded", p.SpanKind, p.Status, len(p.Events))
	}
	if l := spans["test.later"]; l.Status.Code == codes.Error || len(l.Events) != 0 {
		t.Fatalf("Later recorded as a failure: %v", l.Status)
	}
	h := spans["test.hook"]
	if h.Parent.SpanID() != spans["outer"].SpanContext.SpanID() || h.SpanKind != trace.SpanKindInternal {
		t.Fatalf("hook span parent %v kind %v; want outer, internal", h.Parent, h.SpanKind)
	}
}
