package livekitwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// egressWaitError asks for the report task again after d: egresses of the
// room are still running and the egress wait has not run out.
type egressWaitError struct{ d time.Duration }

func (e egressWaitError) Error() string {
	return "waiting for the room's egresses to end (" + e.d.String() + " left)"
}

// egressWaitLeft is how long the report of a finished room may still wait
// for its egresses: 0 when none is running or the wait ran out.
func egressWaitLeft(rec *roomRecord) time.Duration {
	if !rec.State.Finished() || rec.EgressDueMs == 0 || rec.State.EgressPending() == 0 {
		return 0
	}
	return max(time.Until(time.UnixMilli(rec.EgressDueMs)), 0)
}

// scheduleEgressWake schedules the report of a finished room whose last
// running egress has just ended: due after the grace period, once per
// number of egresses the room has (an egress seen later can end later).
func (p *processor) scheduleEgressWake(ctx context.Context, ev *livekit.WebhookEvent, rec *roomRecord) error {
	if !lifecycle.IsEgressEvent(ev.Event) || rec.Reported || !rec.State.Finished() || rec.FinalizeDueMs == 0 ||
		rec.EgressDueMs == 0 || len(rec.State.Egress) == 0 || rec.State.EgressPending() > 0 {
		return nil
	}
	due := max(rec.FinalizeDueMs, time.Now().UnixMilli())
	return p.scheduleTask(ctx, rec, task{Kind: taskEgress, DueMs: due, Tag: strconv.Itoa(len(rec.State.Egress))})
}

// reportDue is when t's report was due: t.DueMs, or, for a report that
// waited for egresses until the egress wait ran out, that deadline. The
// report waits for the room's stored events accepted before it (see
// allApplied). A report that must still wait for egresses is an
// egressWaitError.
func (p *processor) reportDue(ctx context.Context, t task, cache *recordCache) (time.Time, error) {
	due := time.UnixMilli(t.DueMs)
	if t.Kind == taskExpire {
		return due, nil
	}
	rec, rev, err := p.rooms.Get(ctx, t.Key)
	if err != nil || rec == nil || rec.Reported {
		return due, err
	}
	cache.Put(t.Key, rec, rev)
	if w := egressWaitLeft(rec); w > 0 {
		return due, egressWaitError{w}
	}
	if rec.State.EgressPending() > 0 && rec.EgressDueMs > t.DueMs {
		due = time.UnixMilli(rec.EgressDueMs)
	}
	return due, nil
}

// applyLate folds an event that arrived after its room's report was fixed
// (not applied before: cur.State has not seen its id). The state keeps it,
// so a redelivery is not counted twice; the stored report is amended (see
// lifecycle.Amend: recordings, egress_never_ended, events_after_report) and
// marked stale until stored. An egress event's hooks (OnEgressEnded, OnEvent)
// are owed a call as for any event; other late events run no hook.
func (p *processor) applyLate(cur *roomRecord, ev *livekit.WebhookEvent, id string) *roomRecord {
	next := *cur
	next.State, _ = lifecycle.Apply(cur.State, ev)
	if cur.Report != nil {
		amended := lifecycle.Amend(*cur.Report, next.State)
		next.Report, next.ReportStale = &amended, true
	}
	if hooks := p.hooks.forEvent(ev.Event); lifecycle.IsEgressEvent(ev.Event) && len(hooks) > 0 {
		next.Pending = clonePending(cur.Pending)
		if next.Pending == nil {
			next.Pending = map[string]hookNames{}
		}
		next.Pending[id] = eventNames(hooks)
	}
	return &next
}

// storeAmended writes an amended report into the stored reports (never on
// lkwh.reports.*, published once) until the stored copy is the record's
// latest: another replica may amend it meanwhile.
func (p *processor) storeAmended(ctx context.Context, key string, rec *roomRecord, cache *recordCache) error {
	for rec != nil && rec.ReportStale && rec.Report != nil {
		b, err := json.Marshal(rec.Report)
		if err != nil {
			return err
		}
		if err := p.eng.Reports.Put(ctx, rec.Report.Project, rec.Report.RoomSID, b); err != nil {
			return err
		}
		rec, err = p.rooms.Update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
			if cur == nil || !cur.ReportStale || !sameReport(cur.Report, b) {
				return nil, nil // done, or amended again: store that one
			}
			next := *cur
			next.ReportStale = false
			return &next, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func sameReport(r *lifecycle.Session, stored []byte) bool {
	if r == nil {
		return false
	}
	b, err := json.Marshal(r)
	return err == nil && bytes.Equal(b, stored)
}
