package livekitwebhook

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// sweep closes sessions that never got room_finished: every interval it
// schedules an expire task for records older than MaxSessionAge.
func (p *processor) sweep(ctx context.Context) {
	every(ctx, min(max(p.r.d.maxAge/8, time.Second), time.Minute), func() {
		if err := p.sweepOnce(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.r.log.Debug("sweep", "error", err.Error())
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
	lister, err := p.eng.Rooms.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	defer func() { _ = lister.Stop() }()
	deadline := time.Now().Add(-p.r.d.maxAge).UnixMilli()
	for key := range lister.Keys() {
		rec, _, err := p.rooms.get(ctx, key)
		if err != nil || rec == nil || rec.Reported || rec.State.RoomSID == "" || rec.State.Finished() {
			continue
		}
		if rec.FirstSeenMs <= deadline {
			if err := p.scheduleTask(ctx, rec, task{Kind: taskExpire}); err != nil {
				return err
			}
		}
	}
	return nil
}
