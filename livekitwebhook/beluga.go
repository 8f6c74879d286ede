package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// belugaLink maps rooms to backend sessions and keeps their Beluga
// sessions: what event application and reports need of the Beluga wiring.
type belugaLink struct {
	correlator     Correlator
	sessions       runtime.SessionService // nil: no Beluga sessions
	store          *engine.BelugaMap      // backend session id -> Beluga session id
	agentID        string
	deleteSessions bool
}

// correlate sets the session id (and Beluga session) of a state the first
// time its room is seen, and again while it is unmapped and an event brings
// room metadata that may map it.
func (r belugaLink) correlate(ctx context.Context, s *lifecycle.State, ev *livekit.WebhookEvent) error {
	if s.SessionID != "" && !s.Unmapped {
		return nil
	}
	if s.SessionID != "" && (ev.Room == nil || ev.Room.Metadata == "") {
		return nil
	}
	info := RoomInfo{Name: s.RoomName, SID: s.RoomSID}
	if info.Name == "" {
		info.Name = lifecycle.RoomName(ev)
	}
	if ev.Room != nil {
		info.Metadata = ev.Room.Metadata
	}
	id, ok, err := r.correlator.Correlate(ctx, info)
	if err != nil {
		return fmt.Errorf("correlate room %q: %w", info.Name, err)
	}
	if !ok || id == "" {
		s.SessionID, s.Unmapped = info.Name, true
		if s.SessionID == "" {
			s.SessionID = s.RoomSID
		}
		return nil
	}
	s.SessionID, s.Unmapped = id, false
	if r.sessions != nil && s.BelugaSessionID == "" {
		bid, err := r.belugaSession(ctx, id, s.RoomName, s.RoomSID)
		if err != nil {
			return err
		}
		s.BelugaSessionID = bid
	}
	return nil
}

// belugaSession finds, adopts or creates the Beluga session of a backend
// session id (see roomSessions) and tags it with its room.
func (r belugaLink) belugaSession(ctx context.Context, sessionID, roomName, roomSID string) (string, error) {
	m := roomSessions{svc: r.sessions, store: r.store, agentID: r.agentID}
	s, err := m.session(ctx, sessionID)
	if err != nil {
		return "", err
	}
	return s.ID, r.tagBelugaSession(ctx, s.ID, roomName, roomSID, sessionID)
}

func (r belugaLink) tagBelugaSession(ctx context.Context, id, roomName, roomSID, sessionID string) error {
	svc := r.sessions
	s, err := svc.Get(ctx, id)
	if err != nil {
		return err
	}
	if s.State == nil {
		s.State = map[string]any{}
	}
	s.State[StateKeyRoomName] = roomName
	s.State[StateKeyRoomSID] = roomSID
	s.State[StateKeySession] = sessionID
	return svc.Update(ctx, s)
}

// finish writes the final report into the Beluga session (as a
// JSON-shaped map) and deletes the session when configured.
func (r belugaLink) finish(ctx context.Context, rep Report) error {
	svc := r.sessions
	if svc == nil || rep.BelugaSessionID == "" {
		return nil
	}
	s, err := svc.Get(ctx, rep.BelugaSessionID)
	if err != nil {
		var ce *core.Error
		if errors.As(err, &ce) && ce.Code == core.ErrNotFound {
			return nil // already deleted (a retry after delete, or expired)
		}
		return err
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if s.State == nil {
		s.State = map[string]any{}
	}
	s.State[StateKeyReport] = m
	if err := svc.Update(ctx, s); err != nil {
		return err
	}
	if r.deleteSessions {
		return svc.Delete(ctx, s.ID)
	}
	return nil
}
