package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"github.com/lookatitude/beluga-ai/v2/schema"
)

// StateKeyRoom is the Session.State key where SessionPlugin puts the live
// room state before each turn.
const StateKeyRoom = "livekit.room"

// Room statuses in the map stored under StateKeyRoom.
const (
	RoomStatusActive   = "active"
	RoomStatusFinished = "finished"
)

// ErrRoomFinished is the cause of the error SessionPlugin.BeforeTurn
// returns for a session whose room has finished (and of Transport.Send
// after room_finished). Test with errors.Is(err, ErrRoomFinished); the error
// itself is a *core.Error with code core.ErrInvalidInput.
//
// It is deliberately a plain error, not a *core.Error: core.Error.Is matches
// any two core.Errors with the same code, so a *core.Error sentinel would
// also "match" unrelated invalid-input errors (the Runner wraps every
// BeforeTurn failure in one).
var ErrRoomFinished = errors.New("livekit room finished")

// SessionPlugin is a runtime.Plugin that ties agent turns to the LiveKit
// room of their Beluga session. Before each turn it writes the room's live
// state into Session.State[StateKeyRoom] (the JSON shape of Session plus
// "status": "active" or "finished"), and it refuses turns once the room has
// finished with a *core.Error wrapping ErrRoomFinished.
//
// It finds the room through the receiver's session id stored in the Beluga
// session's State[StateKeySession], which the receiver writes when it was
// built WithSessionService (share that service with the runtime.Runner).
// WithPluginSessionKey reads another key instead. Sessions without the key
// pass through untouched, as do sessions the receiver has not seen yet.
// When the receiver cannot be read (engine down) the turn goes on without
// room state: the plugin fails open and logs a warning.
type SessionPlugin struct {
	r          *Receiver
	sessionKey string
	stateKey   string
}

var _ runtime.Plugin = (*SessionPlugin)(nil)

// PluginOption configures a SessionPlugin.
type PluginOption func(*SessionPlugin)

// WithPluginSessionKey reads the receiver's session id from
// Session.State[key] instead of StateKeySession. The value must be a
// string: with the default correlation it is the room name.
func WithPluginSessionKey(key string) PluginOption {
	return func(p *SessionPlugin) { p.sessionKey = key }
}

// WithPluginStateKey writes the room state under key instead of
// StateKeyRoom.
func WithPluginStateKey(key string) PluginOption {
	return func(p *SessionPlugin) { p.stateKey = key }
}

// Plugin returns the SessionPlugin of r, for runtime.WithPlugins.
func (r *Receiver) Plugin(opts ...PluginOption) runtime.Plugin {
	return NewSessionPlugin(r, opts...)
}

// NewSessionPlugin builds the SessionPlugin of r.
func NewSessionPlugin(r *Receiver, opts ...PluginOption) *SessionPlugin {
	p := &SessionPlugin{r: r, sessionKey: StateKeySession, stateKey: StateKeyRoom}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name returns "livekitwebhook".
func (p *SessionPlugin) Name() string { return "livekitwebhook" }

// BeforeTurn stores the room state in session.State and refuses the turn
// when the room finished. The input is never modified.
func (p *SessionPlugin) BeforeTurn(ctx context.Context, session *runtime.Session, input schema.Message) (schema.Message, error) {
	if session == nil || session.State == nil {
		return input, nil
	}
	id, _ := session.State[p.sessionKey].(string)
	if id == "" {
		return input, nil
	}
	s, ok, err := p.r.SessionByID(ctx, id)
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
	session.State[p.stateKey] = view
	if s.EndedAt != nil {
		return input, core.NewError("livekitwebhook.plugin.before_turn", core.ErrInvalidInput,
			fmt.Sprintf("livekit room %q finished (session %q): no more turns", s.RoomName, s.SessionID), ErrRoomFinished)
	}
	return input, nil
}

// AfterTurn returns events unchanged.
func (p *SessionPlugin) AfterTurn(_ context.Context, _ *runtime.Session, events []agent.Event) ([]agent.Event, error) {
	return events, nil
}

// OnError returns err unchanged.
func (p *SessionPlugin) OnError(_ context.Context, err error) error { return err }

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
