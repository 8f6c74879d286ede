package livekitwebhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// Several LiveKit projects on one receiver. Each project signs its webhooks
// with its own API key; the key that verified an event (never its secret)
// is journaled with it (engine.HeaderAPIKey), and its project keeps its
// rooms, name and session index entries, finished marks and open-index
// entries apart from every other project's (engine.ProjectPrefix): two
// projects each with a room "call-1" have two sessions. A project is named
// by Config.Projects (key -> name), else by its key. Keys given the same
// name are one project: map the old and the new key of a rotation (or an
// egress-specific signing key) to one name so that a room's events stay in
// one session whichever of them signed.

// ErrAmbiguousSession means a session id names sessions of several
// projects: ask again naming the project (SessionByIDInProject, or
// ?project= on the sessions API, which answers 409).
var ErrAmbiguousSession = errors.New("livekitwebhook: session id is used by several projects")

// AmbiguousSessionError is the error of a session lookup without a project
// when several projects have a session of that id.
type AmbiguousSessionError struct {
	SessionID string
	Projects  []string // sorted
}

func (e *AmbiguousSessionError) Error() string {
	return fmt.Sprintf("livekitwebhook: session id %q is used by projects %q: name the project", e.SessionID, e.Projects)
}

// Unwrap returns ErrAmbiguousSession.
func (e *AmbiguousSessionError) Unwrap() error { return ErrAmbiguousSession }

// SessionByIDInProject is SessionByID within one project (a project name,
// or one of its API keys). Sessions stored before projects (which have
// none) are found from any project.
func (r *Receiver) SessionByIDInProject(ctx context.Context, project, sessionID string) (Session, bool, error) {
	rec, err := r.findSession(ctx, sessionID, project)
	if err != nil || rec == nil {
		return Session{}, false, err
	}
	return viewOf(rec), true, nil
}

// findSession returns the record of the latest session with sessionID in
// project q ("" for any: an *AmbiguousSessionError when several projects
// have one), nil when there is none.
func (r *Receiver) findSession(ctx context.Context, sessionID, q string) (*roomRecord, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	projects := r.projects.all
	if q != "" {
		projects = []string{r.projects.resolve(q)}
	}
	var found []*roomRecord
	var legacy *roomRecord // stored without a project
	seen := map[string]bool{}
	for _, p := range projects {
		rec, err := recordInProject(ctx, eng, p, sessionID)
		if err != nil {
			return nil, err
		}
		// A lookup falls back to entries written before projects: one of
		// them belongs to whichever project continued it, if any.
		if rec == nil || seen[rec.State.RoomSID] || (rec.State.Project != "" && rec.State.Project != p) {
			continue
		}
		seen[rec.State.RoomSID] = true
		if rec.State.Project == "" {
			legacy = rec
			continue
		}
		found = append(found, rec)
	}
	if len(found) == 0 && legacy == nil && q == "" {
		// Before projects, or legacy signatures.
		rec, err := recordInProject(ctx, eng, "", sessionID)
		if err != nil {
			return nil, err
		}
		legacy = rec
	}
	if len(found) == 0 && legacy != nil {
		// A session of a project is newer than one stored without: as
		// before projects, the latest session of an id answers.
		found = append(found, legacy)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	e := &AmbiguousSessionError{SessionID: sessionID}
	for _, rec := range found {
		e.Projects = append(e.Projects, cmp.Or(rec.State.Project, rec.State.APIKey))
	}
	slices.Sort(e.Projects)
	return nil, e
}

// recordInProject reads the record of the latest session with sessionID in
// project's view.
func recordInProject(ctx context.Context, eng *engine.Engine, project, sessionID string) (*roomRecord, error) {
	sid, ok, err := eng.Names.Project(project).SessionRoomSID(ctx, sessionID)
	if err != nil || !ok {
		return nil, err
	}
	return roomInProject(ctx, eng, project, sid)
}

// roomInProject reads the record of room sid in project's view (nil when
// there is none).
func roomInProject(ctx context.Context, eng *engine.Engine, project, sid string) (*roomRecord, error) {
	rooms := eng.Rooms.Project(project)
	key, err := rooms.Key(ctx, sid)
	if err != nil {
		return nil, err
	}
	rec, _, err := rooms.Get(ctx, key)
	return rec, err
}

// roomInAnyProject reads the record of room sid from the first of projects
// that has it (nil when none has).
func roomInAnyProject(ctx context.Context, eng *engine.Engine, projects []string, sid string) (*roomRecord, error) {
	for _, p := range projects {
		rec, err := roomInProject(ctx, eng, p, sid)
		if err != nil || (rec != nil && rec.State.RoomSID != "") {
			return rec, err
		}
	}
	return nil, nil
}

// roomInProjects returns the session of the latest room sid seen under
// name, in project q or, for q "", in any (the one that ended last, else
// the one started last, when several projects have such a room).
func (r *Receiver) roomInProjects(ctx context.Context, name, q string) (Session, bool, error) {
	eng := r.engine()
	if eng == nil {
		return Session{}, false, ErrEngineUnavailable
	}
	projects := append(slices.Clone(r.projects.all), "")
	if q != "" {
		projects = []string{r.projects.resolve(q)}
	}
	var best Session
	var ok bool
	for _, p := range projects {
		sid, found, err := eng.Names.Project(p).RoomSID(ctx, name)
		if err != nil {
			return Session{}, false, err
		}
		if !found {
			continue
		}
		rec, err := roomInProject(ctx, eng, p, sid)
		if err != nil {
			return Session{}, false, err
		}
		if rec == nil {
			continue
		}
		s := viewOf(rec)
		if !ok || later(s, best) {
			best, ok = s, true
		}
	}
	return best, ok, nil
}

// later orders sessions for roomInProjects: ended after open, then by end,
// then by start.
func later(a, b Session) bool {
	switch {
	case (a.EndedAt != nil) != (b.EndedAt != nil):
		return a.EndedAt != nil
	case a.EndedAt != nil && !a.EndedAt.Equal(*b.EndedAt):
		return a.EndedAt.After(*b.EndedAt)
	}
	return a.StartedAt.After(b.StartedAt)
}
