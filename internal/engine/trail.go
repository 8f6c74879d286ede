package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The trail keeps, per room sid, what happened to the room's events besides
// their effect on its state: when each was applied, duplicates and late
// arrivals, and every hook call with its error. The operator's console
// shows it next to the stored events; nothing reads it back to decide.
const (
	StreamTrail     = "LKWH_TRAIL"
	SubjectTrailAll = "lkwh.trail.>"
)

// TrailSubject is where the trail of room sid sid is kept.
func TrailSubject(sid string) string { return "lkwh.trail." + Token(sid) }

// Trail entry kinds.
const (
	TrailApplied    = "applied"     // the event changed the room's state
	TrailDuplicate  = "duplicate"   // a repeat, dropped at Stage (intake, store, process)
	TrailLate       = "late"        // arrived after the report was fixed
	TrailHook       = "hook"        // one hook call; Error empty when it succeeded
	TrailDeadLetter = "dead_letter" // stored in the DLQ
)

// TrailEntry is one fact of a room's trail.
type TrailEntry struct {
	Kind    string `json:"k"`
	EventID string `json:"id,omitempty"`
	Event   string `json:"ev,omitempty"`
	Stage   string `json:"st,omitempty"`
	Hook    string `json:"h,omitempty"`
	Error   string `json:"err,omitempty"`
	AtMs    int64  `json:"at"`
}

// At is the entry's time.
func (e TrailEntry) At() time.Time { return time.UnixMilli(e.AtMs).UTC() }

// Trail is the trail stream. Writes are asynchronous, on a JetStream
// context of their own, so that they never hold an event or a hook back
// nor take the distributor's window of pending writes.
type Trail struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Record appends e to the trail of room sid, without waiting for the
// store's acknowledgement: a crash right after may lose it (the trail is
// for reading, never for deciding). AtMs defaults to now.
func (t *Trail) Record(sid string, e TrailEntry) {
	if t == nil || sid == "" {
		return
	}
	if e.AtMs == 0 {
		e.AtMs = time.Now().UnixMilli()
	}
	msg := nats.NewMsg(TrailSubject(sid))
	msg.Data, _ = json.Marshal(e)
	_, _ = t.js.PublishMsgAsync(msg)
}

// Of returns up to limit entries of room sid's trail, oldest first. It
// reads the room's subject only (the stream's per-subject index).
func (t *Trail) Of(ctx context.Context, sid string, limit int) ([]TrailEntry, error) {
	var out []TrailEntry
	if limit <= 0 {
		return out, nil
	}
	err := eachOnSubject(ctx, t.stream, TrailSubject(sid), 0, func(m *jetstream.RawStreamMsg) bool {
		var e TrailEntry
		if json.Unmarshal(m.Data, &e) == nil {
			out = append(out, e)
		}
		return len(out) < limit
	})
	return out, err
}
