package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// processor consumes accepted events and applies them. Each replica runs
// one; they share the durable consumer, and compare-and-set on the rooms
// bucket keeps them correct without a leader.
type processor struct {
	r     *Receiver
	eng   *engine.Engine
	rooms *engine.Rooms

	// Workers stop through contexts, never by closing their channels: the
	// consumers' callbacks may still be sending (a stop deadline passed).
	runCtx  context.Context // canceled: everything stops at once
	cancel  context.CancelFunc
	drained chan struct{}  // closed once no consumer can send: workers finish their queue
	workers sync.WaitGroup // event and task workers
	wg      sync.WaitGroup // sweeper and reconciler
	// lane is held shared while an event, a journal envelope or a task is
	// handled, exclusively while an event or envelope whose last handling
	// lost the connection is.
	lane    sync.RWMutex
	handed  handedOn
	work    []chan *engine.Msg
	tasks   []chan *engine.Msg // timers, by room
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
)

func newProcessor(r *Receiver, eng *engine.Engine) *processor {
	return &processor{r: r, eng: eng, rooms: eng.Rooms}
}

func (p *processor) start(ctx context.Context) error {
	n := p.r.cfg.Workers
	runCtx, cancel := context.WithCancel(context.Background())
	p.runCtx, p.cancel, p.drained = runCtx, cancel, make(chan struct{})
	p.work = make([]chan *engine.Msg, n)
	p.tasks = make([]chan *engine.Msg, n)
	for i := range p.work {
		ch := make(chan *engine.Msg, 4)
		p.work[i] = ch
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			cache := newRecordCache(cacheSize)
			p.runWorker(runCtx, ch, func(msg *engine.Msg) {
				p.yieldToIntake(runCtx)
				p.handleEvent(runCtx, msg, cache)
			})
		}()
	}
	for i := range p.tasks {
		ch := make(chan *engine.Msg, 4)
		p.tasks[i] = ch
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			p.runWorker(runCtx, ch, func(msg *engine.Msg) { p.handleTask(runCtx, msg) })
		}()
	}
	onErr := func(err error) { p.r.log.Debug("consumer", "error", err) }
	cc, err := p.eng.Events.Consume(ctx, engine.ConsumeOptions{
		AckWait: cmp.Or(p.r.opts.ackWait, ackWait), MaxAckPending: n * 256, Fetch: n * 4, OnError: onErr,
	}, p.dispatch)
	if err != nil {
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: consume: %w", err)
	}
	p.consume = append(p.consume, cc)
	fc, err := p.eng.Tasks.Consume(ctx, engine.ConsumeOptions{
		AckWait: ackWait, MaxAckPending: 100_000, Fetch: 64, OnError: onErr,
	}, p.dispatchTask)
	if err != nil {
		cc.Stop()
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: consume tasks: %w", err)
	}
	p.consume = append(p.consume, fc)
	dc, err := p.eng.StartDistributor(runCtx, engine.DistributeOptions{
		Yield: p.yieldToIntake,
		Duplicate: func(engine.Accepted) {
			p.r.tel.duplicates.Add(runCtx, 1, label("stage", "store"))
		},
		Failed: func(err error) {
			p.r.log.Warn("journal distribution failed, will retry", "error", err.Error())
		},
		DeadLettered: func(a engine.Accepted, cause error, attempts int) {
			p.r.deadLettered(runCtx, a.Event, a.ID, decodeOrNil(a.Body), cause, attempts)
		},
		MaxAttempts: p.r.cfg.MaxAttempts,
		Interrupted: &p.r.interrupted,
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
	if o := p.r.opts; o.lister != nil {
		every := o.reconcileEvery
		if every <= 0 {
			every = time.Minute
		}
		delay := o.reconcileDelay
		if delay <= 0 {
			delay = DefaultReconcileCloseDelay
		}
		p.reconcile = &reconciler{r: p.r, lister: o.lister, interval: every, minAge: min(every, time.Minute), closeDelay: delay}
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
	p.r.answering.waitQuiet(ctx, maxYield)
}

// dispatch routes a message to the worker of its room, so that events of
// one room are applied in arrival order by one goroutine of this replica.
// Once the processor is stopped a message is left unacknowledged: it is
// redelivered after the ack wait.
func (p *processor) dispatch(msg *engine.Msg) {
	h := fnv.New32a()
	h.Write([]byte(msg.RoomKey()))
	select {
	case p.work[h.Sum32()%uint32(len(p.work))] <- msg:
	case <-p.runCtx.Done():
	}
}

// dispatchTask routes a timer to the task worker of its room. Reports are
// made concurrently (each is about ten round trips to the engine; one at a
// time, a burst of finished rooms waited on their latency), but the timers of
// one room (a finalize and an expire) still run one after the other here.
func (p *processor) dispatchTask(msg *engine.Msg) {
	var t task
	_ = json.Unmarshal(msg.Data(), &t) // undecodable: any worker terminates it
	h := fnv.New32a()
	h.Write([]byte(t.SID))
	select {
	case p.tasks[h.Sum32()%uint32(len(p.tasks))] <- msg:
	case <-p.runCtx.Done():
	}
}

// runWorker handles the messages of its channel until the processor is
// stopped, or until the consumers are drained and its queue is empty.
func (p *processor) runWorker(ctx context.Context, ch <-chan *engine.Msg, handle func(*engine.Msg)) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ch:
			handle(msg)
		case <-p.drained:
			for {
				select {
				case <-ctx.Done():
					return
				case msg := <-ch:
					handle(msg)
				default:
					return
				}
			}
		}
	}
}

// stop stops consuming and lets the workers finish what they hold, until
// ctx ends. Past it, whatever is unfinished is left unacknowledged and
// redelivered later; a hook still running sees its context canceled and
// its outcome is discarded.
func (p *processor) stop(ctx context.Context) {
	for _, cc := range p.consume {
		cc.Drain()
	}
	drained := true
	for _, cc := range p.consume {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
			drained = false
		}
	}
	if drained {
		close(p.drained) // no consumer sends any more
		waitCtx(ctx, &p.workers)
	}
	p.cancel() // the sweeper, the reconciler and any worker left stop here
	if !waitCtx(ctx, &p.workers) || !waitCtx(ctx, &p.wg) {
		p.r.log.Warn("processor stopped with work still running; unfinished events are redelivered")
	}
}

// stopWorkers stops a processor whose start failed.
func (p *processor) stopWorkers() {
	p.cancel()
	p.workers.Wait()
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

// handleEvent applies one stored event, then acks, retries or dead-letters.
func (p *processor) handleEvent(ctx context.Context, msg *engine.Msg, cache *recordCache) {
	start := time.Now()
	tel := p.r.tel
	pctx := tel.propagator.Extract(ctx, propagation.HeaderCarrier(msg.Headers()))
	pctx, span := tel.tracer.Start(pctx, spanProcess, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String(attrOpName, spanProcess)))
	defer span.End()

	attempt, key := msg.Attempt(), ""
	if seq := msg.Seq(); seq != 0 {
		key = "event/" + strconv.FormatUint(seq, 10)
	}
	span.SetAttributes(attribute.Int(attrAttempt, attempt))
	id := msg.EventID()
	// An event whose last handling was cut short by the loss of the
	// connection is applied alone, so that a loss is its own doing. Once its
	// attempts are used up and its last one, alone, lost the connection too,
	// applying it is what closes the connection: dead-letter it unapplied.
	inter := &p.r.interrupted
	part, suspect := inter.Of(key)
	if suspect && part == handledAlone && attempt > p.r.cfg.MaxAttempts {
		p.deadLetter(pctx, msg, msg.Event(), decodeOrNil(msg.Data()), id,
			fmt.Errorf("%w (%d deliveries)", engine.ErrConnectionLost, attempt-1), attempt-1)
		inter.End(p.eng, key)
		return
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
		return // the connection is gone: redelivered on the next one
	}
	defer inter.End(p.eng, key)
	ev := &livekit.WebhookEvent{}
	if err := decodeOpts.Unmarshal(msg.Data(), ev); err != nil {
		// Verified at intake, so this is a bug or a tampered store: keep it.
		p.deadLetter(pctx, msg, msg.Event(), nil, id, fmt.Errorf("decode stored event: %w", err), attempt)
		return
	}
	if id == "" {
		id = ev.Id
	}
	if span.IsRecording() {
		span.SetAttributes(eventAttrs(ev)...)
	}
	stopBeat := keepInProgress(msg)
	err := p.apply(pctx, ev, id, span, cache)
	stopBeat()
	tel.procLatency.Record(pctx, time.Since(start).Seconds(), label("event", eventLabel(ev.Event)))
	if err == nil {
		_ = msg.Ack()
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, "processing failed")
	if ctx.Err() != nil {
		// Shutting down: the event is redelivered later, not a failure.
		_ = msg.Nak(time.Second)
		return
	}
	p.r.callOnError(pctx, ev, err)
	if attempt >= p.r.cfg.MaxAttempts {
		p.deadLetter(pctx, msg, msg.Event(), ev, id, err, attempt)
		return
	}
	tel.retries.Add(pctx, 1, label("event", eventLabel(ev.Event)))
	p.r.log.Warn("event failed, will retry", withTrace(pctx, []any{
		"event", ev.Event, "event_id", id, "attempt", attempt, "error", err.Error()})...)
	_ = msg.Nak(backoff(attempt))
}

// How an event's handling is recorded in Receiver.interrupted.
const (
	handledShared = -1 // alongside other events
	handledAlone  = 0  // alone: a loss meanwhile is its own doing
)

// keepInProgress tells the server every heartbeat that msg is still being
// worked on (slow hooks), until the returned stop is called.
func keepInProgress(msg *engine.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// backoff is exponential with full jitter: up to 0.5s, 1s, 2s … capped at 1m.
func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt-1, 7)
	d = min(d, time.Minute)
	return d/2 + rand.N(d/2+1)
}

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
		if err := p.r.correlate(ctx, &next.State, ev); err != nil {
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
		if hooks := p.r.hooks.forEvent(ev.Event); justApplied && len(hooks) > 0 {
			if next.Pending == nil {
				next.Pending = map[string]hookNames{}
			}
			next.Pending[id] = eventNames(hooks)
		}
		if next.State.Finished() && next.FinalizeDueMs == 0 {
			next.FinalizeDueMs = time.Now().Add(p.r.d.grace).UnixMilli()
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	if late {
		p.r.tel.lateEvents.Add(ctx, 1, label("event", eventLabel(ev.Event)))
		p.r.log.Info("event after the session was reported", withTrace(ctx, []any{"event", ev.Event, "event_id", id, "room_sid", sid})...)
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
	span.SetAttributes(attribute.String(attrSession, rec.State.SessionID))
	if rec.State.BelugaSessionID != "" {
		span.SetAttributes(attribute.String(attrBeluga, rec.State.BelugaSessionID))
	}
	if !justApplied {
		p.r.tel.duplicates.Add(ctx, 1, label("stage", "process"))
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
		p.r.tel.activeSess.Add(ctx, 1)
	}
	if d := rec.State.ActiveParticipants() - activeBefore; d != 0 {
		p.r.tel.activePart.Add(ctx, int64(d))
	}
	if p.r.log.Enabled(ctx, slog.LevelDebug) {
		p.r.log.Debug("event applied", withTrace(ctx, []any{"event", ev.Event, "event_id", ev.Id,
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
	hooks := p.r.hooks.forEvent(ev.Event)
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
