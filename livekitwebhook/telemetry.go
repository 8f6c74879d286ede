package livekitwebhook

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

const instrumentationName = "github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"

// Span and attribute names (see doc.go for the span tree).
const (
	spanReceive  = "livekitwebhook.receive"
	spanProcess  = "livekitwebhook.process"
	spanHook     = "livekitwebhook.hook"
	spanReport   = "livekitwebhook.report"
	attrOpName   = "gen_ai.operation.name"
	attrEvent    = "livekit.event"
	attrEventID  = "livekit.event.id"
	attrRoomName = "livekit.room.name"
	attrRoomSID  = "livekit.room.sid"
	attrPIdent   = "livekit.participant.identity"
	attrPSID     = "livekit.participant.sid"
	attrPKind    = "livekit.participant.kind"
	attrSession  = "livekitwebhook.session.id"
	attrBeluga   = "beluga.session.id"
	attrReason   = "livekitwebhook.refusal.reason"
	attrOutcome  = "livekitwebhook.outcome"
	attrHook     = "livekitwebhook.hook"
	attrAttempt  = "livekitwebhook.attempt"
	attrLinkKind = "livekitwebhook.link"
)

// telemetry holds the tracer, propagator and every instrument.
type telemetry struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator

	requests      metric.Int64Counter     // by event, outcome
	refusals      metric.Int64Counter     // by reason
	duplicates    metric.Int64Counter     // by stage (intake, store, process)
	acceptLatency metric.Float64Histogram // seconds
	procLatency   metric.Float64Histogram // seconds
	deliveryLag   metric.Float64Histogram // seconds, receipt - createdAt, by event
	retries       metric.Int64Counter
	deadLetters   metric.Int64Counter
	activeSess    metric.Int64UpDownCounter
	activePart    metric.Int64UpDownCounter
	sessDuration  metric.Float64Histogram
	partSeconds   metric.Float64Counter // by kind
	reports       metric.Int64Counter   // by disposition
	lateEvents    metric.Int64Counter

	// What the reports tell, once per report when it is fixed (see
	// reportmetrics.go); recordings also when a late egress ends.
	sipCalls   metric.Int64Counter     // by direction, outcome
	sipTalk    metric.Float64Histogram // seconds, answered calls, by direction
	recordings metric.Int64Counter     // by terminal status
	agentJobs  metric.Int64Counter     // by status
	anomalies  metric.Int64Counter     // by code, the anomaly's count

	reconcileClosed  metric.Int64Counter
	reconcileUnknown metric.Int64Gauge
	engineRestarts   metric.Int64Counter

	// backlog is observed when metrics are collected, through backlogOf
	// (set once the engine runs).
	backlog   metric.Int64ObservableGauge
	backlogOf atomic.Pointer[func(context.Context) (journal, events int64, err error)]
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) (*telemetry, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{tracer: tp.Tracer(instrumentationName), propagator: prop}
	var err error
	seconds := metric.WithUnit("s")
	latencyBuckets := metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
	try := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	try(func() (e error) {
		t.requests, e = m.Int64Counter("livekitwebhook.requests", metric.WithDescription("Webhook requests by event and outcome."))
		return
	})
	try(func() (e error) {
		t.refusals, e = m.Int64Counter("livekitwebhook.refusals", metric.WithDescription("Refused webhook requests by reason."))
		return
	})
	try(func() (e error) {
		t.duplicates, e = m.Int64Counter("livekitwebhook.duplicates", metric.WithDescription("Duplicate events by stage."))
		return
	})
	try(func() (e error) {
		t.acceptLatency, e = m.Float64Histogram("livekitwebhook.accept.duration", seconds, latencyBuckets, metric.WithDescription("Time from request to durable acceptance."))
		return
	})
	try(func() (e error) {
		t.procLatency, e = m.Float64Histogram("livekitwebhook.process.duration", seconds, latencyBuckets, metric.WithDescription("Time to apply one event, hooks included."))
		return
	})
	try(func() (e error) {
		// LiveKit drops an event after 30 s in its queue: the buckets resolve
		// 0-60 s, with a bound at 20 s for the alert (see lagBuckets).
		t.deliveryLag, e = m.Float64Histogram("livekitwebhook.delivery.lag", seconds, metric.WithExplicitBucketBoundaries(lagBuckets...),
			metric.WithDescription("Receipt time minus the event's createdAt (whole seconds, so up to 1 s high), once per accepted event, by event."))
		return
	})
	try(func() (e error) {
		t.retries, e = m.Int64Counter("livekitwebhook.retries", metric.WithDescription("Processing attempts that failed and will be retried."))
		return
	})
	try(func() (e error) {
		t.deadLetters, e = m.Int64Counter("livekitwebhook.dead_letters", metric.WithDescription("Events dead-lettered after the last attempt."))
		return
	})
	try(func() (e error) {
		t.activeSess, e = m.Int64UpDownCounter("livekitwebhook.sessions.active", metric.WithDescription("Sessions started and not yet reported (this replica's view of changes)."))
		return
	})
	try(func() (e error) {
		t.activePart, e = m.Int64UpDownCounter("livekitwebhook.participants.active", metric.WithDescription("Participants joined and not yet left."))
		return
	})
	try(func() (e error) {
		t.sessDuration, e = m.Float64Histogram("livekitwebhook.session.duration", seconds, metric.WithExplicitBucketBoundaries(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200), metric.WithDescription("Duration of ended sessions."))
		return
	})
	try(func() (e error) {
		t.partSeconds, e = m.Float64Counter("livekitwebhook.participant.seconds", seconds, metric.WithDescription("Participant-seconds of ended sessions, by participant kind."))
		return
	})
	try(func() (e error) {
		t.reports, e = m.Int64Counter("livekitwebhook.reports", metric.WithDescription("Final session reports by disposition."))
		return
	})
	try(func() (e error) {
		t.lateEvents, e = m.Int64Counter("livekitwebhook.late_events", metric.WithDescription("Events that arrived after their session was reported."))
		return
	})
	try(func() (e error) {
		t.sipCalls, e = m.Int64Counter("livekitwebhook.sip.calls", metric.WithDescription("SIP calls of reported sessions, by direction and outcome (answered, no_answer, rejected, failed, cancelled)."))
		return
	})
	try(func() (e error) {
		t.sipTalk, e = m.Float64Histogram("livekitwebhook.sip.talk", seconds, metric.WithExplicitBucketBoundaries(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
			metric.WithDescription("Talk time (answer to hang-up) of answered SIP calls of reported sessions, by direction."))
		return
	})
	try(func() (e error) {
		t.recordings, e = m.Int64Counter("livekitwebhook.recordings", metric.WithDescription("Recordings (egresses) by terminal status, each counted once: when the report is fixed, or when it ends after the report."))
		return
	})
	try(func() (e error) {
		t.agentJobs, e = m.Int64Counter("livekitwebhook.agent_jobs", metric.WithDescription("Agent jobs of reported sessions, by status at report time."))
		return
	})
	try(func() (e error) {
		t.anomalies, e = m.Int64Counter("livekitwebhook.report.anomalies", metric.WithDescription("Anomalies of reports when fixed, by code (each adds its count)."))
		return
	})
	try(func() (e error) {
		t.reconcileClosed, e = m.Int64Counter("livekitwebhook.reconcile.closed", metric.WithDescription("Sessions closed because LiveKit no longer lists their room."))
		return
	})
	try(func() (e error) {
		t.reconcileUnknown, e = m.Int64Gauge("livekitwebhook.reconcile.unknown_rooms", metric.WithDescription("Rooms LiveKit lists that the receiver never heard of, at the last pass."))
		return
	})
	try(func() (e error) {
		t.engineRestarts, e = m.Int64Counter("livekitwebhook.engine.restarts", metric.WithDescription("Engine restarts after its NATS connection was lost for good."))
		if e == nil {
			// Exported at 0 from the start, so that a dashboard's
			// increase() counts the first restart too.
			t.engineRestarts.Add(context.Background(), 0)
		}
		return
	})
	try(func() (e error) {
		t.backlog, e = m.Int64ObservableGauge("livekitwebhook.backlog",
			metric.WithDescription("Accepted but not yet done: journal envelopes not yet handed on (stage journal), stored events not yet applied (stage events)."))
		if e != nil {
			return e
		}
		journal, events := label("stage", "journal"), label("stage", "events")
		_, e = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
			f := t.backlogOf.Load()
			if f == nil {
				return nil
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if j, ev, err := (*f)(ctx); err == nil { // unknown: no data point
				o.ObserveInt64(t.backlog, j, journal)
				o.ObserveInt64(t.backlog, ev, events)
			}
			return nil
		}, t.backlog)
		return
	})
	return t, err
}

// lagBuckets are the bounds of livekitwebhook.delivery.lag. createdAt is
// whole seconds, so a lag reads up to 1 s high and sub-second bounds would
// mislead; 20 s is a bound so that the documented alert (p95 > 20 s) is
// exact at its threshold.
var lagBuckets = []float64{1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 45, 60, 120}

// recordLag records the delivery lag of an accepted event: receipt minus
// createdAt (unix seconds), 0 for a createdAt in the future (clock skew
// between LiveKit and the receiver), nothing without a createdAt.
func (t *telemetry) recordLag(ctx context.Context, event string, createdAt int64, receipt time.Time) {
	if createdAt <= 0 {
		return
	}
	lag := max(receipt.Sub(time.Unix(createdAt, 0)).Seconds(), 0)
	t.deliveryLag.Record(ctx, lag, label("event", eventLabel(event)))
}

func attrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

// label returns the measurement option for one string attribute, built once
// per value: intake records several per request.
func label(key, value string) metric.MeasurementOption {
	k := key + "\x00" + value
	if o, ok := labelCache.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o := attrs(attribute.String(key, value))
	if labelCount.Add(1) <= maxCachedLabels { // values come from verified events: few
		labelCache.Store(k, o)
	}
	return o
}

const maxCachedLabels = 4096

var (
	labelCache    sync.Map
	requestLabels sync.Map
	labelCount    atomic.Int64
)

// knownEvents are the events LiveKit sends (livekit/protocol
// webhook/consts.go); the metric label "event" takes only these, "other"
// and "unknown", since any string a signed body carries would be a series.
var knownEvents = map[string]bool{
	"room_started": true, "room_finished": true,
	"participant_joined": true, "participant_left": true, "participant_connection_aborted": true,
	"track_published": true, "track_unpublished": true,
	"egress_started": true, "egress_updated": true, "egress_ended": true,
	"ingress_started": true, "ingress_ended": true,
	"agent_job_pending": true, "agent_job_started": true, "agent_job_ended": true,
}

// eventLabel is the metric label of an event name: the name of a known
// event, "other", or "unknown" before an event was read.
func eventLabel(name string) string {
	switch {
	case name == "":
		return "unknown"
	case knownEvents[name]:
		return name
	default:
		return "other"
	}
}

func (t *telemetry) countRequest(ctx context.Context, event, outcome string) {
	event = eventLabel(event)
	k := event + "\x00" + outcome
	o, ok := requestLabels.Load(k)
	if !ok {
		o = attrs(attribute.String("event", event), attribute.String("outcome", outcome))
		if labelCount.Add(1) <= maxCachedLabels {
			requestLabels.Store(k, o)
		}
	}
	t.requests.Add(ctx, 1, o.(metric.MeasurementOption))
}

// sessionAttrs are the attributes that find one call's spans: the
// receiver's session id, and the same value under OTel GenAI's
// gen_ai.conversation.id (Beluga's o11y has no session attribute), which
// the Plugin sets on agent turns too.
func sessionAttrs(sessionID string) []attribute.KeyValue {
	if sessionID == "" {
		return nil
	}
	return []attribute.KeyValue{attribute.String(attrSession, sessionID), semconv.GenAIConversationID(sessionID)}
}

// traceParent is the W3C traceparent of ctx's span, "" without one. It is
// stored with the room whatever propagator the receiver uses: it is read
// back only by this package.
func traceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// spanContextOf parses a traceparent; the result is invalid for "".
func spanContextOf(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// linkRoomTrace links span to the room's trace, unless span is in it.
func linkRoomTrace(span trace.Span, tp string) {
	sc := spanContextOf(tp)
	if !sc.IsValid() || !span.IsRecording() || sc.TraceID() == span.SpanContext().TraceID() {
		return
	}
	span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(attrLinkKind, "livekit.room")}})
}
