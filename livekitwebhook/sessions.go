package livekitwebhook

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
)

// ActiveSessions returns the sessions not yet reported, newest first.
func (r *Receiver) ActiveSessions(ctx context.Context) ([]Session, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	out := []Session{}
	err := eng.Rooms.EachOpen(ctx, func(rec *roomRecord) error {
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
	return r.endedSessions(ctx, limit, nil)
}

// endedSessions is EndedSessions of the reports keep accepts (nil: all).
func (r *Receiver) endedSessions(ctx context.Context, limit int, keep func(*Report) bool) ([]Report, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	if limit <= 0 {
		limit = 100
	}
	out := []Report{}
	// Reports are published in finalization order, which follows ended_at
	// up to the grace period; read a margin and sort.
	want := limit*2 + 16
	err := eng.Reports.Tail(ctx, func(b []byte) bool {
		var rep Report
		if json.Unmarshal(b, &rep) == nil && (keep == nil || keep(&rep)) {
			out = append(out, rep)
		}
		return len(out) < want
	})
	if err != nil {
		return nil, err
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
// given backend session id, in whichever project has it. When several
// projects have one, the error is an *AmbiguousSessionError (errors.Is
// ErrAmbiguousSession): use SessionByIDInProject.
func (r *Receiver) SessionByID(ctx context.Context, sessionID string) (Session, bool, error) {
	return r.SessionByIDInProject(ctx, "", sessionID)
}

// SessionByRoomSID returns the session of one room sid (room sids are
// unique: every project is searched).
func (r *Receiver) SessionByRoomSID(ctx context.Context, sid string) (Session, bool, error) {
	eng := r.engine()
	if eng == nil {
		return Session{}, false, ErrEngineUnavailable
	}
	rec, err := roomInAnyProject(ctx, eng, r.projects.searchOrder(""), sid)
	if err != nil || rec == nil {
		return Session{}, false, err
	}
	return viewOf(rec), true, nil
}
