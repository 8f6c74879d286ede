package livekitwebhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// legacySignatureHeader is the header of the old third-party integration
// guide. Real LiveKit never sends it.
const legacySignatureHeader = "X-LiveKit-Signature"

// legacySignatureKey is its canonical form: Header.Get allocates to
// canonicalize "LiveKit" on every request otherwise.
var legacySignatureKey = http.CanonicalHeaderKey(legacySignatureHeader)

// ContentType is the Content-Type LiveKit's notifier sends. Intake also
// takes application/json, or no Content-Type at all.
const ContentType = "application/webhook+json"

// ServeHTTP is the webhook intake. It answers 200 (no body; the outcome in
// the Lkwh-Outcome header) only once the event is durably stored (or was
// already stored, or is not subscribed), 503 with
// Retry-After when it cannot store, and a typed 4xx for everything else.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	r.answering.enter()
	defer r.answering.leave()
	ctx := r.tel.propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := r.tel.tracer.Start(ctx, spanReceive, receiveSpanOpts...)
	defer span.End()

	ev, outcome, err := r.intake(ctx, w, req)
	if ev != nil && span.IsRecording() {
		span.SetAttributes(eventAttrs(ev)...)
	}
	if err != nil {
		ref := refusal(err)
		span.SetAttributes(attribute.String(attrReason, ref.Reason))
		span.RecordError(err)
		span.SetStatus(codes.Error, ref.Reason)
		r.tel.refusals.Add(ctx, 1, label("reason", ref.Reason))
		r.tel.countRequest(ctx, eventName(ev), "refused")
		r.recent.refused(req, ev, ref.Reason)
		r.refuse(ctx, w, req, ev, ref)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrOutcome, outcome))
	}
	r.tel.countRequest(ctx, eventName(ev), outcome)
	r.tel.acceptLatency.Record(ctx, time.Since(start).Seconds(), outcomeLabels[outcome])
	if outcome == "accepted" {
		// Once per event: a duplicate is a retry of one already measured
		// (its lag adds LiveKit's backoff), an ignored event is not stored.
		r.tel.recordLag(ctx, ev.Event, ev.CreatedAt, start)
		if ev.CreatedAt > 0 {
			r.recent.lag(max(start.Sub(time.Unix(ev.CreatedAt, 0)), 0))
		}
	}
	// No body: LiveKit's sender closes the answer unread, and Go's client
	// only reuses a connection whose body was read to the end.
	w.Header()[HeaderOutcome] = outcomeValues[outcome]
	w.WriteHeader(http.StatusOK)
}

// receiveSpanOpts start every intake span (built once: two allocations
// fewer per request).
var receiveSpanOpts = []trace.SpanStartOption{
	trace.WithSpanKind(trace.SpanKindServer),
	trace.WithAttributes(attribute.String(attrOpName, spanReceive)),
}

// HeaderOutcome is the header of a 2xx answer that says what intake did:
// "accepted", "duplicate" (stored before) or "ignored" (not subscribed).
const HeaderOutcome = "Lkwh-Outcome"

// outcomeValues are the header values and outcomeLabels the metric labels
// of the 2xx outcomes, shared to spare allocations per answer.
var (
	outcomeValues = map[string][]string{
		"accepted": {"accepted"}, "duplicate": {"duplicate"}, "ignored": {"ignored"},
	}
	outcomeLabels = map[string]metric.MeasurementOption{
		"accepted": label("outcome", "accepted"), "duplicate": label("outcome", "duplicate"), "ignored": label("outcome", "ignored"),
	}
)

// intake runs the checks in order and stores the event. outcome is
// "accepted", "duplicate" or "ignored".
func (r *Receiver) intake(ctx context.Context, w http.ResponseWriter, req *http.Request) (*livekit.WebhookEvent, string, error) {
	if req.Method != http.MethodPost {
		return nil, "", ErrMethodNotAllowed
	}
	if r.draining.Load() {
		return nil, "", ErrShuttingDown
	}
	if ct := req.Header.Get("Content-Type"); ct != "" && ct != ContentType { // LiveKit's, as is: no parsing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != ContentType && mt != "application/json") {
			return nil, "", ErrUnsupportedMedia
		}
	}
	body, err := r.readBody(w, req)
	if err != nil {
		return nil, "", err
	}
	// From here on only CPU work is left: announce the event, so that the
	// engine may write it together with its neighbours (engine.Arrival).
	eng := r.engine()
	arrival := eng.Expect()
	defer arrival.Withdraw()
	ev, apiKey, err := r.verifyAndDecode(req.Header.Get("Authorization"), req.Header.Get(legacySignatureKey), body)
	if err != nil {
		return ev, "", err
	}
	if r.events != nil && !r.events[ev.Event] {
		return ev, "ignored", nil
	}
	id := ev.Id
	if id == "" {
		// LiveKit always sends an id; anything else is deduplicated by what
		// it says, not by its bytes, so the same event serialized again is
		// one event.
		if id, err = canonicalID(ev); err != nil {
			return ev, "", fmt.Errorf("%w: %v", ErrMalformedEvent, err)
		}
	}
	if eng == nil {
		return ev, "", ErrEngineUnavailable
	}
	room := lifecycle.RoomName(ev)
	a := engine.NewAccepted(id, room, lifecycle.RoomSID(ev), ev.Event, body)
	if apiKey != "" {
		// The verified signing key (the JWT's iss) names the event's
		// project; the secret never leaves the verifier.
		a.Header[engine.HeaderAPIKey] = []string{apiKey}
	}
	r.tel.propagator.Inject(ctx, propagation.HeaderCarrier(a.Header))
	dup, err := arrival.Accept(ctx, a)
	if errors.Is(err, engine.ErrTooLarge) {
		return ev, "", fmt.Errorf("%w: %v", ErrBodyTooLarge, err)
	}
	if err != nil {
		return ev, "", fmt.Errorf("%w: %v", ErrEngineUnavailable, err)
	}
	if dup {
		r.tel.duplicates.Add(ctx, 1, label("stage", "intake"))
		eng.Trail.Record(lifecycle.RoomSID(ev), trailOf(engine.TrailDuplicate, id, ev.Event, "intake"))
		return ev, "duplicate", nil
	}
	return ev, "accepted", nil
}

// verifyAndDecode checks the signature over the raw bytes, then decodes
// leniently (LiveKit keeps adding fields and enum values). apiKey is the
// key whose secret verified it ("" for a legacy signature).
func (r *Receiver) verifyAndDecode(authorization, legacySig string, body []byte) (ev *livekit.WebhookEvent, apiKey string, err error) {
	res, err := r.verifier.Verify(authorization, legacySig, body)
	if err != nil {
		return nil, "", err
	}
	ev = &livekit.WebhookEvent{}
	if err := decodeOpts.Unmarshal(body, ev); err != nil {
		return nil, "", malformedError(body, err)
	}
	if ev.Event == "" {
		return ev, "", fmt.Errorf("%w: no event name", ErrMalformedEvent)
	}
	return ev, res.APIKey, checkIDs(ev)
}

// checkIDs refuses an event whose ids no LiveKit server generates.
func checkIDs(ev *livekit.WebhookEvent) error {
	for _, id := range [...]struct{ field, v string }{
		{"id", ev.Id}, {"room.sid", lifecycle.RoomSID(ev)}, {"participant.sid", ev.GetParticipant().GetSid()},
	} {
		if len(id.v) > maxIDLen {
			return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrIDTooLong, id.field, len(id.v), maxIDLen)
		}
	}
	return nil
}

// canonicalID is the dedupe key of an event without an id: a hash of its
// deterministic binary form, the same whatever the JSON's field order,
// whitespace or number spelling (fields the schema does not know are
// dropped by decoding and do not count).
func canonicalID(ev *livekit.WebhookEvent) (string, error) {
	b, err := canonicalMarshal.Marshal(ev)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "canon-" + hex.EncodeToString(sum[:16]), nil
}

var canonicalMarshal = proto.MarshalOptions{Deterministic: true}

// readBody reads at most MaxBodyBytes, refusing larger bodies without
// reading them through.
func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	limit := r.cfg.MaxBodyBytes
	if c := r.bodyCap.Load(); c > 0 {
		limit = c
	}
	if req.ContentLength > limit {
		return nil, ErrBodyTooLarge
	}
	size := 512
	if req.ContentLength > 0 {
		size = int(req.ContentLength) + 1 // room to see EOF without growing
	}
	body, err := readAll(http.MaxBytesReader(w, req.Body, limit), size)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrBodyTooLarge
		}
		return nil, fmt.Errorf("%w: %v", ErrBodyRead, err)
	}
	return body, nil
}

// readAll is io.ReadAll starting from size bytes: a body of the announced
// length is read into one allocation (bytes.Buffer and io.ReadAll both grow
// past it, which was a third of intake's allocated bytes).
func readAll(r io.Reader, size int) ([]byte, error) {
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// refusalBody is the JSON answer to a refused request.
type refusalBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

func (r *Receiver) refuse(ctx context.Context, w http.ResponseWriter, req *http.Request, ev *livekit.WebhookEvent, ref *RefusalError) {
	h := w.Header()
	switch ref.Status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		h.Set("Retry-After", strconv.Itoa(max(1, int(r.d.retryAfter.Round(time.Second)/time.Second))))
	case http.StatusRequestEntityTooLarge:
		// Do not let net/http drain a huge body to reuse the connection.
		h.Set("Connection", "close")
	}
	level := r.log.Warn
	if ref.Status >= 500 {
		level = r.log.Error
	}
	args := []any{"reason", ref.Reason, "status", ref.Status, "error", ref.Err.Error(), "remote", req.RemoteAddr}
	if ev != nil {
		args = append(args, "event", ev.Event, "event_id", clipID(ev.Id))
	}
	level("webhook refused", withTrace(ctx, args)...)
	if r.opts.onRefused != nil {
		r.opts.onRefused(req, ref)
	}
	writeJSON(w, ref.Status, refusalBody{Error: http.StatusText(ref.Status), Reason: ref.Reason})
}
