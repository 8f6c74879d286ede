package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Settle settles every message exactly once, after the rest of the chain:
// it acks when the chain returns nil and naks when it returns an error,
// unless something inside settled the message already (DeadLetter, or a
// handler that called Term). The nak delay is the one the error asks for
// (Retry's backoff, Later's delay), else def: a failure while stopping, or
// a chain without Retry. It is the only place that acks a success; the
// Router puts it outermost.
func Settle(def time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) error {
			d := track(m)
			err := next(ctx, d)
			switch {
			case d.settled():
			case err == nil:
				return d.Ack()
			default:
				_ = d.Nak(nakDelay(err, def))
			}
			return err
		}
	}
}

// delivery lets the first settlement of a message through and makes later
// ones no-ops, so that a middleware may settle and still return its error
// for those outside it to see.
type delivery struct {
	Message
	done atomic.Bool
}

var _ Message = (*delivery)(nil)

func track(m Message) *delivery {
	if d, ok := m.(*delivery); ok {
		return d
	}
	return &delivery{Message: m}
}

// settled reports whether m is a tracked delivery already settled.
func settled(m Message) bool {
	d, ok := m.(*delivery)
	return ok && d.settled()
}

func (d *delivery) settled() bool { return d.done.Load() }

// Unwrap returns the message the delivery tracks (see Underlying).
func (d *delivery) Unwrap() Message { return d.Message }

func (d *delivery) Ack() error {
	if !d.done.CompareAndSwap(false, true) {
		return nil
	}
	return d.Message.Ack()
}

func (d *delivery) Nak(delay time.Duration) error {
	if !d.done.CompareAndSwap(false, true) {
		return nil
	}
	return d.Message.Nak(delay)
}

func (d *delivery) Term() error {
	if !d.done.CompareAndSwap(false, true) {
		return nil
	}
	return d.Message.Term()
}

func (d *delivery) InProgress() error {
	if d.settled() {
		return nil // settled: nothing left to keep
	}
	return d.Message.InProgress()
}

// Trace runs the handler in a span named name (a consumer span unless opts
// say otherwise). With a propagator, the parent comes from the message
// headers (the trace of the request that stored it); without one, from ctx
// (a hook call inside a processing span). Failures are recorded on the
// span; Later is not a failure.
func Trace(tracer trace.Tracer, name string, prop propagation.TextMapPropagator, opts ...trace.SpanStartOption) Middleware {
	start := append([]trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", name)),
	}, opts...) // later options win: the caller may change the kind
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) error {
			if prop != nil {
				ctx = prop.Extract(ctx, headerCarrier{m})
			}
			ctx, span := tracer.Start(ctx, name, start...)
			defer span.End()
			err := next(ctx, m)
			if err != nil && !isLater(err) {
				span.RecordError(err)
				span.SetStatus(codes.Error, "failed")
			}
			return err
		}
	}
}

// headerCarrier reads trace context from message headers. Keys is empty:
// the W3C trace-context and baggage propagators only Get.
type headerCarrier struct{ m Message }

var _ propagation.TextMapCarrier = headerCarrier{}

func (c headerCarrier) Get(key string) string { return c.m.Header(key) }
func (headerCarrier) Set(string, string)      {}
func (headerCarrier) Keys() []string          { return nil }

// Recover turns a panic in the handler into an error wrapping ErrPanic,
// with the stack: a handler's bug fails its message (retried, then
// dead-lettered) instead of taking the worker down.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("%w: %v\n%s", ErrPanic, v, debug.Stack())
				}
			}()
			return next(ctx, m)
		}
	}
}

// Timeout gives the handler at most d (no limit when d <= 0). The handler
// must honour its context; a failure after its deadline wraps ErrTimeout,
// unless ctx itself ended first (stopping is not a timeout).
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, m Message) error {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(tctx, m)
			if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("%w after %s: %w", ErrTimeout, d, err)
			}
			return err
		}
	}
}

// defaultHeartbeat is InProgress's interval when given none: well inside
// the processor's 10 s ack wait.
const defaultHeartbeat = 3 * time.Second

// InProgress calls m.InProgress every interval (3 s if every <= 0) while
// the handler runs, so that slow work keeps its message instead of having
// it redelivered to another worker after the ack wait. It stops with the
// handler, or when ctx ends (a handler that ignores a stop loses its
// message to redelivery).
func InProgress(every time.Duration) Middleware {
	if every <= 0 {
		every = defaultHeartbeat
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) error {
			// A timer, not a goroutine: most handlers finish long before
			// the first beat.
			var mu sync.Mutex // a beat holds it; stopping takes it
			stopped := false
			var t *time.Timer
			beat := func() {
				mu.Lock()
				defer mu.Unlock()
				if stopped || ctx.Err() != nil {
					return
				}
				_ = m.InProgress()
				t.Reset(every)
			}
			mu.Lock() // a beat waits for t to be set
			t = time.AfterFunc(every, beat)
			mu.Unlock()
			// No heartbeat after the handler returns: whatever settles the
			// message next must not race one.
			defer func() {
				mu.Lock()
				stopped = true
				t.Stop()
				mu.Unlock()
			}()
			return next(ctx, m)
		}
	}
}

// RetryPolicy is how long a failed message waits before its next attempt:
// exponential in the attempt, Base for the first, capped at Max, with
// jitter. The zero value is the processor's: 0.5 s, 1 s, 2 s … 1 min.
type RetryPolicy struct {
	Base time.Duration // first attempt's delay bound; 0: 500ms
	Max  time.Duration // cap; 0: 1 min

	// OnRetry, if set, is called for each failure that will be retried
	// (metrics, a log line, the user's OnError).
	OnRetry func(ctx context.Context, m Message, err error, delay time.Duration)
}

// Backoff is the delay after the given failed attempt (1 for the first): a
// bound d = Base·2^(attempt-1), at most Max, then a random delay in
// [d/2, d], so that messages failing together do not come back together.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	base, limit := p.Base, p.Max
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if limit <= 0 {
		limit = time.Minute
	}
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// Retry gives each failure the policy's backoff as its nak delay (Settle
// naks with it). It leaves alone a success, Later, a message already
// settled (dead-lettered), and any failure once ctx has ended: stopping is
// not a failure, and Settle naks it with its short default delay.
func Retry(p RetryPolicy) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) error {
			err := next(ctx, m)
			if err == nil || ctx.Err() != nil || isLater(err) || settled(m) {
				return err
			}
			delay := p.Backoff(m.Attempt())
			if p.OnRetry != nil {
				p.OnRetry(ctx, m, err, delay)
			}
			return &retryAfter{err: err, delay: delay}
		}
	}
}

// DeadLetter hands a failed message to sink, then acks it, when its error
// is permanent or it has had maxAttempts attempts (0: no limit, permanent
// errors only). The returned error then wraps ErrDeadLettered. If sink
// fails the message is not settled here: it is nak'ed like any failure and
// comes back, so nothing is dropped silently. Later and failures after ctx
// ended (stopping) are never dead-lettered.
func DeadLetter(maxAttempts int, sink func(ctx context.Context, m Message, cause error, attempts int) error) Middleware {
	if sink == nil {
		panic("pipeline: DeadLetter needs a sink")
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m Message) error {
			err := next(ctx, m)
			if err == nil || ctx.Err() != nil || isLater(err) || settled(m) {
				return err
			}
			attempt := m.Attempt()
			if !IsPermanent(err) && (maxAttempts <= 0 || attempt < maxAttempts) {
				return err
			}
			if serr := sink(ctx, m, err, attempt); serr != nil {
				return errors.Join(err, fmt.Errorf("pipeline: dead letter not stored: %w", serr))
			}
			// If this ack is lost the message comes back after the ack wait
			// and is dead-lettered again; the sink deduplicates.
			_ = m.Ack()
			return fmt.Errorf("%w after %d attempts: %w", ErrDeadLettered, attempt, err)
		}
	}
}
