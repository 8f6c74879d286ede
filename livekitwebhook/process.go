package livekitwebhook

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// handleEvent applies one stored event. The chain around it (see chains)
// traces, retries, dead-letters and settles it.
func (p *processor) handleEvent(ctx context.Context, m pipeline.Message) error {
	start := time.Now()
	span := trace.SpanFromContext(ctx)
	attempt, key := m.Attempt(), ""
	if msg, ok := pipeline.Underlying[*engine.Msg](m); ok && msg.Seq() != 0 {
		key = "event/" + strconv.FormatUint(msg.Seq(), 10)
	}
	span.SetAttributes(attribute.Int(attrAttempt, attempt))
	id := m.Header(engine.HeaderEventID)
	// An event whose last handling was cut short by the loss of the
	// connection is applied alone, so that a loss is its own doing. Once its
	// attempts are used up and its last one, alone, lost the connection too,
	// applying it is what closes the connection: dead-letter it unapplied.
	inter := p.interrupted
	part, suspect := inter.Of(key)
	if suspect && part == handledAlone && attempt > p.cfg.MaxAttempts {
		cause := fmt.Errorf("%w (%d deliveries)", engine.ErrConnectionLost, attempt-1)
		if err := p.deadLetter(ctx, m, m.Header(engine.HeaderEvent), decodeOrNil(m.Data()), id, cause, attempt-1); err != nil {
			return err
		}
		_ = m.Ack()
		inter.End(p.eng, key)
		return nil
	}
	lane := handledShared
	if suspect {
		lane = handledAlone
		p.lane.Lock()
		defer p.lane.Unlock()
	} else {
		p.lane.RLock()
		defer p.lane.RUnlock()
	}
	if !inter.Begin(p.eng, key, lane) {
		// The connection is gone: no failure of this event's, redelivered
		// on the next connection.
		return pipeline.Later(pipeline.DefaultNakDelay)
	}
	defer inter.End(p.eng, key)
	ev := &livekit.WebhookEvent{}
	if err := decodeOpts.Unmarshal(m.Data(), ev); err != nil {
		// Verified at intake, so this is a bug or a tampered store: keep it.
		return pipeline.Permanent(fmt.Errorf("decode stored event: %w", err))
	}
	if id == "" {
		id = ev.Id
	}
	if span.IsRecording() {
		span.SetAttributes(eventAttrs(ev)...)
	}
	err := p.apply(ctx, ev, id, m.Header(engine.HeaderAPIKey), span, p.cacheFor(ctx))
	p.tel.procLatency.Record(ctx, time.Since(start).Seconds(), label("event", eventLabel(ev.Event)))
	return err
}

// eventRetried accounts for an event's failure that will be retried.
func (p *processor) eventRetried(ctx context.Context, m pipeline.Message, err error, _ time.Duration) {
	ev := decodeOrNil(m.Data())
	name, id := m.Header(engine.HeaderEvent), m.Header(engine.HeaderEventID)
	if ev != nil {
		name, id = ev.Event, cmp.Or(id, ev.Id)
	}
	p.hooks.onError(ctx, ev, err)
	p.tel.retries.Add(ctx, 1, label("event", eventLabel(name)))
	p.log.Warn("event failed, will retry", withTrace(ctx, []any{
		"event", name, "event_id", id, "attempt", m.Attempt(), "error", err.Error()})...)
}

// deadLetterEvent is the events chain's dead-letter sink.
func (p *processor) deadLetterEvent(ctx context.Context, m pipeline.Message, cause error, attempts int) error {
	ev := decodeOrNil(m.Data())
	id := m.Header(engine.HeaderEventID)
	if id == "" && ev != nil {
		id = ev.Id
	}
	return p.deadLetter(ctx, m, m.Header(engine.HeaderEvent), ev, id, cause, attempts)
}

// How an event's handling is recorded in Receiver.interrupted.
const (
	handledShared = -1 // alongside other events
	handledAlone  = 0  // alone: a loss meanwhile is its own doing
)

// roomKey resolves the rooms-bucket key of an event in its project: its
// room sid, else the current sid of its room name, else a key of its own.
func (p *processor) roomKey(ctx context.Context, ev *livekit.WebhookEvent, id, project string, cache *recordCache) (key, sid string, err error) {
	rooms := p.rooms.Project(project)
	if sid = lifecycle.RoomSID(ev); sid != "" {
		key, err = rooms.KeyCached(ctx, sid, cache)
		return key, sid, err
	}
	name := lifecycle.RoomName(ev)
	if name == "" {
		key, err = p.rooms.RoomlessKey(ctx, id)
		return key, "", err
	}
	sid, ok, err := p.eng.Names.Project(project).RoomSID(ctx, name)
	if err != nil {
		return "", "", err
	}
	if !ok {
		sid = "name:" + name
	}
	key, err = rooms.KeyCached(ctx, sid, cache)
	return key, sid, err
}

// apply folds ev into its room record (once per event id), then runs the
// hooks that have not yet succeeded for it.
func (p *processor) apply(ctx context.Context, ev *livekit.WebhookEvent, id, apiKey string, span trace.Span, cache *recordCache) error {
	project := p.projects.of(apiKey)
	key, sid, err := p.roomKey(ctx, ev, id, project, cache)
	if err != nil {
		return err
	}
	if sid == "" {
		return p.applyRoomless(ctx, ev, id, key)
	}
	var fresh, late, justApplied, remapped bool
	var activeBefore int
	var lateBefore []lifecycle.Recording // the report's recordings before a late event
	rec, err := p.rooms.Update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
		fresh, late, justApplied, remapped = false, false, false, false
		if cur != nil && cur.Reported {
			if late = !cur.State.Applied(id); late {
				lateBefore = reportRecordings(cur)
				return p.applyLate(cur, ev, id), nil
			}
			return nil, nil
		}
		if cur != nil && cur.State.Applied(id) {
			return nil, nil
		}
		next := &roomRecord{}
		if cur == nil {
			fresh = true
			next.State = lifecycle.NewState(sid, lifecycle.RoomName(ev))
			next.FirstSeenMs = time.Now().UnixMilli()
		} else {
			*next = *cur
			next.Pending = clonePending(cur.Pending)
		}
		if next.State.APIKey == "" && apiKey != "" {
			// New, or stored before projects: the room's project from now.
			next.State.APIKey, next.State.Project = apiKey, project
		}
		if next.TraceParent == "" {
			// The room's trace: that of the first event stored for it
			// (room_started, unless events came out of order).
			next.TraceParent = traceParent(ctx)
		}
		if err := p.beluga.correlate(ctx, &next.State, ev); err != nil {
			return nil, err
		}
		// Metadata set after the room started can map a room that was
		// unmapped: the session id changes and the index must follow.
		remapped = cur != nil && cur.State.SessionID != next.State.SessionID
		// Index before the state is written: a crash in between leaves an
		// index to a room not stored yet (found once the retry stores it),
		// never a stored room without its index.
		if (fresh || remapped) && next.State.RoomName != "" && sid == lifecycle.RoomSID(ev) {
			if err := p.index(ctx, project, &next.State); err != nil {
				return nil, err
			}
		}
		activeBefore = next.State.ActiveParticipants()
		next.State, justApplied = lifecycle.Apply(next.State, ev)
		if justApplied && id != "" {
			next.AppliedMs = stampedNow(next.AppliedMs, id)
		}
		if hooks := p.hooks.forEvent(ev.Event); justApplied && len(hooks) > 0 {
			if next.Pending == nil {
				next.Pending = map[string]hookNames{}
			}
			next.Pending[id] = eventNames(hooks)
		}
		if next.State.Finished() && next.FinalizeDueMs == 0 {
			now := time.Now()
			next.FinalizeDueMs = now.Add(p.d.grace).UnixMilli()
			next.EgressDueMs = now.Add(p.d.egressWait).UnixMilli()
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	if late {
		p.trail(sid, trailOf(engine.TrailLate, id, ev.Event, ""))
		p.tel.lateEvents.Add(ctx, 1, label("event", eventLabel(ev.Event)))
		p.countEndedRecordings(ctx, rec.State.Project, lateBefore, reportRecordings(rec))
		p.log.Info("event after the session was reported", withTrace(ctx, []any{"event", ev.Event, "event_id", id, "room_sid", sid})...)
	}
	if rec == nil {
		return nil
	}
	if rec.Reported {
		// Applied late (amending the stored report), or before the report
		// was fixed; its hooks may still be pending (a retry or a replay):
		// they keep their guarantees.
		if err := p.storeAmended(ctx, key, rec, cache); err != nil {
			return err
		}
		return p.runHooks(ctx, key, id, ev, rec, cache)
	}
	span.SetAttributes(sessionAttrs(rec.State.SessionID)...)
	linkRoomTrace(span, rec.TraceParent)
	if rec.State.BelugaSessionID != "" {
		span.SetAttributes(attribute.String(attrBeluga, rec.State.BelugaSessionID))
	}
	if !justApplied {
		p.trail(sid, trailOf(engine.TrailDuplicate, id, ev.Event, "process"))
		p.tel.duplicates.Add(ctx, 1, label("stage", "process"))
	} else {
		p.afterApply(ctx, ev, rec, fresh, activeBefore)
	}
	if rec.FinalizeDueMs != 0 {
		if err := p.scheduleFinalize(ctx, rec, taskFinalize, rec.FinalizeDueMs); err != nil {
			return err
		}
		if err := p.scheduleEgressWake(ctx, ev, rec); err != nil {
			return err
		}
	}
	if ev.Event == "room_finished" && rec.State.Finished() && rec.State.RoomName != "" {
		// Durable, and before the ack: a redelivery after a crash writes
		// it again (see WatchRoomFinished).
		if err := p.eng.Names.Project(project).MarkFinished(ctx, rec.State.RoomName, sid); err != nil {
			return err
		}
	}
	return p.runHooks(ctx, key, id, ev, rec, cache)
}

// afterApply updates the gauges that follow sessions and participants.
func (p *processor) afterApply(ctx context.Context, ev *livekit.WebhookEvent, rec *roomRecord, fresh bool, activeBefore int) {
	if fresh {
		p.tel.activeSess.Add(ctx, 1)
	}
	if d := rec.State.ActiveParticipants() - activeBefore; d != 0 {
		p.tel.activePart.Add(ctx, int64(d))
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("event applied", withTrace(ctx, []any{"event", ev.Event, "event_id", ev.Id,
			"room_sid", rec.State.RoomSID, "session_id", rec.State.SessionID})...)
	}
}

// index records room name -> sid and session id -> sid for lookups, in
// the project's names.
func (p *processor) index(ctx context.Context, project string, s *lifecycle.State) error {
	return p.eng.Names.Project(project).Index(ctx, s.RoomName, s.SessionID, s.RoomSID)
}

// applyRoomless handles events that name no room (an agent job without
// job.room, some future events): hooks only, with their own record for
// once-only calls. Agent job events that name their room in job.room fold
// into that room like any room event (see lifecycle.RoomSID).
func (p *processor) applyRoomless(ctx context.Context, ev *livekit.WebhookEvent, id, key string) error {
	hooks := p.hooks.forEvent(ev.Event)
	if len(hooks) == 0 {
		return nil
	}
	rec, err := p.rooms.Update(ctx, key, nil, func(cur *roomRecord) (*roomRecord, error) {
		if cur != nil {
			return nil, nil
		}
		return &roomRecord{FirstSeenMs: time.Now().UnixMilli(), Reported: false,
			Pending: map[string]hookNames{id: eventNames(hooks)}}, nil
	})
	if err != nil {
		return err
	}
	return p.runHooks(ctx, key, id, ev, rec, nil)
}
