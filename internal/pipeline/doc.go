// Package pipeline is how stored messages are processed: one Handler type,
// Middleware for what every kind of processing needs (tracing, recovery
// from panics, timeouts, heartbeats, retry with backoff, dead-lettering),
// and a Router that owns its workers and keeps each key's messages in
// order. Event application, finalization and hook calls are handlers
// built from the same pieces instead of each writing them inline.
//
// It knows no transport: a Message is implemented by the store layer (over
// a JetStream message), and nothing here imports nats.go.
//
// # Usage
//
//	process := pipeline.Chain(apply,
//		pipeline.Trace(tracer, "livekitwebhook.process", propagator),
//		pipeline.Retry(pipeline.RetryPolicy{OnRetry: countRetry}),
//		pipeline.DeadLetter(cfg.MaxAttempts, store.DeadLetter),
//		pipeline.Recover(),
//		pipeline.Timeout(time.Minute),
//		pipeline.InProgress(3*time.Second),
//	)
//	r := pipeline.NewRouter(process, pipeline.WithWorkers(n), pipeline.WithYield(waitQuiet))
//	// in the consumer's callback:
//	if err := r.Dispatch(ctx, roomKey, m); err != nil {
//		_ = m.Nak(time.Second) // stopping: it comes back later
//	}
//	// on shutdown, after the consumer stopped delivering:
//	err := r.Stop(ctxWithDeadline)
//
// A hook call is the same kind of chain without a propagator (its span is
// a child of the processing span in ctx) and without settling:
//
//	call := pipeline.Chain(hook, pipeline.Trace(tracer, "livekitwebhook.hook", nil,
//		trace.WithSpanKind(trace.SpanKindInternal)), pipeline.Recover(), pipeline.Timeout(time.Minute))
//
// # Settling: who acks and who naks
//
// Every delivery is settled once. Settle (which the Router puts outermost)
// wraps each message so that the first Ack, Nak or Term goes through and
// later ones do nothing; it then settles whatever the chain left:
//
//   - nil: Settle acks. This is the only place a success is acked.
//   - a failure: Settle naks, with the delay the error carries (Retry's
//     backoff, Later's delay) or else the router's short default. Retry
//     only chooses that delay; it never settles.
//   - DeadLetter, for a permanent failure or the last attempt, hands the
//     message to its sink and acks it itself (an ack of a failure); if the
//     sink fails it leaves the message to be nak'ed like any failure.
//   - A handler may settle its message itself (Term a message that must
//     never come back); nothing outside settles it again.
//
// A handler that needs more than Message offers (the store's stream
// sequence) gets the store's message with Underlying, to read; it settles
// through the Message it was given.
//
// Stopping is not a failure: once the handlers' context is canceled
// (Router.Stop's deadline passed), Retry and DeadLetter leave a failure
// alone, so it is neither counted, backed off nor dead-lettered, and
// Settle naks it with the short default delay: it is redelivered, to this
// replica after a restart or to another one.
//
// Later(delay) is no failure either: a timer not yet due or events not yet
// applied. Settle naks it with its delay; Retry, DeadLetter and Trace
// ignore it. Note that the store's delivery count still counts those
// redeliveries (Message.Attempt), so a chain that returns Later often
// should not dead-letter by attempts.
//
// # Order
//
// Middleware listed first in Chain is outermost. Trace goes first so its
// span covers the rest and the dead-letter sink; Retry outside DeadLetter
// so that a dead-lettered failure is not counted as retried; Recover
// inside both so a panic is a failure like any other; Timeout and
// InProgress innermost, next to the work they bound and keep alive.
//
// # Router
//
// NewRouter starts a fixed number of workers; Dispatch routes a message to
// the worker its key hashes to, so messages of one key are handled one at
// a time in dispatch order (Worker(ctx) tells a handler which worker it
// runs on, for state kept per worker). Stop stops taking messages (Dispatch answers
// ErrStopped, and the caller naks), lets the workers finish what they were
// given until its context ends, then cancels the handlers' context. It
// never closes a channel a Dispatch may be sending on. Closed tells when
// every worker has ended.
package pipeline
