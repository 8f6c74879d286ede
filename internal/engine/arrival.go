package engine

import "context"

// Arrival is an event on its way to Accept: its body is read and it is being
// verified. Announcing it lets the committer, under concurrent load, wait
// for it (no timer: it is a few microseconds of CPU away) and write one
// fuller envelope instead of several small ones. One durable write costs
// about the same whatever it holds, so fuller envelopes are what makes
// intake keep up with a bare handler.
//
// An Arrival belongs to one goroutine. Use it once: Accept, or Withdraw when
// the event will not be accepted after all (refused); Withdraw after Accept
// does nothing, so `defer a.Withdraw()` is the usual pattern.
type Arrival struct {
	e       *Engine
	settled bool
}

// Expect announces an event about to be accepted. Nil-safe: a nil engine
// returns a nil Arrival, whose methods do nothing (Accept fails).
func (e *Engine) Expect() *Arrival {
	if e == nil {
		return nil
	}
	e.expected.Add(1)
	return &Arrival{e: e}
}

// Expected is how many announced events are not yet queued (diagnostics
// and tests: a refused request must not leave one behind).
func (e *Engine) Expected() int64 { return e.expected.Load() }

// Accept is Engine.Accept for an announced event.
func (a *Arrival) Accept(ctx context.Context, ev Accepted) (duplicate bool, err error) {
	if a == nil {
		return false, ErrUnavailable
	}
	return a.e.accept(ctx, ev, a)
}

// Withdraw says the event will not reach Accept. Idempotent.
func (a *Arrival) Withdraw() { a.settle() }

// settle stops counting the event as expected (it is queued, or will never
// be). When none is left, a committer waiting for arrivals re-checks at once.
func (a *Arrival) settle() {
	if a == nil || a.settled {
		return
	}
	a.settled = true
	if a.e.expected.Add(-1) == 0 {
		a.e.nudgeCommitter()
	}
}

// nudgeCommitter wakes the committer filling an envelope (one fills at a
// time), so that it re-checks what it still waits for. A stale nudge only
// makes the next one re-check.
func (e *Engine) nudgeCommitter() {
	select {
	case e.nudge <- struct{}{}:
	default:
	}
}
