package livekitwebhook

import (
	"context"
	"sync/atomic"
	"time"
)

// intakeActivity lets background work wait for intake to be quiet: no
// request being answered and none for quietGap. "None in flight" alone is no
// quiet moment: under load a request spends most of its time outside the
// handler (in the sender, on the wire), so the count touches zero between
// requests and background work woken by it took CPU from intake.
type intakeActivity struct {
	inflight atomic.Int64
	last     atomic.Int64 // when the last request ended (Unix ns)
}

// quietGap is how long intake must have been idle to count as quiet.
const quietGap = 5 * time.Millisecond

func (a *intakeActivity) enter() { a.inflight.Add(1) }

func (a *intakeActivity) leave() {
	a.last.Store(time.Now().UnixNano())
	a.inflight.Add(-1)
}

// waitQuiet returns once intake is quiet, after bound, or when ctx ends,
// whichever is first. It sleeps rather than polls: at most one wake-up per
// quietGap.
func (a *intakeActivity) waitQuiet(ctx context.Context, bound time.Duration) {
	deadline := time.Now().Add(bound)
	var t *time.Timer
	for {
		now := time.Now()
		wait := quietGap
		if a.inflight.Load() == 0 {
			wait -= now.Sub(time.Unix(0, a.last.Load()))
		}
		if wait <= 0 || !now.Before(deadline) {
			return
		}
		wait = min(wait, deadline.Sub(now))
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
