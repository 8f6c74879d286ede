package livekitwebhook

import (
	"context"
	"strings"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"
)

// SessionService returns the runtime.SessionService to hand the Runner
// (runtime.WithSessionService(recv.SessionService())): the one given with
// WithSessionService, whose Get takes a room's session id (whatever the
// Correlator gives: room name, metadata key, template) and returns the
// Beluga session whose State the receiver fills. So runner.Run(ctx,
// "call-7", …) continues the room's session. It is nil without
// WithSessionService.
//
// Get answers for an id the receiver has not seen yet too (the agent often
// starts before the room's first webhook): it creates the session then and
// records it in the store, and the room's first webhook adopts it. The
// Runner's own fallback cannot do this: after a not-found Get it calls
// Create(ctx, agentID), which carries no session id. Get still takes a
// Beluga session id as well. Create, Update and Delete go to the wrapped
// service; Update keeps the receiver's "livekit.*" keys a session copy taken
// before they were written lacks, so a Runner's turn does not erase them.
//
// Get needs the receiver started (an error wrapping ErrEngineUnavailable
// otherwise). It works on every replica sharing the store.
func (r *Receiver) SessionService() runtime.SessionService {
	if r.opts.sessions == nil {
		return nil
	}
	return sessionService{SessionService: r.opts.sessions, r: r}
}

// sessionService is the decorator SessionService returns.
type sessionService struct {
	runtime.SessionService
	r *Receiver
}

var _ runtime.SessionService = sessionService{}

// Get returns the Beluga session of a room's session id (see
// Receiver.SessionService).
func (s sessionService) Get(ctx context.Context, sessionID string) (*runtime.Session, error) {
	if sessionID == "" {
		return s.SessionService.Get(ctx, sessionID)
	}
	eng := s.r.engine()
	if eng == nil {
		return nil, core.NewError("livekitwebhook.sessions.get", core.ErrProviderDown,
			"event store unavailable", ErrEngineUnavailable)
	}
	m := roomSessions{svc: s.SessionService, store: eng.Beluga, agentID: s.r.cfg.BelugaAgentID}
	return m.session(ctx, sessionID)
}

// Update stores session, keeping the "livekit.*" state keys it lacks.
func (s sessionService) Update(ctx context.Context, session *runtime.Session) error {
	if session != nil {
		if cur, err := s.SessionService.Get(ctx, session.ID); err == nil {
			for k, v := range cur.State {
				if _, ok := session.State[k]; !ok && strings.HasPrefix(k, "livekit.") {
					if session.State == nil {
						session.State = map[string]any{}
					}
					session.State[k] = v
				}
			}
		}
	}
	return s.SessionService.Update(ctx, session)
}
