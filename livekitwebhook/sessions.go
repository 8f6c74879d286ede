package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// ActiveSessions returns the sessions not yet reported, newest first.
func (r *Receiver) ActiveSessions(ctx context.Context) ([]Session, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	out := []Session{}
	err := rooms{eng.Rooms}.each(ctx, func(rec *roomRecord) error {
		if !rec.Reported {
			out = append(out, sessionOf(rec.State.Session()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Session) int { return b.StartedAt.Compare(a.StartedAt) })
	return out, nil
}

// EndedSessions returns up to limit final reports, newest first. It reads
// the tail of the reports stream, so its cost follows limit, not history.
func (r *Receiver) EndedSessions(ctx context.Context, limit int) ([]Report, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	if limit <= 0 {
		limit = 100
	}
	info, err := eng.Reports.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []Report{}
	// Reports are published in finalization order, which follows ended_at
	// up to the grace period; read a margin and sort.
	want := limit*2 + 16
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < want; seq-- {
		m, err := eng.Reports.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rep Report
		if json.Unmarshal(m.Data, &rep) == nil {
			out = append(out, rep)
		}
	}
	slices.SortStableFunc(out, func(a, b Report) int {
		return cmp.Compare(endUnix(b), endUnix(a))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func endUnix(r Report) int64 {
	if r.EndedAt.IsZero() {
		return 0
	}
	return r.EndedAt.UnixNano()
}

// SessionByID returns the latest session (active, else reported) with the
// given backend session id.
func (r *Receiver) SessionByID(ctx context.Context, sessionID string) (Session, bool, error) {
	eng := r.engine()
	if eng == nil {
		return Session{}, false, ErrEngineUnavailable
	}
	e, err := engine.Lookup(ctx, eng.Names, "session.", sessionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	return r.SessionByRoomSID(ctx, string(e.Value()))
}

// SessionByRoomSID returns the session of one room sid.
func (r *Receiver) SessionByRoomSID(ctx context.Context, sid string) (Session, bool, error) {
	eng := r.engine()
	if eng == nil {
		return Session{}, false, ErrEngineUnavailable
	}
	key, err := engine.ResolveKey(ctx, eng.Rooms, "", sid)
	if err != nil {
		return Session{}, false, err
	}
	rec, _, err := rooms{eng.Rooms}.get(ctx, key)
	if err != nil || rec == nil {
		return Session{}, false, err
	}
	if rec.Reported && rec.Report != nil {
		return sessionOf(*rec.Report), true, nil
	}
	return sessionOf(rec.State.Session()), true, nil
}
