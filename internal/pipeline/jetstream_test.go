package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// jsMsg is the adapter the store layer provides: a JetStream message as a
// Message.
type jsMsg struct{ jetstream.Msg }

var _ Message = jsMsg{}

func (m jsMsg) Header(key string) string { return http.Header(m.Headers()).Get(key) }

func (m jsMsg) Attempt() int {
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	return int(md.NumDelivered)
}

func (m jsMsg) Nak(delay time.Duration) error {
	if delay <= 0 {
		return m.Msg.Nak()
	}
	return m.NakWithDelay(delay)
}

// testAckWait is long: within a test, a message can only come back because
// the chain nak'ed it.
const testAckWait = 30 * time.Second

type jsEnv struct {
	t    *testing.T
	js   jetstream.JetStream
	cons jetstream.Consumer
	dlq  jetstream.Stream
}

// startJS runs an embedded JetStream server with a stream, its durable
// consumer and a dead-letter stream, as the store layer provisions them.
func startJS(t *testing.T, ackWait time.Duration) *jsEnv {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "pipeline-test", JetStream: true, StoreDir: t.TempDir(),
		DontListen: true, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "proc", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &jsEnv{t: t, js: js, cons: cons, dlq: dlq}
}

// publish stores a message for room, with the trace context of ctx in its
// headers as intake stores it.
func (e *jsEnv) publish(ctx context.Context, room, body string) {
	e.t.Helper()
	msg := nats.NewMsg("ev." + room)
	msg.Data = []byte(body)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(msg.Header))
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		e.t.Fatal(err)
	}
}

// sink stores a dead letter in the DLQ stream, deduplicated by the
// original's stream sequence.
func (e *jsEnv) sink(ctx context.Context, m Message, cause error, attempts int) error {
	md, err := m.(*delivery).Message.(jsMsg).Metadata()
	if err != nil {
		return err
	}
	dl := nats.NewMsg("dlq.ev")
	dl.Data = m.Data()
	dl.Header.Set("Lkwh-Error", cause.Error())
	dl.Header.Set("Lkwh-Attempts", strconv.Itoa(attempts))
	_, err = e.js.PublishMsg(ctx, dl, jetstream.WithMsgID(fmt.Sprintf("dlq/%d", md.Sequence.Stream)))
	return err
}

// consume runs r on the consumer as the processor does: each delivery is
// dispatched by room; one the router refuses is nak'ed.
func (e *jsEnv) consume(r *Router) jetstream.ConsumeContext {
	e.t.Helper()
	cc, err := e.cons.Consume(func(msg jetstream.Msg) {
		if err := r.Dispatch(context.Background(), msg.Subject(), jsMsg{msg}); err != nil {
			_ = msg.NakWithDelay(100 * time.Millisecond)
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cc.Stop)
	return cc
}

// settledAll waits until the consumer has every stored message acked, and
// returns how many deliveries it made.
func (e *jsEnv) settledAll(n uint64) uint64 {
	e.t.Helper()
	var info *jetstream.ConsumerInfo
	waitFor(e.t, "every message acked", func() bool {
		var err error
		info, err = e.cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream == n && info.NumAckPending == 0 && info.NumPending == 0
	})
	return info.Delivered.Consumer
}

func (e *jsEnv) deadLetters() []*nats.Header {
	e.t.Helper()
	info, err := e.dlq.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*nats.Header
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := e.dlq.GetMsg(context.Background(), seq)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, &m.Header)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attempts records every call of a handler: the attempt and when.
type attempts struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	body    string
	attempt int
	at      time.Time
}

func (a *attempts) record(m Message) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call{string(m.Data()), m.Attempt(), time.Now()})
	return m.Attempt()
}

func (a *attempts) of(body string) []call {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []call
	for _, c := range a.calls {
		if c.body == body {
			out = append(out, c)
		}
	}
	return out
}

// TestJetStreamChain runs the processor's chain over real JetStream: what
// each outcome of a handler does to the stored message.
func TestJetStreamChain(t *testing.T) {
	e := startJS(t, testAckWait)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	var rec attempts
	var mu sync.Mutex
	retried := map[string][]error{}
	sunkErr := map[string]error{}
	h := func(ctx context.Context, m Message) error {
		attempt := rec.record(m)
		switch string(m.Data()) {
		case "ok":
			return nil
		case "fails once":
			if attempt == 1 {
				return errBoom
			}
			return nil
		case "always fails":
			return errBoom
		case "permanent":
			return Permanent(errBoom)
		case "panics once":
			if attempt == 1 {
				panic("kaboom")
			}
			return nil
		case "too slow":
			<-ctx.Done()
			return ctx.Err()
		}
		return fmt.Errorf("unexpected body %q", m.Data())
	}
	const maxAttempts = 3
	chain := Chain(h,
		Trace(tp.Tracer("test"), "test.process", propagation.TraceContext{}),
		Retry(RetryPolicy{Base: 400 * time.Millisecond, OnRetry: func(_ context.Context, m Message, err error, _ time.Duration) {
			mu.Lock()
			retried[string(m.Data())] = append(retried[string(m.Data())], err)
			mu.Unlock()
		}}),
		DeadLetter(maxAttempts, func(ctx context.Context, m Message, cause error, n int) error {
			mu.Lock()
			sunkErr[string(m.Data())] = cause
			mu.Unlock()
			return e.sink(ctx, m, cause, n)
		}),
		Recover(),
		Timeout(100*time.Millisecond),
		InProgress(time.Second),
	)
	r := NewRouter(chain, WithWorkers(4), WithNakDelay(time.Minute)) // every nak here has its own delay
	e.consume(r)

	traced := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled})
	bodies := []string{"ok", "fails once", "always fails", "permanent", "panics once", "too slow"}
	for i, b := range bodies {
		e.publish(trace.ContextWithSpanContext(context.Background(), traced), fmt.Sprintf("room%d", i), b)
	}
	deliveries := e.settledAll(uint64(len(bodies)))
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	wantAttempts := map[string]int{"ok": 1, "fails once": 2, "always fails": maxAttempts, "permanent": 1, "panics once": 2, "too slow": maxAttempts}
	total := 0
	for b, want := range wantAttempts {
		calls := rec.of(b)
		total += len(calls)
		if len(calls) != want {
			t.Errorf("%q handled %d times, want %d", b, len(calls), want)
			continue
		}
		for i, c := range calls {
			if c.attempt != i+1 {
				t.Errorf("%q call %d saw attempt %d", b, i+1, c.attempt)
			}
		}
	}
	if deliveries != uint64(total) {
		t.Errorf("consumer made %d deliveries, handlers saw %d", deliveries, total)
	}

	// A failure comes back after its backoff, not at once: the first
	// attempt's delay is within [Base/2, Base].
	if calls := rec.of("fails once"); len(calls) == 2 {
		if gap := calls[1].at.Sub(calls[0].at); gap < 200*time.Millisecond {
			t.Errorf("redelivered after %v, want at least the backoff's 200ms", gap)
		}
	}
	if errs := retried["panics once"]; len(errs) != 1 || !errors.Is(errs[0], ErrPanic) {
		t.Errorf("panic retried as %v, want one ErrPanic", errs)
	}
	if !errors.Is(sunkErr["too slow"], ErrTimeout) {
		t.Errorf("too slow dead-lettered with %v, want ErrTimeout", sunkErr["too slow"])
	}

	// Dead letters: always fails and too slow after their attempts,
	// permanent at once; each stored once, its message acked (above).
	byAttempts := map[string]int{}
	for _, h := range e.deadLetters() {
		byAttempts[h.Get("Lkwh-Attempts")]++
	}
	if want := map[string]int{"1": 1, strconv.Itoa(maxAttempts): 2}; fmt.Sprint(byAttempts) != fmt.Sprint(want) {
		t.Errorf("dead letters by attempts %v, want %v", byAttempts, want)
	}
	if len(retried["permanent"]) != 0 || len(retried["always fails"]) != maxAttempts-1 {
		t.Errorf("retries counted: permanent %d, always fails %d; want 0, %d",
			len(retried["permanent"]), len(retried["always fails"]), maxAttempts-1)
	}

	// Every processing span continues the trace stored with its message.
	spans := exp.GetSpans()
	if len(spans) != total {
		t.Fatalf("%d spans for %d handlings", len(spans), total)
	}
	for _, s := range spans {
		if s.Parent.TraceID() != traced.TraceID() {
			t.Fatalf("span %s not in the stored trace", s.Name)
		}
	}
}

// TestJetStreamShutdown: a handler slower than the stop deadline ends
// cleanly; its message is nak'ed, neither counted as a failure nor
// dead-lettered, and is redelivered to the next router.
func TestJetStreamShutdown(t *testing.T) {
	e := startJS(t, testAckWait)
	started := make(chan struct{}, 1)
	var failures sync.Map
	chain := Chain(func(ctx context.Context, m Message) error {
		started <- struct{}{}
		<-ctx.Done() // slower than any deadline
		return ctx.Err()
	},
		Retry(RetryPolicy{OnRetry: func(context.Context, Message, error, time.Duration) { failures.Store("retry", true) }}),
		DeadLetter(1, func(context.Context, Message, error, int) error { failures.Store("dead letter", true); return nil }),
		Recover(), InProgress(time.Second))
	r := NewRouter(chain, WithWorkers(2))
	cc := e.consume(r)
	e.publish(context.Background(), "room", "slow")
	<-started

	// As the processor stops: the consumer first, then the router.
	cc.Stop()
	<-cc.Closed()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
	<-r.Closed()
	failures.Range(func(k, _ any) bool { t.Errorf("stopping counted as a failure: %s", k); return true })

	// The next router gets it back (a nak, not the 30 s ack wait) and
	// finishes it.
	var rec attempts
	r2 := NewRouter(Chain(func(_ context.Context, m Message) error { rec.record(m); return nil }), WithWorkers(2))
	e.consume(r2)
	e.settledAll(1)
	if err := r2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := rec.of("slow"); len(calls) != 1 || calls[0].attempt != 2 {
		t.Fatalf("redelivered as %+v, want once, attempt 2", calls)
	}
	if len(e.deadLetters()) != 0 {
		t.Fatal("dead-lettered on shutdown")
	}
}

// TestJetStreamInProgress: heartbeats keep a message that takes longer
// than its ack wait from being redelivered meanwhile.
func TestJetStreamInProgress(t *testing.T) {
	const ackWait = time.Second
	e := startJS(t, ackWait)
	beats := make(chan struct{}, 64)
	beating := func(next Handler) Handler {
		return func(ctx context.Context, m Message) error { return next(ctx, beatCounter{m, beats}) }
	}
	chain := Chain(func(ctx context.Context, m Message) error {
		// Run well past the ack wait: 25 heartbeats of 100ms.
		for range 25 {
			select {
			case <-beats:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, beating, InProgress(100*time.Millisecond))
	r := NewRouter(chain, WithWorkers(1))
	e.consume(r)
	start := time.Now()
	e.publish(context.Background(), "room", "long")
	if n := e.settledAll(1); n != 1 {
		t.Fatalf("%d deliveries, want 1: redelivered while in progress", n)
	}
	if took := time.Since(start); took < ackWait {
		t.Fatalf("handled in %v, not longer than the ack wait %v: test proves nothing", took, ackWait)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// beatCounter signals each heartbeat sent to the store.
type beatCounter struct {
	Message
	beats chan<- struct{}
}

func (b beatCounter) InProgress() error {
	err := b.Message.InProgress()
	b.beats <- struct{}{}
	return err
}
