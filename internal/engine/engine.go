package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable means the engine cannot durably store right now; the HTTP
// layer answers 503 so that LiveKit retries.
var ErrUnavailable = errors.New("engine unavailable")

// Config selects and shapes the engine. The zero value (plus DataDir) runs an
// embedded server.
type Config struct {
	// URL of an external NATS deployment; empty runs an embedded server.
	URL string
	// Credentials, TLS: for an external deployment.
	CredsFile, TLSCA, TLSCert, TLSKey string
	// DataDir holds the embedded server's file storage.
	DataDir string
	// Replicas of every stream and bucket (external clusters only; 1 embedded).
	Replicas int
	// DedupeWindow is how long an event id is remembered at intake.
	DedupeWindow time.Duration
	// Retention is how long accepted events stay in the stream (at least
	// DedupeWindow: the window is rebuilt from stored messages on restart).
	Retention time.Duration
	// ReportRetention is how long final reports are kept.
	ReportRetention time.Duration
	// RecordTTL is how long an entry of the rooms, names and Beluga
	// buckets lives after its last write (default: a week, or twice
	// DedupeWindow if longer). It must outlast a room's open life: the
	// caller keeps it above its max session age.
	RecordTTL time.Duration
	// MaxMessageBytes is the largest event body to store; the embedded
	// server's max payload is raised to fit it (plus headers). An external
	// server's own max_payload is reported by MaxPayload.
	MaxMessageBytes int64
	// AcceptBound bounds Accept: past it the event is refused (default 5s).
	AcceptBound time.Duration
	// Name identifies the connection (shown by nats-server).
	Name   string
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 24 * time.Hour
	}
	if c.Retention < c.DedupeWindow {
		c.Retention = max(7*24*time.Hour, c.DedupeWindow)
	}
	if c.RecordTTL <= 0 {
		c.RecordTTL = max(7*24*time.Hour, 2*c.DedupeWindow)
	}
	if c.ReportRetention <= 0 {
		c.ReportRetention = 30 * 24 * time.Hour
	}
	if c.AcceptBound <= 0 {
		c.AcceptBound = 5 * time.Second
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Name == "" {
		c.Name = "lkwebhook"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine is a connection to JetStream with every stream and bucket in place.
type Engine struct {
	cfg Config
	srv *server.Server // nil for an external deployment
	nc  *nats.Conn
	js  jetstream.JetStream

	journal, events, tasks, reports, dlq, trail jetstream.Stream
	rooms, names, reportKV, beluga, open        jetstream.KeyValue

	// The typed repositories: the only way the rest of the module reads
	// or writes the store.
	Rooms       *Rooms
	Names       *Names
	Beluga      *BelugaMap
	Tasks       *Tasks
	Reports     *Reports
	DeadLetters *DeadLetters
	Events      *Events
	Trail       *Trail

	queue      chan *pending // Accept -> committers
	expected   atomic.Int64  // announced arrivals not yet queued (see Arrival)
	nudge      chan struct{} // no arrival is expected any more
	filling    sync.Mutex    // held by the committer filling an envelope
	carry      *pending      // did not fit in the last envelope; guarded by filling
	entryLimit int           // largest event Accept queues (the server's max payload at connect)
	lingerCap  time.Duration // lingerCap; tests lengthen it
	ackWait    time.Duration // distributeAckWait; tests shorten it
	stop       chan struct{} // closed by Close
	wg         sync.WaitGroup
	recent     *recentIDs
	closeOnce  sync.Once
	closing    atomic.Bool   // set by Close: the connection's end is ours
	lost       chan struct{} // closed when the connection is lost for good
	lostOnce   sync.Once
	// legacy is the window in which entries written before projects are
	// still read (see project.go).
	legacy *legacyWindow
	// publishFault, set by this package's tests, fails or disturbs the
	// distribution of one event.
	publishFault func(Accepted) error
}

// Open starts (or connects to) JetStream and provisions streams and buckets.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.defaults()
	e := &Engine{cfg: cfg, queue: make(chan *pending, 1024), nudge: make(chan struct{}, 1), lingerCap: lingerCap, ackWait: distributeAckWait,
		stop: make(chan struct{}), lost: make(chan struct{}), recent: newRecentIDs(recentIDsRemembered)}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No reconnect buffer: while disconnected a publish must fail at
		// once, so intake answers 503 instead of acknowledging a message
		// that only sits in this process's memory.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				cfg.Logger.Warn("engine disconnected", "error", err)
			}
			// An embedded server that stopped never comes back by itself.
			if e.srv != nil && !e.srv.Running() {
				e.markLost(errors.New("embedded server stopped"))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { cfg.Logger.Info("engine reconnected") }),
		// nats.go closes the connection, instead of reconnecting, on some
		// server errors (-ERR 'maximum control line exceeded', …).
		nats.ClosedHandler(func(nc *nats.Conn) { e.markLost(nc.LastError()) }),
		// Into the log rather than nats.go's default print to stderr.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			cfg.Logger.Warn("engine connection error", "error", err.Error())
		}),
	}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		e.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.TLSCA != "" {
			opts = append(opts, nats.RootCAs(cfg.TLSCA))
		}
		if cfg.TLSCert != "" {
			opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
		}
	}
	nc, err := connect(ctx, url, opts)
	if err != nil {
		e.shutdownServer()
		return nil, fmt.Errorf("%w: connect: %v", ErrUnavailable, err)
	}
	e.nc = nc
	e.entryLimit = e.maxEnvelope()
	e.js, err = jetstream.New(nc)
	if err == nil {
		err = e.provision(ctx)
	}
	if err != nil {
		_ = e.Close()
		return nil, err
	}
	for range committers {
		e.wg.Add(1)
		go e.commitLoop()
	}
	return e, nil
}

// connect retries the first connection until ctx ends: an external cluster
// may still be electing leaders when the receiver starts.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// headerRoom is what a stored event's headers may add to its body.
const headerRoom = 64 << 10

// MaxBody is the largest body the connected server accepts in one message,
// leaving room for the headers intake adds.
func (e *Engine) MaxBody() int64 { return e.nc.MaxPayload() - headerRoom }

func startEmbedded(cfg Config) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "lkwebhook-embedded",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: int32(min(max(cfg.MaxMessageBytes, 1<<20)+headerRoom, 64<<20)),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready after 30s")
	}
	return srv, nil
}

func (e *Engine) provision(ctx context.Context) error {
	r := e.cfg.Replicas
	streams := []struct {
		dst *jetstream.Stream
		cfg jetstream.StreamConfig
	}{
		// The journal keeps an envelope until the distributor has moved
		// its events: no age or size limit may drop one.
		{&e.journal, jetstream.StreamConfig{
			Name: StreamJournal, Subjects: []string{SubjectJournal},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.WorkQueuePolicy,
		}},
		{&e.events, jetstream.StreamConfig{
			Name: StreamEvents, Subjects: []string{SubjectEventsAll},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.LimitsPolicy,
			MaxAge: e.cfg.Retention, Duplicates: e.cfg.DedupeWindow,
		}},
		{&e.tasks, jetstream.StreamConfig{
			Name: StreamTasks, Subjects: []string{SubjectTasksAll},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.WorkQueuePolicy,
			Duplicates: e.cfg.DedupeWindow,
		}},
		{&e.reports, jetstream.StreamConfig{
			Name: StreamReports, Subjects: []string{SubjectReportsAll},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.LimitsPolicy,
			MaxAge: e.cfg.ReportRetention, Duplicates: e.cfg.DedupeWindow,
		}},
		{&e.dlq, jetstream.StreamConfig{
			Name: StreamDLQ, Subjects: []string{SubjectDLQAll},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.LimitsPolicy,
			Duplicates: time.Minute,
		}},
		// Kept as long as the events it tells about.
		{&e.trail, jetstream.StreamConfig{
			Name: StreamTrail, Subjects: []string{SubjectTrailAll},
			Storage: jetstream.FileStorage, Replicas: r, Retention: jetstream.LimitsPolicy,
			MaxAge: e.cfg.Retention,
		}},
	}
	for _, s := range streams {
		st, err := Bounded(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			return e.js.CreateOrUpdateStream(ctx, s.cfg)
		})
		if err != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, s.cfg.Name, err)
		}
		*s.dst = st
	}
	buckets := []struct {
		dst *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		// A TTL (the stream's MaxAge, which an update changes on an
		// existing bucket too) bounds what history keeps. An entry gets a
		// fresh one on every write, so an open room's record lives on.
		{&e.rooms, jetstream.KeyValueConfig{Bucket: BucketRooms, Storage: jetstream.FileStorage, Replicas: r, TTL: e.cfg.RecordTTL}},
		{&e.names, jetstream.KeyValueConfig{Bucket: BucketNames, Storage: jetstream.FileStorage, Replicas: r, TTL: e.cfg.RecordTTL}},
		{&e.reportKV, jetstream.KeyValueConfig{Bucket: BucketReports, Storage: jetstream.FileStorage, Replicas: r, TTL: e.cfg.ReportRetention}},
		{&e.beluga, jetstream.KeyValueConfig{Bucket: BucketBeluga, Storage: jetstream.FileStorage, Replicas: r, TTL: e.cfg.RecordTTL}},
		// No TTL: entries leave when their room is delivered, or when
		// found without a record (see Rooms.EachOpen).
		{&e.open, jetstream.KeyValueConfig{Bucket: BucketOpen, Storage: jetstream.FileStorage, Replicas: r}},
	}
	for _, b := range buckets {
		kv, err := Bounded(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
			return e.js.CreateOrUpdateKeyValue(ctx, b.cfg)
		})
		if err != nil {
			return fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, b.cfg.Bucket, err)
		}
		*b.dst = kv
	}
	openStream, err := Bounded(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return e.js.Stream(ctx, "KV_"+BucketOpen)
	})
	if err != nil {
		return fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, BucketOpen, err)
	}
	legacy, err := e.openLegacyWindow(ctx)
	if err != nil {
		return fmt.Errorf("%w: layout: %w", ErrUnavailable, err)
	}
	e.legacy = legacy
	e.Rooms = &Rooms{kv: e.rooms, open: e.open, openStream: openStream, legacy: legacy}
	if err := e.Rooms.buildOpenIndex(ctx, e.cfg.Logger); err != nil {
		return fmt.Errorf("%w: open rooms index: %w", ErrUnavailable, err)
	}
	e.Names = &Names{kv: e.names, rooms: e.Rooms, legacy: legacy}
	e.Beluga = &BelugaMap{kv: e.beluga}
	e.Tasks = &Tasks{js: e.js, stream: e.tasks}
	e.Reports = &Reports{js: e.js, kv: e.reportKV, stream: e.reports}
	e.DeadLetters = &DeadLetters{js: e.js, stream: e.dlq}
	e.Events = &Events{stream: e.events}
	trailJS, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return err
	}
	e.Trail = &Trail{js: trailJS, stream: e.trail}
	return nil
}

// Bounded runs an administrative call with a 5 s bound: a cluster electing
// leaders, or several replicas provisioning at once, can leave a request
// unanswered. Retry on a fresh connection (see Transient): the same one can
// stay stuck.
func Bounded[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return f(tctx)
}

// Transient reports whether err is worth another try: no answer, nobody to
// answer yet, or a clustered stream still committing an earlier write of the
// same message id (a retry then finds it stored, a duplicate). Any other
// answer that refuses (a JetStream API error) is final.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeMsgIDInProcess
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// errCodeMsgIDInProcess is nats-server's JSStreamDuplicateMessageConflict
// (409 "duplicate message id is in process"), which nats.go does not name.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

// JetStream exposes the JetStream context, for tests only: everything
// else goes through the repositories.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// Conn exposes the NATS connection, for tests only (they close it to
// inject a loss).
func (e *Engine) Conn() *nats.Conn { return e.nc }

// Embedded returns the embedded server, or nil when connected by URL.
func (e *Engine) Embedded() *server.Server { return e.srv }

// Ready reports whether the engine can store right now.
func (e *Engine) Ready() bool { return e != nil && e.nc != nil && e.nc.IsConnected() }

// Lost is closed when the connection is gone for good without Close: nats.go
// closed it, or the embedded server stopped. The engine is of no further use;
// close it and open a new one.
func (e *Engine) Lost() <-chan struct{} { return e.lost }

func (e *Engine) markLost(cause error) {
	if e.closing.Load() {
		return
	}
	e.lostOnce.Do(func() {
		var args []any
		if cause != nil {
			args = append(args, "error", cause.Error())
		}
		e.cfg.Logger.Error("engine connection lost for good", args...)
		close(e.lost)
	})
}

// isLost reports whether the connection is lost for good. It reads the
// connection's state too: the handler closing Lost runs asynchronously.
func (e *Engine) isLost() bool {
	select {
	case <-e.lost:
		return true
	default:
		return e.nc != nil && e.nc.IsClosed() && !e.closing.Load()
	}
}

// Close drains nothing: in-flight publishes have their own contexts. It
// closes the connection, then stops an embedded server.
func (e *Engine) Close() error {
	e.closing.Store(true)
	e.closeOnce.Do(func() { close(e.stop) })
	e.wg.Wait()
	if e.nc != nil {
		e.nc.Close()
	}
	e.shutdownServer()
	return nil
}

func (e *Engine) shutdownServer() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
}
