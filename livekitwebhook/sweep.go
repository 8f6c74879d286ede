package livekitwebhook

import (
	"context"
	"errors"
	"time"
)

// sweep closes sessions that never got room_finished: every interval it
// schedules an expire task for records older than MaxSessionAge.
func (p *processor) sweep(ctx context.Context) {
	every(ctx, min(max(p.d.maxAge/8, time.Second), time.Minute), func() {
		if err := p.sweepOnce(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Debug("sweep", "error", err.Error())
		}
	})
}

// every runs f each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

func (p *processor) sweepOnce(ctx context.Context) error {
	deadline := time.Now().Add(-p.d.maxAge).UnixMilli()
	return p.rooms.EachOpen(ctx, func(rec *roomRecord) error {
		if rec.Reported || rec.State.Finished() || rec.FirstSeenMs > deadline {
			return nil
		}
		return p.scheduleTask(ctx, rec, task{Kind: taskExpire})
	})
}
