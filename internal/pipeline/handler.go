package pipeline

import (
	"context"
	"errors"
	"time"
)

// Message is one delivery of a stored message, as a handler sees it. The
// store layer implements it over a JetStream message; this package never
// sees the transport.
type Message interface {
	// Data is the message body.
	Data() []byte
	// Header returns the first value of a header, matched as net/http
	// matches keys (case-insensitively); "" if absent.
	Header(key string) string
	// Attempt is the delivery count: 1 on the first delivery.
	Attempt() int
	// Ack settles the message as done: it is not delivered again.
	Ack() error
	// Nak settles the message as not done: it is delivered again after
	// delay (at once when delay <= 0).
	Nak(delay time.Duration) error
	// InProgress tells the store the message is still being worked on,
	// which restarts its ack wait.
	InProgress() error
	// Term settles the message as never to be delivered again, unhandled.
	Term() error
}

// Underlying returns the message of type T that m is or wraps (through
// Unwrap() Message methods, as Settle's tracking wraps every message), so a
// handler can read what its store's message type carries beyond Message (a
// stream sequence, raw headers). Settle m itself, never what this returns:
// only m's settlement is tracked.
func Underlying[T Message](m Message) (T, bool) {
	for m != nil {
		if t, ok := m.(T); ok {
			return t, true
		}
		u, ok := m.(interface{ Unwrap() Message })
		if !ok {
			break
		}
		m = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Handler handles one message. It returns nil when the work is done; the
// error otherwise decides what happens to the message (see the package doc).
type Handler func(ctx context.Context, m Message) error

// Middleware wraps a Handler with a cross-cutting concern.
type Middleware func(Handler) Handler

// Chain wraps h in mw; the first listed is the outermost (it runs first on
// the way in and last on the way out).
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Errors a chain may return; match them with errors.Is.
var (
	// ErrPanic: the handler panicked (Recover); the error carries the
	// panic value and the stack.
	ErrPanic = errors.New("pipeline: handler panicked")
	// ErrTimeout: the handler ran out of the time Timeout gave it.
	ErrTimeout = errors.New("pipeline: handler timed out")
	// ErrDeadLettered: the message was handed to the dead-letter sink and
	// acked (DeadLetter).
	ErrDeadLettered = errors.New("pipeline: dead-lettered")
	// ErrStopped: the router is stopping or stopped and takes no more
	// messages; the caller naks the message.
	ErrStopped = errors.New("pipeline: router stopped")
)

// Permanent marks err as one no retry can fix: DeadLetter takes the message
// at once instead of after its attempts. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Later asks for the message again after delay, without counting a
// failure: a timer not yet due, events not yet applied. It is not retried
// with backoff, not dead-lettered, and not recorded as an error on spans.
func Later(delay time.Duration) error {
	return &retryAfter{delay: delay, later: true}
}

// retryAfter carries the delay Settle naks a failed message with: Later's,
// or the backoff Retry chose (then err is the failure).
type retryAfter struct {
	err   error
	delay time.Duration
	later bool
}

func (e *retryAfter) Error() string {
	if e.later {
		return "pipeline: later (not yet due)"
	}
	return e.err.Error()
}

func (e *retryAfter) Unwrap() error { return e.err }

// isLater reports whether err asks for the message later, as no failure.
func isLater(err error) bool {
	var r *retryAfter
	return errors.As(err, &r) && r.later
}

// nakDelay is the delay err asks for, or def.
func nakDelay(err error, def time.Duration) time.Duration {
	var r *retryAfter
	if errors.As(err, &r) {
		return r.delay
	}
	return def
}
