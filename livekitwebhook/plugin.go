package livekitwebhook

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"github.com/lookatitude/beluga-ai/v2/schema"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// StateKeyRoom is the Beluga Session.State key where the Plugin puts the
// live room state before each turn.
const StateKeyRoom = "livekit.room"

// StateKeyTraceParent is the Beluga Session.State key where the Plugin puts
// the room's trace context (a W3C traceparent) before each turn: the trace
// of the first webhook stored for the room, which turns link to.
const StateKeyTraceParent = "livekit.trace_parent"

// spanTurn is the span the Plugin starts for each turn it ties to a room.
const spanTurn = "livekitwebhook.turn"

// Room statuses in the map stored under StateKeyRoom.
const (
	RoomStatusActive   = "active"
	RoomStatusFinished = "finished"
)

// Plugin returns a runtime.Plugin (for runtime.WithPlugins) that ties agent
// turns to the LiveKit room of their Beluga session. Before each turn it
// writes the room's live state into Session.State[StateKeyRoom] (the JSON
// shape of Session plus "status": RoomStatusActive or RoomStatusFinished),
// and it refuses turns once the room has finished with a *core.Error
// wrapping ErrRoomFinished.
//
// It finds the room through the receiver's session id in the Beluga
// session's State[StateKeySession], which r writes when it was built
// WithSessionService (share that service with the runtime.Runner).
// Sessions without the key pass through untouched, as do sessions r has not
// seen yet. When r cannot be read (engine down) the turn goes on without
// room state: the plugin fails open and logs a warning.
func (r *Receiver) Plugin() runtime.Plugin { return &sessionPlugin{r: r} }

// sessionPlugin is the Plugin of a Receiver.
type sessionPlugin struct{ r *Receiver }

var _ runtime.Plugin = (*sessionPlugin)(nil)

// Name returns "livekitwebhook".
func (p *sessionPlugin) Name() string { return "livekitwebhook" }

// BeforeTurn stores the room state in session.State and refuses the turn
// when the room finished. The input is never modified.
func (p *sessionPlugin) BeforeTurn(ctx context.Context, session *runtime.Session, input schema.Message) (schema.Message, error) {
	if session == nil || session.State == nil {
		return input, nil
	}
	id, _ := session.State[StateKeySession].(string)
	if id == "" {
		return input, nil
	}
	s, tp, ok, err := p.r.roomOfSession(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return input, ctx.Err()
		}
		p.r.log.Warn("plugin: room state unavailable, turn goes on without it",
			withTrace(ctx, []any{"session_id", id, "beluga_session_id", session.ID, "error", err.Error()})...)
		return input, nil
	}
	if !ok {
		return input, nil
	}
	view, err := roomState(s)
	if err != nil {
		return input, core.NewError("livekitwebhook.plugin.before_turn", core.ErrInvalidInput, "encode room state", err)
	}
	session.State[StateKeyRoom] = view
	if tp != "" {
		session.State[StateKeyTraceParent] = tp
	}
	p.traceTurn(ctx, s, tp)
	if s.EndedAt != nil {
		return input, core.NewError("livekitwebhook.plugin.before_turn", core.ErrInvalidInput,
			fmt.Sprintf("livekit room %q finished (session %q): no more turns", s.RoomName, s.SessionID), ErrRoomFinished)
	}
	return input, nil
}

// traceTurn ties the turn's trace to the room's: the span in ctx (the
// app's turn span, parent of the agent's spans) gets the session attribute
// and a link to the room's trace, and a short child span livekitwebhook.turn
// carries both too, so that the agent's trace holds them even when its span
// in ctx is not recording (or there is none: the turn span is then a root).
func (p *sessionPlugin) traceTurn(ctx context.Context, s Session, tp string) {
	kv := append(sessionAttrs(s.SessionID),
		attribute.String(attrRoomName, s.RoomName), attribute.String(attrRoomSID, s.RoomSID),
		attribute.String(attrOpName, spanTurn))
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		parent.SetAttributes(sessionAttrs(s.SessionID)...)
		linkRoomTrace(parent, tp)
	}
	_, span := p.r.tel.tracer.Start(ctx, spanTurn, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(kv...))
	linkRoomTrace(span, tp)
	span.End()
}

// roomOfSession is SessionByID plus the room's trace context.
func (r *Receiver) roomOfSession(ctx context.Context, sessionID string) (s Session, traceParent string, ok bool, err error) {
	rec, err := r.findSession(ctx, sessionID, "")
	if err != nil || rec == nil {
		return Session{}, "", false, err
	}
	return viewOf(rec), rec.TraceParent, true, nil
}

// AfterTurn returns events unchanged.
func (p *sessionPlugin) AfterTurn(_ context.Context, _ *runtime.Session, events []agent.Event) ([]agent.Event, error) {
	return events, nil
}

// OnError returns err unchanged.
func (p *sessionPlugin) OnError(_ context.Context, err error) error { return err }

// roomState is the JSON-shaped map of s plus its status.
func roomState(s Session) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["status"] = RoomStatusActive
	if s.EndedAt != nil {
		m["status"] = RoomStatusFinished
	}
	return m, nil
}
