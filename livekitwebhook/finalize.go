package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// dueTasks keeps out of the chain a timer that is not due yet (Later
// brings it back when it is, with no report span and no failure) and one
// that cannot be read (terminated: no retry makes it readable).
func dueTasks(next pipeline.Handler) pipeline.Handler {
	return func(ctx context.Context, m pipeline.Message) error {
		var t task
		if err := json.Unmarshal(m.Data(), &t); err != nil {
			_ = m.Term()
			return nil
		}
		if wait := time.Until(time.UnixMilli(t.DueMs)); wait > 0 {
			return pipeline.Later(wait)
		}
		return next(ctx, m)
	}
}

// handleTask runs a due timer: fixes the report with one compare-and-set,
// then delivers it (idempotently) until every step succeeded. The chain
// around it (see chains) traces, retries, dead-letters and settles it.
func (p *processor) handleTask(ctx context.Context, m pipeline.Message) error {
	var t task
	if err := json.Unmarshal(m.Data(), &t); err != nil {
		return pipeline.Permanent(err) // dueTasks terminated it already
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String(attrRoomSID, t.SID),
		attribute.String("livekitwebhook.task", t.Kind))
	// Shared with event handling: a suspect event handled alone is not
	// blamed for a loss a report caused.
	p.lane.RLock()
	err := p.finalize(ctx, t, newRecordCache(1))
	p.lane.RUnlock()
	var wait egressWaitError
	var hookErr reportHookError
	switch {
	case errors.Is(err, errEventsPending):
		return pipeline.Later(time.Second)
	case errors.As(err, &wait):
		return pipeline.Later(wait.d)
	case errors.Is(err, ErrUnknownHook):
		// No retry makes a hook appear in this process.
		return pipeline.Permanent(err)
	case errors.As(err, &hookErr) && hookErr.failures >= p.cfg.MaxAttempts:
		// The report is stored and published; what is owed is the call
		// of a hook that keeps failing: dead-letter it (Replay calls it
		// again) rather than retry a user's outage forever.
		return pipeline.Permanent(err)
	}
	return err
}

// reportHookError is an OnSessionEnded hook's failure: retried like any
// failure of the report, dead-lettered after Config.MaxAttempts failed
// calls in a row (counted in the room's record, so waits for events or
// egresses do not count; failures of the store are retried until they
// pass).
type reportHookError struct {
	err      error
	failures int
}

func (e reportHookError) Error() string { return e.err.Error() }
func (e reportHookError) Unwrap() error { return e.err }

// reportRetried accounts for a report's failure that will be retried.
func (p *processor) reportRetried(ctx context.Context, m pipeline.Message, err error, _ time.Duration) {
	var t task
	_ = json.Unmarshal(m.Data(), &t)
	p.tel.retries.Add(ctx, 1, label("event", eventSessionReport))
	p.hooks.onError(ctx, nil, err)
	p.log.Warn("session report failed, will retry", "room_sid", t.SID, "attempt", m.Attempt(), "error", err.Error())
}

// deadLetterReport is the tasks chain's dead-letter sink.
func (p *processor) deadLetterReport(ctx context.Context, m pipeline.Message, cause error, attempts int) error {
	var t task
	_ = json.Unmarshal(m.Data(), &t)
	return p.deadLetter(ctx, m, eventSessionReport, nil, t.SID, cause, attempts)
}

// finalize makes and delivers t's report. cache carries the room record from
// one step to the next, saving a read before each compare-and-set.
func (p *processor) finalize(ctx context.Context, t task, cache *recordCache) (err error) {
	span := trace.SpanFromContext(ctx) // the report span (see chains)
	// The task's own key is not used: one written before keys were bounded
	// may hold a legacy key of any length (see engine.Lookup).
	// Tasks of rooms stored before projects have none: the unprefixed view.
	if t.Key, err = p.rooms.Project(t.Project).Key(ctx, t.SID); err != nil {
		return err
	}
	due, err := p.reportDue(ctx, t, cache)
	if err != nil {
		return err
	}
	if time.Since(due) < maxFinalizeWait {
		if err := p.allApplied(ctx, t, due, cache); err != nil {
			return err
		}
	}
	var won bool
	var closedActive int   // participants an expiry closes (room_finished already did otherwise)
	var wait time.Duration // left to wait for the room's egresses
	rec, err := p.rooms.Update(ctx, t.Key, cache, func(cur *roomRecord) (*roomRecord, error) {
		won, closedActive, wait = false, 0, 0
		if cur == nil || cur.Reported {
			return nil, nil
		}
		next := *cur
		if t.Kind != taskExpire {
			if wait = egressWaitLeft(cur); wait > 0 {
				return nil, nil
			}
		}
		if t.Kind == taskExpire {
			if cur.State.Finished() {
				return nil, nil // a finalize task owns it
			}
			end := cur.State.LastEventTime()
			if end.IsZero() {
				end = time.UnixMilli(cur.FirstSeenMs)
			}
			reason := t.Reason
			if reason == "" {
				reason = fmt.Sprintf("no room_finished within %s", p.d.maxAge)
			}
			next.State = lifecycle.Expire(cur.State, end, reason)
			closedActive = cur.State.ActiveParticipants()
		}
		report := next.State.Report()
		next.Reported, next.Report = true, &report
		next.EndedPending = p.hooks.endedNames()
		won = true
		return &next, nil
	})
	if err == nil && wait > 0 {
		return egressWaitError{wait}
	}
	if err != nil || rec == nil || !rec.Reported || rec.Delivered {
		return err
	}
	span.SetAttributes(attribute.String(attrRoomName, rec.Report.RoomName))
	span.SetAttributes(sessionAttrs(rec.Report.SessionID)...)
	linkRoomTrace(span, rec.TraceParent)
	if won {
		p.recordReportMetrics(ctx, rec.Report, closedActive)
		if t.Reason == reconcileReason && rec.Report.Disposition == DispositionExpired {
			p.tel.reconcileClosed.Add(ctx, 1)
		}
	}
	return p.deliver(ctx, t.Key, rec, cache)
}

// maxFinalizeWait bounds how long a report waits for stored events of its
// room that are not applied yet (held by a crashed replica until their ack
// wait runs out, or failing); past it the report is made and they count as
// late.
const maxFinalizeWait = 2 * time.Minute

// errEventsPending: the room has stored events not applied yet.
var errEventsPending = errors.New("stored events of the room are not applied yet")

// allApplied checks that the state has applied every stored event of the
// room (after the journal has handed on every event accepted before the
// report was due). The grace period covers events still in flight from
// LiveKit; this covers events already stored but not yet processed.
//
// Only events past the processor's ack floor can be unprocessed, so only
// those are read, one by one (next by subject): the check stays short however
// long the stream. Through an ephemeral consumer per report, as before, a
// burst of reports hit the server's limit of 1,000 consumers per stream (each
// outlived its check by 5 min) and waited maxFinalizeWait. An event at or
// below the floor that was dead-lettered does not hold the report.
func (p *processor) allApplied(ctx context.Context, t task, due time.Time, cache *recordCache) error {
	floor, err := p.floorFor(ctx, due)
	if err != nil {
		return err
	}
	rec, rev, err := p.rooms.Get(ctx, t.Key) // read after the floor
	if err != nil || rec == nil || rec.Reported {
		return err
	}
	cache.Put(t.Key, rec, rev)
	pending := false
	err = p.eng.Events.EachOfRoomSince(ctx, rec.State.RoomName, t.SID, floor, func(id string) bool {
		pending = !rec.State.Applied(id)
		return !pending
	})
	if err == nil && pending {
		err = errEventsPending
	}
	return err
}

// floorFor returns the processor's ack floor once every event accepted before
// due is in the events stream, errEventsPending before that. The journal is
// read before the floor: an event it had handed on is then either at or
// below the floor (acked) or past it (read by the check).
func (p *processor) floorFor(ctx context.Context, due time.Time) (uint64, error) {
	h := &p.handed
	h.mu.Lock()
	defer h.mu.Unlock()
	if due.After(h.clear) || time.Since(h.readAt) > handedOnMaxAge {
		now := time.Now()
		clear, err := p.eng.JournalClearBefore(ctx)
		if err != nil {
			return 0, err
		}
		floor, err := p.eng.Events.AckFloor(ctx)
		if err != nil {
			return 0, err
		}
		h.clear, h.floor, h.readAt = clear, floor, now
	}
	if due.After(h.clear) {
		return 0, errEventsPending
	}
	return h.floor, nil
}

// deliver stores, publishes and hands out a fixed report. Every step is
// idempotent, so a retry after a partial failure repeats none of the effects
// downstream consumers could see twice.
func (p *processor) deliver(ctx context.Context, key string, rec *roomRecord, cache *recordCache) error {
	r := rec.Report
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := p.eng.Reports.Store(ctx, r.Project, r.RoomSID, r.SessionID, b); err != nil {
		return err
	}
	rep := reportOf(*r)
	if err := p.beluga.finish(ctx, rep); err != nil {
		return fmt.Errorf("beluga session: %w", err)
	}
	// failed: a hook returned an error (retried); unknown: a name no hook
	// has (dead-lettered, but only once nothing is left to retry).
	var failed, unknown error
	var done, okHooks hookNames
	for _, name := range rec.EndedPending {
		h, err := p.hooks.endedHook(name)
		if err != nil {
			unknown = cmp.Or(unknown, err)
			continue
		}
		p.warnIfLegacy(name, h.name)
		err = p.callEnded(ctx, h, rep)
		if err != nil {
			p.trailHook(r.RoomSID, r.RoomSID, eventSessionReport, h.name, err)
			failed = cmp.Or(failed, fmt.Errorf("hook %s: %w", h.name, err))
			continue
		}
		done = append(done, name)
		okHooks = append(okHooks, h.name)
	}
	after, err := p.rooms.Update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
		if cur == nil || cur.Delivered {
			return nil, nil
		}
		next := *cur
		next.EndedPending = cur.EndedPending.Without(done)
		next.HookOKMs = withHookOK(cur.HookOKMs, eventSessionReport, okHooks)
		next.Delivered = failed == nil && len(next.EndedPending) == 0
		next.EndedFailures = 0
		if failed != nil {
			next.EndedFailures = cur.EndedFailures + 1
		}
		// Amended by a late event since rec was read: the stored copy
		// may be the older one just written.
		next.ReportStale = cur.ReportStale || !sameReport(cur.Report, b)
		return &next, nil
	})
	if err == nil {
		err = p.storeAmended(ctx, key, after, cache)
	}
	if failed != nil && after != nil {
		failed = reportHookError{failed, after.EndedFailures}
	}
	return cmp.Or(failed, err, unknown)
}

func (p *processor) callEnded(ctx context.Context, h endedHook, r Report) error {
	return p.invokeHook(ctx, h.name, r.SessionID, func(ctx context.Context) error { return h.fn(ctx, r) },
		attribute.String(attrRoomSID, r.RoomSID))
}

func (p *processor) recordReportMetrics(ctx context.Context, r *lifecycle.Session, closedActive int) {
	tel := p.tel
	tel.activeSess.Add(ctx, -1)
	tel.reports.Add(ctx, 1, attrs(append(p.projectAttr(r.Project), attribute.String("disposition", r.Disposition))...))
	p.recordReportContent(ctx, r)
	tel.sessDuration.Record(ctx, r.DurationSeconds, label("disposition", r.Disposition))
	for kind, secs := range r.ParticipantSecondsByKind {
		tel.partSeconds.Add(ctx, secs, label("kind", kind))
	}
	if closedActive > 0 {
		tel.activePart.Add(ctx, -int64(closedActive))
	}
	p.log.Info("session ended", "session_id", r.SessionID, "room_sid", r.RoomSID, "room_name", r.RoomName,
		"disposition", r.Disposition, "duration_seconds", r.DurationSeconds, "participant_seconds", r.ParticipantSeconds)
}
