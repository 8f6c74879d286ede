package livekitwebhook

import (
	"context"
	"errors"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// roomSessions resolves a backend session id (what the Correlator gives) to
// its Beluga session. The mapping lives in the engine's store, so every
// replica, and the receiver and the Runner alike, find the same session;
// races are settled by the store's create-if-absent.
type roomSessions struct {
	svc     runtime.SessionService
	store   *engine.BelugaMap
	agentID string
}

// session returns the Beluga session of sessionID: the mapped one; else a
// Beluga session whose id is sessionID itself (adopted: the app created it
// and named it in the room's metadata); else a new one. A mapping whose
// session is gone (deleted, or an in-memory service restarted) is moved to
// a new session.
func (m roomSessions) session(ctx context.Context, sessionID string) (*runtime.Session, error) {
	for {
		e, ok, err := m.store.Get(ctx, sessionID)
		if err != nil {
			return nil, err
		}
		if ok {
			s, err := m.svc.Get(ctx, e.ID)
			if !isNotFound(err) {
				return s, err
			}
			if s, err = m.svc.Create(ctx, m.agentID); err != nil {
				return nil, err
			}
			if err := m.store.Move(ctx, e, s.ID); err != nil {
				_ = m.svc.Delete(ctx, s.ID)
				if errors.Is(err, engine.ErrConflict) {
					continue // another creator moved it first: use theirs
				}
				return nil, err
			}
			return s, m.tag(ctx, s, sessionID)
		}
		s, err := m.svc.Get(ctx, sessionID)
		adopted := err == nil
		if !adopted && !isNotFound(err) {
			return nil, err
		}
		if !adopted {
			if s, err = m.svc.Create(ctx, m.agentID); err != nil {
				return nil, err
			}
		}
		if err := m.store.Create(ctx, sessionID, s.ID); err != nil {
			if !adopted {
				_ = m.svc.Delete(ctx, s.ID)
			}
			if errors.Is(err, engine.ErrConflict) {
				continue // another creator won: use theirs
			}
			return nil, err
		}
		return s, m.tag(ctx, s, sessionID)
	}
}

// tag writes the backend session id into a session just mapped, so that
// the Plugin finds its room from the first turn on.
func (m roomSessions) tag(ctx context.Context, s *runtime.Session, sessionID string) error {
	if s.State == nil {
		s.State = map[string]any{}
	}
	if s.State[StateKeySession] == sessionID {
		return nil
	}
	s.State[StateKeySession] = sessionID
	return m.svc.Update(ctx, s)
}

func isNotFound(err error) bool {
	var ce *core.Error
	return errors.As(err, &ce) && ce.Code == core.ErrNotFound
}
