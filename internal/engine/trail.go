package engine

import (
	"context"
	"encoding/json"
	"errors"
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
	subject := TrailSubject(sid)
	for seq := uint64(1); len(out) < limit; {
		m, err := t.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, err
		}
		seq = m.Sequence + 1
		var e TrailEntry
		if json.Unmarshal(m.Data, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// StoredEvent is one event as the events stream holds it: the exact body
// LiveKit signed, and when it was stored.
type StoredEvent struct {
	Seq      uint64
	StoredAt time.Time
	ID       string
	Event    string
	RoomSID  string // "" when the event named no room sid
	Body     []byte
}

// OfRoom returns up to limit stored events of room name roomName that name
// room sid sid or no sid at all, in stream order. It reads the room name's
// subjects only.
func (ev *Events) OfRoom(ctx context.Context, roomName, sid string, limit int) ([]StoredEvent, error) {
	var out []StoredEvent
	for _, subject := range RoomEventsSubjects(roomName) {
		for seq := uint64(1); len(out) < limit; {
			m, err := ev.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return out, err
			}
			seq = m.Sequence + 1
			s := m.Header.Get(HeaderRoomSID)
			if s != "" && s != sid {
				continue
			}
			out = append(out, StoredEvent{Seq: m.Sequence, StoredAt: m.Time.UTC(), ID: m.Header.Get(HeaderEventID),
				Event: m.Header.Get(HeaderEvent), RoomSID: s, Body: m.Data})
		}
	}
	return out, nil
}

// Before calls f with published reports older than stream sequence before
// (0: from the newest), newest first, until f returns false or none is
// left. Each is one direct read by sequence: the cost follows what f takes,
// not history, so a page of a long history costs what its first page does.
func (rs *Reports) Before(ctx context.Context, before uint64, f func(seq uint64, at time.Time, report []byte) bool) error {
	info, err := rs.stream.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if before != 0 && before-1 < last {
		last = before - 1
	}
	for seq := last; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := rs.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !f(seq, m.Time.UTC(), m.Data) {
			return nil
		}
	}
	return nil
}

// CountSince is how many reports were published at or after t: a binary
// search over the stream's sequences by message time (about log2 of the
// reports held, in direct reads), never a scan.
func (rs *Reports) CountSince(ctx context.Context, t time.Time) (int, error) {
	info, err := rs.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	st := info.State
	if st.Msgs == 0 || st.LastTime.Before(t) {
		return 0, nil
	}
	lo, hi := st.FirstSeq, st.LastSeq // the answer: the first seq at or after t, in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := rs.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(SubjectReportsAll))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, err
		}
		if m.Time.Before(t) {
			lo = m.Sequence + 1
		} else {
			hi = mid
		}
	}
	return int(st.LastSeq - lo + 1), nil
}

// Count is how many dead letters are stored.
func (d *DeadLetters) Count(ctx context.Context) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
