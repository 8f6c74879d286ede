package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

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
		Duplicate: func(a engine.Accepted) {
			p.tel.duplicates.Add(runCtx, 1, label("stage", "store"))
			p.trail(http.Header(a.Header).Get(engine.HeaderRoomSID), trailOf(engine.TrailDuplicate, a.ID, a.Event, "store"))
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
			lister: o.lister, interval: every, minAge: min(every, time.Minute), closeDelay: delay,
			project: reconcileProject(o.lister, p.projects), projects: p.projects.all}
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
