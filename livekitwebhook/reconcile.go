package livekitwebhook

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// RoomLister lists the rooms LiveKit has open; roomservice.New gives one
// backed by LiveKit's RoomService API.
type RoomLister interface {
	ListRooms(ctx context.Context) ([]*livekit.Room, error)
}

// ReconcileStatus is the outcome of the latest reconciliation pass.
type ReconcileStatus struct {
	At time.Time `json:"at"`
	// LiveKitRooms is how many rooms LiveKit listed.
	LiveKitRooms int `json:"livekit_rooms"`
	// Closed are room sids whose sessions are closed because LiveKit no
	// longer has the room: each is reported as expired once LiveKit's own
	// retries of a late room_finished are over (closeDelay), unless that
	// room_finished arrives first.
	Closed []string `json:"closed"`
	// Unknown are rooms LiveKit has that the receiver never heard of
	// (their webhooks were lost, or point elsewhere).
	Unknown []UnknownRoom `json:"unknown"`
	Error   string        `json:"error,omitempty"`
}

// UnknownRoom is a room LiveKit has open and the receiver has no state for.
type UnknownRoom struct {
	SID  string `json:"sid"`
	Name string `json:"name"`
}

// reconcileReason is recorded in the report of a session it closes.
const reconcileReason = "room no longer listed by LiveKit RoomService (room_finished not received)"

// DefaultReconcileCloseDelay is how long a session whose room is gone waits
// for its room_finished: LiveKit retries for up to 1+2+4+8 s and drops
// events queued for 30 s, so past this it will not come.
const DefaultReconcileCloseDelay = 45 * time.Second

// reconciler catches what LiveKit's delivery dropped: it never replays, so a
// lost room_finished leaves a session open until MaxSessionAge.
type reconciler struct {
	log      *slog.Logger
	tel      *telemetry
	rooms    *engine.Rooms
	schedule func(context.Context, *roomRecord, task) error
	lister   RoomLister
	interval time.Duration
	// minAge protects rooms whose first webhooks are in flight while the
	// listing is taken.
	minAge time.Duration
	// closeDelay: see DefaultReconcileCloseDelay.
	closeDelay time.Duration
	// project is the project whose rooms the lister lists ("" for every
	// project: one project configured, or a lister that does not say);
	// projects are all configured ones (see reconcileProject).
	project  string
	projects []string

	mu   sync.Mutex
	last ReconcileStatus
}

func (c *reconciler) run(ctx context.Context) {
	every(ctx, c.interval, func() {
		st := c.pass(ctx)
		c.mu.Lock()
		c.last = st
		c.mu.Unlock()
	})
}

// pass lists LiveKit's rooms and the receiver's open sessions, closes the
// sessions whose room is gone and flags rooms the receiver never saw.
func (c *reconciler) pass(ctx context.Context) ReconcileStatus {
	st := ReconcileStatus{At: time.Now().UTC(), Closed: []string{}, Unknown: []UnknownRoom{}}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	rooms, err := c.lister.ListRooms(lctx)
	cancel()
	if err != nil {
		st.Error = err.Error()
		c.log.Warn("reconcile: list rooms", "error", err.Error())
		return st
	}
	st.LiveKitRooms = len(rooms)
	open := make(map[string]*livekit.Room, len(rooms))
	for _, room := range rooms {
		open[room.Sid] = room
	}
	known := map[string]bool{}
	cutoff := time.Now().Add(-c.minAge).UnixMilli()
	err = c.rooms.EachOpen(ctx, func(rec *roomRecord) error {
		known[rec.State.RoomSID] = true
		if c.project != "" && rec.State.Project != "" && rec.State.Project != c.project {
			return nil // another project's room: this LiveKit does not list it
		}
		if rec.Reported || rec.State.Finished() || open[rec.State.RoomSID] != nil || rec.FirstSeenMs > cutoff {
			return nil
		}
		due := time.Now().Add(c.closeDelay).UnixMilli()
		if err := c.schedule(ctx, rec, task{Kind: taskExpire, Reason: reconcileReason, DueMs: due}); err != nil {
			return err
		}
		st.Closed = append(st.Closed, rec.State.RoomSID)
		return nil
	})
	if err != nil {
		// Without the whole list "unknown" would be wrong: report the error.
		st.Error = err.Error()
		return st
	}
	for sid, room := range open {
		if known[sid] || roomCreatedMs(room) > cutoff {
			continue // known, or so new that its room_started may be in flight
		}
		// A room reported already is known too (its record may be gone).
		if c.reported(ctx, sid) {
			continue
		}
		st.Unknown = append(st.Unknown, UnknownRoom{SID: sid, Name: room.Name})
		c.log.Warn("reconcile: LiveKit has a room the receiver never heard of", "room_sid", sid, "room_name", room.Name)
	}
	c.tel.reconcileClosed.Add(ctx, 0) // the series exists before the first close
	c.tel.reconcileUnknown.Record(ctx, int64(len(st.Unknown)), label("source", "roomservice"))
	if len(st.Closed) > 0 {
		c.log.Warn("reconcile: closed sessions whose room_finished never arrived", "room_sids", st.Closed)
	}
	return st
}

// reported tells whether the receiver has a record of room sid (one that
// EachOpen did not list: reported since).
func (c *reconciler) reported(ctx context.Context, sid string) bool {
	for _, p := range append(slices.Clone(c.projects), "") {
		rooms := c.rooms.Project(p)
		key, err := rooms.Key(ctx, sid)
		if err != nil {
			continue
		}
		if rec, _, err := rooms.Get(ctx, key); err == nil && rec != nil {
			return true
		}
	}
	return false
}

// reconcileProject is the project whose rooms l lists: a RoomLister that
// says which API key it lists with (roomservice.Lister does, through
// APIKey) reconciles that key's project only when several projects are
// configured, since another project's rooms are never in its listing.
// Otherwise every open room is reconciled, as with one project.
func reconcileProject(l RoomLister, projects projectSet) string {
	k, ok := l.(interface{ APIKey() string })
	if !ok || len(projects.all) < 2 {
		return ""
	}
	return projects.of(k.APIKey())
}

func roomCreatedMs(r *livekit.Room) int64 {
	if r.CreationTimeMs > 0 {
		return r.CreationTimeMs
	}
	return r.CreationTime * 1000
}
