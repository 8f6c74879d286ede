package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	beconfig "github.com/lookatitude/beluga-ai/v2/config"
	"github.com/lookatitude/beluga-ai/v2/core"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// Receiver is the webhook pipeline: an http.Handler for intake, a processor
// that turns accepted events into sessions, and the sessions API. Create it
// with New, then Start it; Stop it to shut down.
type Receiver struct {
	cfg        Config
	d          durations
	opts       options
	log        *slog.Logger
	verifier   *verify.Verifier
	events     map[string]bool
	projects   projectSet
	tel        *telemetry
	hooks      hookTable
	correlator Correlator

	// life serializes Start, Stop and engine restarts; mu guards eng, proc
	// and sup, and is held only briefly (intake reads eng on every request).
	life sync.Mutex
	mu   sync.Mutex
	eng  *engine.Engine
	proc *processor
	sup  *supervisor
	// restarting is set while a lost engine is being replaced.
	restarting atomic.Bool
	// interrupted outlives engine restarts: it finds poison entries.
	interrupted engine.Interrupted

	draining atomic.Bool
	// recent keeps the latest refusals and delivery lags for the console.
	recent      intakeLog
	consoleOnce sync.Once
	console     http.Handler
	// answering counts intake requests being answered; the processor yields
	// to them (see processor.yieldToIntake).
	answering intakeActivity
	// bodyCap is MaxBodyBytes, lowered to what the engine can store.
	bodyCap atomic.Int64
	// absDataDir is DataDir resolved once (see dataDir).
	dataDirOnce sync.Once
	absDataDir  string
}

var (
	_ http.Handler   = (*Receiver)(nil)
	_ core.Lifecycle = (*Receiver)(nil)
)

// New validates cfg and builds a Receiver. It does no I/O: Start opens the
// engine and starts processing.
func New(cfg Config, opts ...Option) (*Receiver, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	if err := beconfig.Validate(&cfg); err != nil {
		return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid config", err)
	}
	d, err := cfg.durations()
	if err != nil {
		return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid config", err)
	}
	keys, err := cfg.keySet()
	if err == nil {
		err = cfg.checkSecrets(keys)
	}
	if err != nil {
		return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid keys", err)
	}
	projectNames, err := cfg.Projects.parse()
	if err != nil {
		return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid projects", err)
	}
	kp := o.keys
	if kp == nil {
		if len(keys) == 0 {
			return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput,
				"no signing keys: set api_key/api_secret, keys, key_file or LIVEKIT_API_KEY/LIVEKIT_API_SECRET", nil)
		}
		kp = auth.NewFileBasedKeyProviderFromMap(keys)
	}
	vopts := []verify.Option{verify.WithLeeway(d.leeway)}
	if o.clock != nil {
		vopts = append(vopts, verify.WithClock(o.clock))
	}
	if cfg.LegacySignature {
		secrets := make([]string, 0, len(keys))
		for _, s := range keys {
			secrets = append(secrets, s)
		}
		vopts = append(vopts, verify.WithLegacySignature(func() []string { return secrets }))
	}
	corr := o.correlator
	if corr == nil {
		if corr, err = correlatorFromConfig(cfg.Correlation); err != nil {
			return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid correlation", err)
		}
	}
	tel, err := newTelemetry(o.tracer, o.meter, o.propagator)
	if err != nil {
		return nil, fmt.Errorf("livekitwebhook: metrics: %w", err)
	}
	hooks, err := newHookTable(o.hooks)
	if err != nil {
		return nil, core.NewError("livekitwebhook.new", core.ErrInvalidInput, "invalid hooks", err)
	}
	log := o.logger
	if log == nil {
		log = slog.Default()
	}
	return &Receiver{
		cfg:        cfg,
		d:          d,
		opts:       o,
		log:        log.With("component", "livekitwebhook"),
		verifier:   verify.New(kp, vopts...),
		events:     cfg.eventSet(),
		projects:   newProjectSet(projectNames, keys),
		tel:        tel,
		hooks:      hooks,
		correlator: corr,
	}, nil
}

// Config returns the configuration in effect (defaults applied).
func (r *Receiver) Config() Config { return r.cfg }

// Start opens the engine (embedded or external) and starts the processor.
// The context bounds the start only. From then on the engine is re-opened
// whenever its connection is lost for good, until Stop.
func (r *Receiver) Start(ctx context.Context) error {
	r.life.Lock()
	defer r.life.Unlock()
	r.mu.Lock()
	started := r.eng != nil || r.sup != nil
	r.mu.Unlock()
	if started {
		return errors.New("livekitwebhook: already started")
	}
	r.logStorage()
	// Replicas starting together on a fresh cluster can leave provisioning
	// requests unanswered on one connection; a new connection is answered.
	for attempt := 1; ; attempt++ {
		err := r.start(ctx)
		if err == nil {
			r.draining.Store(false)
			r.superviseEngine()
			return nil
		}
		if ctx.Err() != nil || !engine.Transient(err) {
			return err
		}
		r.log.Warn("engine not ready, retrying on a new connection", "attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
		}
	}
}

// start opens the engine and starts the processor, with r.life held.
func (r *Receiver) start(ctx context.Context) error {
	eng, err := engine.Open(ctx, engine.Config{
		URL:             r.cfg.NatsURL,
		CredsFile:       r.cfg.NatsCreds,
		TLSCA:           r.cfg.NatsTLSCA,
		TLSCert:         r.cfg.NatsTLSCert,
		TLSKey:          r.cfg.NatsTLSKey,
		DataDir:         r.dataDir(),
		Replicas:        r.cfg.Replicas,
		DedupeWindow:    r.d.dedupe,
		RecordTTL:       r.d.recordTTL,
		AcceptBound:     r.d.accept,
		Logger:          r.log,
		MaxMessageBytes: r.cfg.MaxBodyBytes,
	})
	if err != nil {
		return core.NewError("livekitwebhook.start", core.ErrProviderDown, "engine", err)
	}
	if mb := eng.MaxBody(); mb < r.cfg.MaxBodyBytes {
		// An external server with a smaller max_payload: refuse such bodies
		// with 413 up front rather than 503 forever.
		r.log.Warn("engine max payload is below max_body_bytes; lowering the body cap",
			"max_body_bytes", r.cfg.MaxBodyBytes, "engine_max_body", mb)
		r.bodyCap.Store(mb)
	} else {
		r.bodyCap.Store(r.cfg.MaxBodyBytes)
	}
	proc := newProcessor(processorDeps{
		cfg: r.cfg, d: r.d, opts: r.opts, tel: r.tel, log: r.log, hooks: r.hooks,
		correlator: r.correlator, interrupted: &r.interrupted, quiet: &r.answering, projects: r.projects,
	}, eng)
	r.setEngine(eng, proc)
	backlog := r.Backlog
	r.tel.backlogOf.Store(&backlog)
	if err := proc.start(ctx); err != nil {
		r.setEngine(nil, nil)
		_ = eng.Close()
		return err
	}
	return nil
}

// DefaultDataDir is where the embedded engine keeps its files when
// Config.DataDir is empty, relative to the working directory.
const DefaultDataDir = "./data"

// dataDir is the embedded engine's directory, absolute when it can be:
// the process's working directory at Start, not at a later restart.
func (r *Receiver) dataDir() string {
	r.dataDirOnce.Do(func() {
		dir := r.cfg.DataDir
		if dir == "" {
			dir = DefaultDataDir
		}
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		r.absDataDir = dir
	})
	return r.absDataDir
}

// logStorage says where the embedded engine stores its files, so that an
// app never writes a directory it did not hear about: at WARN when data_dir
// was left empty (the files land under the working directory, wherever the
// app runs), at INFO otherwise. An external engine (nats_url) has no local
// files; its URL may hold credentials and is not logged.
func (r *Receiver) logStorage() {
	if r.cfg.NatsURL != "" {
		return
	}
	if r.cfg.DataDir == "" {
		r.log.Warn("data_dir not set: the embedded JetStream engine stores its files in "+r.dataDir()+
			"; set data_dir (or nats_url) to choose", "data_dir", r.dataDir())
		return
	}
	r.log.Info("embedded JetStream engine storage", "data_dir", r.dataDir())
}

func (r *Receiver) setEngine(eng *engine.Engine, proc *processor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eng, r.proc = eng, proc
}

// takeEngine detaches the engine and processor, for closing.
func (r *Receiver) takeEngine() (*engine.Engine, *processor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	eng, proc := r.eng, r.proc
	r.eng, r.proc = nil, nil
	return eng, proc
}

// Drain makes intake answer 503 (LiveKit retries elsewhere or later) while
// in-flight requests finish. Stop drains too.
func (r *Receiver) Drain() { r.draining.Store(true) }

// Stop drains intake, stops the processor (in-flight events finish or are
// redelivered later) and closes the engine. ctx bounds the wait for
// in-flight events, not the closing.
func (r *Receiver) Stop(ctx context.Context) error {
	r.Drain()
	r.stopSupervisor() // before r.life: a restart in progress gives up
	r.life.Lock()
	defer r.life.Unlock()
	eng, proc := r.takeEngine()
	if eng == nil {
		return nil
	}
	if proc != nil {
		proc.stop(ctx)
	}
	return eng.Close()
}

// Health reports whether the engine is connected.
func (r *Receiver) Health() core.HealthStatus {
	eng := r.engine()
	switch {
	case eng == nil && r.restarting.Load():
		return core.HealthStatus{Status: core.HealthUnhealthy, Message: "engine restarting"}
	case eng == nil:
		return core.HealthStatus{Status: core.HealthUnhealthy, Message: "not started"}
	case r.draining.Load():
		return core.HealthStatus{Status: core.HealthUnhealthy, Message: "draining"}
	case !eng.Ready():
		return core.HealthStatus{Status: core.HealthUnhealthy, Message: "engine unavailable"}
	default:
		return core.HealthStatus{Status: core.HealthHealthy, Message: "ok"}
	}
}

func (r *Receiver) processorRef() *processor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

func (r *Receiver) reconcilerRef() *reconciler {
	if p := r.processorRef(); p != nil {
		return p.reconcile
	}
	return nil
}

func (r *Receiver) engine() *engine.Engine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng
}

// StreamStats is what a benchmark reads of one stream of the store.
type StreamStats struct {
	Writes    uint64 // messages ever stored, including those since removed
	Messages  uint64 // messages held now
	Consumers int
}

// StoreStats reads every stream of the store by name (KV buckets are the
// streams KV_<bucket>), from any replica: the growth of Writes over a run
// is the durable writes it made per store; that of the intake journal
// (LKWH_INTAKE) against requests is how well concurrent requests share one
// write. For benchmarks (lkwebhook bench); the names may change with the
// store's layout.
func (r *Receiver) StoreStats(ctx context.Context) (map[string]StreamStats, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	st, err := eng.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]StreamStats, len(st))
	for name, s := range st {
		out[name] = StreamStats(s)
	}
	return out, nil
}

// Backlog is what the engine holds that is accepted but not done: journal
// envelopes not yet handed on to the events stream, and stored events not
// yet applied. Both drain to zero within seconds of a burst.
func (r *Receiver) Backlog(ctx context.Context) (journal, events int64, err error) {
	eng := r.engine()
	if eng == nil {
		return 0, 0, ErrEngineUnavailable
	}
	j, err := eng.JournalBacklog(ctx)
	if err != nil {
		return 0, 0, err
	}
	ev, err := eng.Events.Backlog(ctx)
	if err != nil {
		return 0, 0, err
	}
	return int64(j), ev, nil
}
