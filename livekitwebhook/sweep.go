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

func (p *processor) sweepOnce(ctx context.Context) error {
	deadline := time.Now().Add(-p.d.maxAge).UnixMilli()
	return p.rooms.EachOpen(ctx, func(rec *roomRecord) error {
		if rec.Reported || rec.State.Finished() || rec.FirstSeenMs > deadline {
			return nil
		}
		return p.scheduleTask(ctx, rec, task{Kind: taskExpire})
	})
}
