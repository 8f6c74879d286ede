package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// processor consumes accepted events and applies them. Each replica runs
// one; they share the durable consumer, and compare-and-set on the rooms
// bucket keeps them correct without a leader.
//
// Events and timers are handled by two pipeline.Routers: events keyed by
// room (one room's events in arrival order), timers keyed by room sid
// (reports of different rooms concurrently). The routers own their workers
// and stop them through a context, never by closing a channel a consumer
// may still be sending on.
type processor struct {
	processorDeps
	eng   *engine.Engine
	rooms *engine.Rooms

	runCtx context.Context // the distributor's, sweeper's and reconciler's; canceled last on stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // sweeper and reconciler
	// lane is held shared while an event, a journal envelope or a task is
	// handled, exclusively while an event or envelope whose last handling
	// lost the connection is.
	lane    sync.RWMutex
	handed  handedOn
	events  *pipeline.Router
	tasks   *pipeline.Router
	caches  []*recordCache   // one per event worker (pipeline.Worker)
	hook    pipeline.Handler // one user hook call (see callHook)
	beluga  belugaLink
	consume []engine.Consumption

	reconcile *reconciler // nil unless WithReconciler
}

// cacheSize is how many room records each worker keeps decoded.
const cacheSize = 2048

const (
	// ackWait is short so that events a crashed replica had pulled come back
	// quickly; long work keeps its messages with InProgress heartbeats.
	ackWait     = 10 * time.Second
	heartbeat   = 3 * time.Second
	hookTimeout = time.Minute
	// maxReportBackoff caps a report's retry delay: the tasks stream's
	// delivery count also counts "not due yet", and finalizing again is
	// idempotent and cheap.
	maxReportBackoff = 5 * time.Second
)

// processorDeps is what a processor uses besides its engine, handed down
// by the Receiver that starts it: the processor never reaches back into
// the Receiver.
type processorDeps struct {
	cfg   Config
	d     durations
	opts  options
	tel   *telemetry
	log   *slog.Logger
	hooks hookTable
	// correlator is how rooms map to backend sessions.
	correlator Correlator
	// interrupted outlives engine restarts (see Receiver.interrupted).
	interrupted *engine.Interrupted
	// quiet is intake's activity, which processing yields to.
	quiet *intakeActivity
}

func newProcessor(deps processorDeps, eng *engine.Engine) *processor {
	p := &processor{processorDeps: deps, eng: eng, rooms: eng.Rooms}
	p.beluga = belugaLink{correlator: deps.correlator, sessions: deps.opts.sessions, store: eng.Beluga,
		agentID: deps.cfg.BelugaAgentID, deleteSessions: deps.cfg.DeleteBelugaSessions}
	return p
}

// chains builds the handler chains: what each kind of processing does,
// wrapped in the same middleware. Trace goes first so that its span covers
// retries' accounting and the dead-letter sink.
func (p *processor) chains() (events, tasks pipeline.Handler) {
	tel := p.tel
	p.hook = pipeline.Chain(runHookCall,
		pipeline.Trace(tel.tracer, spanHook, nil, trace.WithSpanKind(trace.SpanKindInternal)),
		pipeline.Recover(),
		pipeline.Timeout(hookTimeout),
	)
	events = pipeline.Chain(p.handleEvent,
		pipeline.Trace(tel.tracer, spanProcess, tel.propagator),
		pipeline.Retry(pipeline.RetryPolicy{OnRetry: p.eventRetried}),
		pipeline.DeadLetter(p.cfg.MaxAttempts, p.deadLetterEvent),
		pipeline.Recover(),
		pipeline.InProgress(heartbeat), // hooks may be slow
	)
	tasks = pipeline.Chain(p.handleTask,
		dueTasks, // no report span for a timer not due yet
		// The report span continues the trace of the processing span that
		// scheduled the task: a child, although it starts the grace period
		// later, so that the report and its hooks show under the
		// room_finished that caused them.
		pipeline.Trace(tel.tracer, spanReport, tel.propagator, trace.WithSpanKind(trace.SpanKindInternal)),
		pipeline.Retry(pipeline.RetryPolicy{Max: maxReportBackoff, OnRetry: p.reportRetried}),
		// Reports are dead-lettered only for a permanent failure (a hook no
		// registration has): the delivery count, which also counts "not due
		// yet", is no attempt budget.
		pipeline.DeadLetter(0, p.deadLetterReport),
		pipeline.Recover(),
		pipeline.InProgress(heartbeat), // OnSessionEnded hooks may be slow
	)
	return events, tasks
}

func (p *processor) start(ctx context.Context) error {
	n := p.cfg.Workers
	runCtx, cancel := context.WithCancel(context.Background())
	p.runCtx, p.cancel = runCtx, cancel
	p.caches = make([]*recordCache, n)
	for i := range p.caches {
		p.caches[i] = newRecordCache(cacheSize)
	}
	events, tasks := p.chains()
	p.events = pipeline.NewRouter(events, pipeline.WithWorkers(n), pipeline.WithYield(p.yieldToIntake))
	p.tasks = pipeline.NewRouter(tasks, pipeline.WithWorkers(n))
	onErr := func(err error) { p.log.Debug("consumer", "error", err) }
	cc, err := p.eng.Events.Consume(ctx, engine.ConsumeOptions{
		AckWait: cmp.Or(p.opts.ackWait, ackWait), MaxAckPending: n * 256, Fetch: n * 4, OnError: onErr,
	}, func(msg *engine.Msg) { p.dispatch(p.events, msg.RoomKey(), msg) })
	if err != nil {
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: consume: %w", err)
	}
	p.consume = append(p.consume, cc)
	fc, err := p.eng.Tasks.Consume(ctx, engine.ConsumeOptions{
		AckWait: ackWait, MaxAckPending: 100_000, Fetch: 64, OnError: onErr,
	}, func(msg *engine.Msg) { p.dispatch(p.tasks, taskRoom(msg), msg) })
	if err != nil {
		cc.Stop()
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: consume tasks: %w", err)
	}
	p.consume = append(p.consume, fc)
	dc, err := p.eng.StartDistributor(runCtx, engine.DistributeOptions{
		Yield: p.yieldToIntake,
		Duplicate: func(engine.Accepted) {
			p.tel.duplicates.Add(runCtx, 1, label("stage", "store"))
		},
		Failed: func(err error) {
			p.log.Warn("journal distribution failed, will retry", "error", err.Error())
		},
		DeadLettered: func(a engine.Accepted, cause error, attempts int) {
			p.deadLettered(runCtx, a.Event, a.ID, decodeOrNil(a.Body), cause, attempts)
		},
		MaxAttempts: p.cfg.MaxAttempts,
		Interrupted: p.interrupted,
		Lane:        &p.lane,
	})
	if err != nil {
		cc.Stop()
		fc.Stop()
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: %w", err)
	}
	p.consume = append(p.consume, dc)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.sweep(runCtx)
	}()
	if o := p.opts; o.lister != nil {
		every := o.reconcileEvery
		if every <= 0 {
			every = time.Minute
		}
		delay := o.reconcileDelay
		if delay <= 0 {
			delay = DefaultReconcileCloseDelay
		}
		p.reconcile = &reconciler{log: p.log, tel: p.tel, rooms: p.rooms, schedule: p.scheduleTask,
			lister: o.lister, interval: every, minAge: min(every, time.Minute), closeDelay: delay}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.reconcile.run(runCtx)
		}()
	}
	return nil
}

// maxYield bounds how long one event waits for intake to go quiet.
const maxYield = 250 * time.Millisecond

// yieldToIntake gives intake priority: while webhooks are arriving,
// processing waits until intake has been quiet for quietGap (up to maxYield
// per event). A 2xx is what LiveKit waits for, and its per-room queues drop
// events after 30 s; processing only lags, and catches up once the burst is
// over.
func (p *processor) yieldToIntake(ctx context.Context) {
	p.quiet.waitQuiet(ctx, maxYield)
}

// dispatch hands a consumed message to its router's worker for key. A
// router that is stopping takes nothing: the message is nak'ed and comes
// back, to this replica after a restart or to another one.
func (p *processor) dispatch(r *pipeline.Router, key string, msg *engine.Msg) {
	if err := r.Dispatch(p.runCtx, key, msg); err != nil {
		_ = msg.Nak(pipeline.DefaultNakDelay)
	}
}

// taskRoom is the routing key of a timer: its room sid. Reports are made
// concurrently (each is about ten round trips to the engine; one at a time,
// a burst of finished rooms waited on their latency), but the timers of one
// room (a finalize and an expire) still run one after the other.
func taskRoom(msg *engine.Msg) string {
	var t task
	_ = json.Unmarshal(msg.Data(), &t) // undecodable: dueTasks terminates it
	return t.SID
}

// stop stops consuming and lets the workers finish what they hold, until
// ctx ends. Past it, the handlers' context is canceled and whatever is
// unfinished is nak'ed and redelivered later; a hook still running sees its
// context canceled and its outcome is discarded.
func (p *processor) stop(ctx context.Context) {
	for _, cc := range p.consume {
		cc.Drain()
	}
	for _, cc := range p.consume {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
		}
	}
	var routers sync.WaitGroup
	var unfinished atomic.Bool
	for _, r := range []*pipeline.Router{p.events, p.tasks} {
		routers.Go(func() {
			if r.Stop(ctx) != nil {
				unfinished.Store(true)
			}
		})
	}
	routers.Wait()
	p.cancel() // the distributor, the sweeper and the reconciler stop here
	if unfinished.Load() || !waitCtx(ctx, &p.wg) {
		p.log.Warn("processor stopped with work still running; unfinished events are redelivered")
	}
}

// stopWorkers stops a processor whose start failed.
func (p *processor) stopWorkers() {
	p.cancel()
	done, cancel := context.WithCancel(context.Background())
	cancel() // nothing to finish: cancel whatever runs
	_ = p.events.Stop(done)
	_ = p.tasks.Stop(done)
	p.wg.Wait()
}

// waitCtx waits for wg until ctx ends, and reports whether wg is done.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// cacheFor is the record cache of the event worker running ctx's handler
// (nil outside one: no cache).
func (p *processor) cacheFor(ctx context.Context) *recordCache {
	if w, ok := pipeline.Worker(ctx); ok && w < len(p.caches) {
		return p.caches[w]
	}
	return nil
}

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
	err := p.apply(ctx, ev, id, span, p.cacheFor(ctx))
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

// backoff is the processor's retry curve (pipeline.RetryPolicy's zero
// value): up to 0.5s, 1s, 2s … capped at 1m, jittered.
func backoff(attempt int) time.Duration { return pipeline.RetryPolicy{}.Backoff(attempt) }

// roomKey resolves the rooms-bucket key of an event: its room sid, else
// the current sid of its room name, else a key of its own.
func (p *processor) roomKey(ctx context.Context, ev *livekit.WebhookEvent, id string) (key, sid string, err error) {
	if sid = lifecycle.RoomSID(ev); sid != "" {
		key, err = p.rooms.Key(ctx, sid)
		return key, sid, err
	}
	name := lifecycle.RoomName(ev)
	if name == "" {
		key, err = p.rooms.RoomlessKey(ctx, id)
		return key, "", err
	}
	sid, ok, err := p.eng.Names.RoomSID(ctx, name)
	if err != nil {
		return "", "", err
	}
	if !ok {
		sid = "name:" + name
	}
	key, err = p.rooms.Key(ctx, sid)
	return key, sid, err
}

// apply folds ev into its room record (once per event id), then runs the
// hooks that have not yet succeeded for it.
func (p *processor) apply(ctx context.Context, ev *livekit.WebhookEvent, id string, span trace.Span, cache *recordCache) error {
	key, sid, err := p.roomKey(ctx, ev, id)
	if err != nil {
		return err
	}
	if sid == "" {
		return p.applyRoomless(ctx, ev, id, key)
	}
	var fresh, late, justApplied, remapped bool
	var activeBefore int
	rec, err := p.rooms.Update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
		fresh, late, justApplied, remapped = false, false, false, false
		if cur != nil && cur.Reported {
			late = !cur.State.Applied(id)
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
			if err := p.index(ctx, &next.State); err != nil {
				return nil, err
			}
		}
		activeBefore = next.State.ActiveParticipants()
		next.State, justApplied = lifecycle.Apply(next.State, ev)
		if hooks := p.hooks.forEvent(ev.Event); justApplied && len(hooks) > 0 {
			if next.Pending == nil {
				next.Pending = map[string]hookNames{}
			}
			next.Pending[id] = eventNames(hooks)
		}
		if next.State.Finished() && next.FinalizeDueMs == 0 {
			next.FinalizeDueMs = time.Now().Add(p.d.grace).UnixMilli()
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	if late {
		p.tel.lateEvents.Add(ctx, 1, label("event", eventLabel(ev.Event)))
		p.log.Info("event after the session was reported", withTrace(ctx, []any{"event", ev.Event, "event_id", id, "room_sid", sid})...)
		return nil
	}
	if rec == nil {
		return nil
	}
	if rec.Reported {
		// Applied before the report was fixed; its hooks may still be
		// pending (a retry or a replay): they keep their guarantees.
		return p.runHooks(ctx, key, id, ev, rec, cache)
	}
	span.SetAttributes(sessionAttrs(rec.State.SessionID)...)
	linkRoomTrace(span, rec.TraceParent)
	if rec.State.BelugaSessionID != "" {
		span.SetAttributes(attribute.String(attrBeluga, rec.State.BelugaSessionID))
	}
	if !justApplied {
		p.tel.duplicates.Add(ctx, 1, label("stage", "process"))
	} else {
		p.afterApply(ctx, ev, rec, fresh, activeBefore)
	}
	if rec.FinalizeDueMs != 0 {
		if err := p.scheduleFinalize(ctx, rec, taskFinalize, rec.FinalizeDueMs); err != nil {
			return err
		}
	}
	if ev.Event == "room_finished" && rec.State.Finished() && rec.State.RoomName != "" {
		// Durable, and before the ack: a redelivery after a crash writes
		// it again (see WatchRoomFinished).
		if err := p.eng.Names.MarkFinished(ctx, rec.State.RoomName, sid); err != nil {
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

// index records room name -> sid and session id -> sid for lookups.
func (p *processor) index(ctx context.Context, s *lifecycle.State) error {
	return p.eng.Names.Index(ctx, s.RoomName, s.SessionID, s.RoomSID)
}

// applyRoomless handles events that name no room (agent jobs, some future
// events): hooks only, with their own record for once-only calls.
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
