package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Keys written into a Beluga Session.State.
const (
	StateKeyRoomName = "livekit.room_name"
	StateKeyRoomSID  = "livekit.room_sid"
	StateKeySession  = "livekit.session_id"
	StateKeyReport   = "livekit.report"
)

// correlate sets the session id (and Beluga session) of a state the first
// time its room is seen, and again while it is unmapped and an event brings
// room metadata that may map it.
func (r *Receiver) correlate(ctx context.Context, s *lifecycle.State, ev *livekit.WebhookEvent) error {
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
	if r.opts.sessions != nil && s.BelugaSessionID == "" {
		bid, err := r.belugaSession(ctx, id, s.RoomName, s.RoomSID)
		if err != nil {
			return err
		}
		s.BelugaSessionID = bid
	}
	return nil
}

// belugaSession finds or creates the Beluga session of a backend session id.
// The mapping lives in the engine, so restarts and replicas agree; a race
// between two creators is settled by the bucket's create-if-absent.
func (r *Receiver) belugaSession(ctx context.Context, sessionID, roomName, roomSID string) (string, error) {
	eng := r.engine()
	svc := r.opts.sessions
	if e, ok, err := eng.Beluga.Get(ctx, sessionID); err != nil {
		return "", err
	} else if ok {
		if s, err := svc.Get(ctx, e.ID); err == nil {
			id := e.ID
			return id, r.tagBelugaSession(ctx, s.ID, roomName, roomSID, sessionID)
		}
		// The mapped session is gone (an in-memory service restarted):
		// create a new one and move the mapping.
		sess, err := svc.Create(ctx, r.cfg.BelugaAgentID)
		if err != nil {
			return "", err
		}
		if err := eng.Beluga.Move(ctx, e, sess.ID); err != nil {
			_ = svc.Delete(ctx, sess.ID)
			return "", err
		}
		return sess.ID, r.tagBelugaSession(ctx, sess.ID, roomName, roomSID, sessionID)
	}
	sess, err := svc.Create(ctx, r.cfg.BelugaAgentID)
	if err != nil {
		return "", err
	}
	if err := eng.Beluga.Create(ctx, sessionID, sess.ID); err != nil {
		_ = svc.Delete(ctx, sess.ID)
		if errors.Is(err, engine.ErrConflict) {
			return r.belugaSession(ctx, sessionID, roomName, roomSID)
		}
		return "", err
	}
	return sess.ID, r.tagBelugaSession(ctx, sess.ID, roomName, roomSID, sessionID)
}

func (r *Receiver) tagBelugaSession(ctx context.Context, id, roomName, roomSID, sessionID string) error {
	svc := r.opts.sessions
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

// finishBelugaSession writes the final report into the Beluga session (as a
// JSON-shaped map) and deletes the session when configured.
func (r *Receiver) finishBelugaSession(ctx context.Context, rep Report) error {
	svc := r.opts.sessions
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
	if r.cfg.DeleteBelugaSessions {
		return svc.Delete(ctx, s.ID)
	}
	return nil
}

// callOnError tells every OnError hook about a failure.
func (r *Receiver) callOnError(ctx context.Context, ev *livekit.WebhookEvent, err error) {
	for _, h := range r.hooks.all {
		if h.OnError != nil {
			h.OnError(ctx, ev, err)
		}
	}
}
