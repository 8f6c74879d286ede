package livekitwebhook

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
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
	// projects names the project of each signing key.
	projects projectSet
}

func newProcessor(deps processorDeps, eng *engine.Engine) *processor {
	p := &processor{processorDeps: deps, eng: eng, rooms: eng.Rooms}
	p.beluga = belugaLink{correlator: deps.correlator, sessions: deps.opts.sessions, store: eng.Beluga,
		agentID: deps.cfg.BelugaAgentID, deleteSessions: deps.cfg.DeleteBelugaSessions}
	return p
}

// cacheFor is the record cache of the event worker running ctx's handler
// (nil outside one: no cache).
func (p *processor) cacheFor(ctx context.Context) *recordCache {
	if w, ok := pipeline.Worker(ctx); ok && w < len(p.caches) {
		return p.caches[w]
	}
	return nil
}

// backoff is the processor's retry curve (pipeline.RetryPolicy's zero
// value): up to 0.5s, 1s, 2s … capped at 1m, jittered.
func backoff(attempt int) time.Duration { return pipeline.RetryPolicy{}.Backoff(attempt) }

// handedOn is what every report's check asks the engine, read once for many
// reports of a burst: both values only move forward, so what was read for one
// report stays true for the next.
type handedOn struct {
	mu     sync.Mutex
	clear  time.Time // the journal held no envelope written before this
	floor  uint64    // the processor acked every event up to this stream sequence
	readAt time.Time
}

// handedOnMaxAge bounds how stale a floor may be: older, the events past it
// that each check reads grow with the traffic since.
const handedOnMaxAge = 100 * time.Millisecond
