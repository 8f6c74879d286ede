package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nats-io/nats.go/jetstream"
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
	rooms rooms

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	events  jetstream.Consumer // the durable consumer; reports read its ack floor
	handed  handedOn
	work    []chan jetstream.Msg
	tasks   []chan jetstream.Msg // timers, by room
	consume []jetstream.ConsumeContext

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
	return &processor{r: r, eng: eng, rooms: rooms{eng.Rooms}}
}

func (p *processor) start(ctx context.Context) error {
	n := p.r.cfg.Workers
	events, err := engine.Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return p.eng.Events.CreateOrUpdateConsumer(ctx, p.eventsConsumer(n))
	})
	if err != nil {
		return fmt.Errorf("livekitwebhook: processor consumer: %w", err)
	}
	p.events = events
	tasks, err := engine.Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return p.eng.Tasks.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       engine.ConsumerFinalizer,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    -1,
			MaxAckPending: 100_000,
		})
	})
	if err != nil {
		return fmt.Errorf("livekitwebhook: finalizer consumer: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.work = make([]chan jetstream.Msg, n)
	p.tasks = make([]chan jetstream.Msg, n)
	for i := range p.tasks {
		ch := make(chan jetstream.Msg, 4)
		p.tasks[i] = ch
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for msg := range ch {
				p.handleTask(runCtx, msg)
			}
		}()
	}
	for i := range p.work {
		ch := make(chan jetstream.Msg, 4)
		p.work[i] = ch
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			cache := newRecordCache(cacheSize)
			for msg := range ch {
				p.yieldToIntake(runCtx)
				p.handleEvent(runCtx, msg, cache)
			}
		}()
	}
	errh := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			p.r.log.Debug("consumer", "error", err)
		}
	})
	cc, err := events.Consume(p.dispatch, jetstream.PullMaxMessages(n*4), errh)
	if err != nil {
		p.stopWorkers()
		return fmt.Errorf("livekitwebhook: consume: %w", err)
	}
	p.consume = append(p.consume, cc)
	fc, err := tasks.Consume(p.dispatchTask, jetstream.PullMaxMessages(64), errh)
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

// eventsConsumer is the durable consumer every replica's processor shares.
func (p *processor) eventsConsumer(workers int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       engine.ConsumerProcessor,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // attempts are counted here, then dead-lettered
		MaxAckPending: workers * 256,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// dispatch routes a message to the worker of its room, so that events of
// one room are applied in arrival order by one goroutine of this replica.
func (p *processor) dispatch(msg jetstream.Msg) {
	h := fnv.New32a()
	h.Write([]byte(msg.Headers().Get(headerRoomKey)))
	p.work[h.Sum32()%uint32(len(p.work))] <- msg
}

// dispatchTask routes a timer to the task worker of its room. Reports are
// made concurrently (each is about ten round trips to the engine; one at a
// time, a burst of finished rooms waited on their latency), but the timers of
// one room (a finalize and an expire) still run one after the other here.
func (p *processor) dispatchTask(msg jetstream.Msg) {
	var t task
	_ = json.Unmarshal(msg.Data(), &t) // undecodable: any worker terminates it
	h := fnv.New32a()
	h.Write([]byte(t.SID))
	p.tasks[h.Sum32()%uint32(len(p.tasks))] <- msg
}

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
	p.stopWorkers()
}

func (p *processor) stopWorkers() {
	for _, ch := range p.work {
		close(ch)
	}
	for _, ch := range p.tasks {
		close(ch)
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	// Workers finish the event at hand; the sweeper stops on cancel.
	p.cancel()
	<-done
}

// handleEvent applies one stored event, then acks, retries or dead-letters.
func (p *processor) handleEvent(ctx context.Context, msg jetstream.Msg, cache *recordCache) {
	start := time.Now()
	tel := p.r.tel
	pctx := tel.propagator.Extract(ctx, propagation.HeaderCarrier(msg.Headers()))
	pctx, span := tel.tracer.Start(pctx, spanProcess, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String(attrOpName, spanProcess)))
	defer span.End()

	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	span.SetAttributes(attribute.Int(attrAttempt, attempt))
	id := msg.Headers().Get(headerEventID)
	ev := &livekit.WebhookEvent{}
	if err := decodeOpts.Unmarshal(msg.Data(), ev); err != nil {
		// Verified at intake, so this is a bug or a tampered store: keep it.
		p.deadLetter(pctx, msg, nil, id, fmt.Errorf("decode stored event: %w", err), attempt)
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
	tel.procLatency.Record(pctx, time.Since(start).Seconds(), label("event", ev.Event))
	if err == nil {
		_ = msg.Ack()
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, "processing failed")
	if ctx.Err() != nil {
		// Shutting down: the event is redelivered later, not a failure.
		_ = msg.NakWithDelay(time.Second)
		return
	}
	p.r.callOnError(pctx, ev, err)
	if attempt >= p.r.cfg.MaxAttempts {
		p.deadLetter(pctx, msg, ev, id, err, attempt)
		return
	}
	tel.retries.Add(pctx, 1, label("event", ev.Event))
	p.r.log.Warn("event failed, will retry", withTrace(pctx, []any{
		"event", ev.Event, "event_id", id, "attempt", attempt, "error", err.Error()})...)
	_ = msg.NakWithDelay(backoff(attempt))
}

// keepInProgress tells the server every heartbeat that msg is still being
// worked on (slow hooks), until the returned stop is called.
func keepInProgress(msg jetstream.Msg) (stop func()) {
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
		return engine.Key(sid), sid, nil
	}
	name := lifecycle.RoomName(ev)
	if name == "" {
		return "ev." + engine.Key(id), "", nil
	}
	e, err := p.eng.Names.Get(ctx, "room."+engine.Key(name))
	switch {
	case err == nil:
		sid = string(e.Value())
		return engine.Key(sid), sid, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		sid = "name:" + name
		return engine.Key(sid), sid, nil
	default:
		return "", "", err
	}
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
	rec, err := p.rooms.update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
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
				next.Pending = map[string][]uint{}
			}
			ids := make([]uint, len(hooks))
			for i, h := range hooks {
				ids[i] = h.id
			}
			next.Pending[id] = ids
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
		p.r.tel.lateEvents.Add(ctx, 1, label("event", ev.Event))
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
	if ev.Event == "room_finished" && justApplied {
		p.notifyFinished(rec.State.RoomName, sid)
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
	sid := []byte(s.RoomSID)
	if _, err := p.eng.Names.Put(ctx, "room."+engine.Key(s.RoomName), sid); err != nil {
		return err
	}
	_, err := p.eng.Names.Put(ctx, "session."+engine.Key(s.SessionID), sid)
	return err
}

// applyRoomless handles events that name no room (agent jobs, some future
// events): hooks only, with their own record for once-only calls.
func (p *processor) applyRoomless(ctx context.Context, ev *livekit.WebhookEvent, id, key string) error {
	hooks := p.r.hooks.forEvent(ev.Event)
	if len(hooks) == 0 {
		return nil
	}
	rec, err := p.rooms.update(ctx, key, nil, func(cur *roomRecord) (*roomRecord, error) {
		if cur != nil {
			return nil, nil
		}
		ids := make([]uint, len(hooks))
		for i, h := range hooks {
			ids[i] = h.id
		}
		return &roomRecord{FirstSeenMs: time.Now().UnixMilli(), Reported: false,
			Pending: map[string][]uint{id: ids}}, nil
	})
	if err != nil {
		return err
	}
	return p.runHooks(ctx, key, id, ev, rec, nil)
}
