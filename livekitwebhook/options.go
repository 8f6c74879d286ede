package livekitwebhook

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a Receiver beyond Config.
type Option func(*options)

type options struct {
	keys       auth.KeyProvider
	hooks      []Hooks
	correlator Correlator
	sessions   runtime.SessionService
	logger     *slog.Logger
	tracer     trace.TracerProvider
	meter      metric.MeterProvider
	propagator propagation.TextMapPropagator
	clock      func() time.Time
	onRefused  func(*http.Request, *RefusalError)

	lister         RoomLister
	reconcileEvery time.Duration
	reconcileDelay time.Duration

	ackWait time.Duration // of the events consumer; tests shorten it
}

// WithKeyProvider verifies with any livekit/protocol auth.KeyProvider
// instead of the keys in Config. Legacy signatures then need Config keys.
func WithKeyProvider(kp auth.KeyProvider) Option { return func(o *options) { o.keys = kp } }

// WithHooks adds hooks. Each Hooks value (and each of its fields) is retried
// and recorded on its own, by name (see Hooks); call it several times to add
// more.
func WithHooks(h ...Hooks) Option { return func(o *options) { o.hooks = append(o.hooks, h...) } }

// WithCorrelator maps rooms to backend sessions (overrides
// Config.Correlation).
func WithCorrelator(c Correlator) Option { return func(o *options) { o.correlator = c } }

// WithSessionService gives each room a Beluga session of s and writes the
// final report into its State. Hand the Runner Receiver.SessionService(),
// which wraps s so that a room's session id finds the room's session.
func WithSessionService(s runtime.SessionService) Option {
	return func(o *options) { o.sessions = s }
}

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTracerProvider sets the tracer provider (default: otel global).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// WithMeterProvider sets the meter provider (default: otel global).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithPropagator sets how trace context is read from requests and carried
// through the engine (default: W3C trace context and baggage).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// withClock replaces time.Now for token verification (tests replaying
// captured requests).
func withClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithRefusalHandler is called for every refused request with its typed
// error (use errors.Is with the Err* values).
func WithRefusalHandler(f func(*http.Request, *RefusalError)) Option {
	return func(o *options) { o.onRefused = f }
}

// WithReconciler enables reconciliation against LiveKit every interval.
func WithReconciler(l RoomLister, interval time.Duration) Option {
	return func(o *options) { o.lister, o.reconcileEvery = l, interval }
}

// WithReconcileCloseDelay changes how long a session whose room LiveKit no
// longer lists waits for a late room_finished before it is closed
// (default DefaultReconcileCloseDelay).
func WithReconcileCloseDelay(d time.Duration) Option {
	return func(o *options) { o.reconcileDelay = d }
}
