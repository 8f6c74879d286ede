package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names is the names bucket: room name -> current room sid, and backend
// session id -> room sid. Without a correlator a room's session id is its
// name, so "room.<name>" answers for the session too and "session.<id>"
// is written only for a session id that differs from its room's name (or
// to keep an older session findable, see Index).
type Names struct {
	kv    jetstream.KeyValue
	rooms *Rooms
	// project scopes the view (see Project); legacy is the store's legacy
	// window.
	project string
	legacy  *legacyWindow
}

// RoomSID returns the current room sid of a room name (ok false: unknown).
func (n *Names) RoomSID(ctx context.Context, roomName string) (sid string, ok bool, err error) {
	return n.get(ctx, "room.", roomName)
}

// SessionRoomSID returns the room sid of the latest session with a backend
// session id: its own entry, else the room named like it if that room's
// session id is the name.
func (n *Names) SessionRoomSID(ctx context.Context, sessionID string) (sid string, ok bool, err error) {
	if sid, ok, err = n.get(ctx, "session.", sessionID); ok || err != nil {
		return sid, ok, err
	}
	if sid, ok, err = n.RoomSID(ctx, sessionID); !ok || err != nil {
		return "", false, err
	}
	if named, err := n.namedSession(ctx, sid, sessionID); !named || err != nil {
		return "", false, err
	}
	return sid, true, nil
}

// namedSession reports whether the record of room sid has session id id.
func (n *Names) namedSession(ctx context.Context, sid, id string) (bool, error) {
	key, err := n.rooms.Key(ctx, sid)
	if err != nil {
		return false, err
	}
	rec, _, err := n.rooms.Get(ctx, key)
	return rec != nil && rec.State.SessionID == id, err
}

func (n *Names) get(ctx context.Context, prefix, name string) (string, bool, error) {
	e, err := Lookup(ctx, n.kv, n.pfx()+prefix, name)
	if n.project != "" && errors.Is(err, jetstream.ErrKeyNotFound) && n.legacy.active() {
		e, err = Lookup(ctx, n.kv, prefix, name) // written before projects
	}
	switch {
	case err == nil:
		return string(e.Value()), true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", false, nil
	default:
		return "", false, err
	}
}

// Index records room name -> sid and session id -> sid. The caller writes
// it only when they change (a room seen first, or remapped), before the
// room's record, so that a room's record is never stored without them.
//
// A session id equal to the room name is served by "room.<name>" (see
// SessionRoomSID): its own entry is written only if one exists already
// and names another room (it would shadow the room entry). Before
// "room.<name>" moves to a room whose session id differs, the session it
// served keeps its answer in an entry of its own.
func (n *Names) Index(ctx context.Context, roomName, sessionID, sid string) error {
	if sessionID == roomName {
		if err := n.putIfChanged(ctx, "session.", sessionID, sid, true); err != nil {
			return err
		}
	} else if prev, ok, err := n.RoomSID(ctx, roomName); err != nil {
		return err
	} else if ok && prev != sid {
		named, err := n.namedSession(ctx, prev, roomName)
		if err == nil && named {
			err = n.putIfChanged(ctx, "session.", roomName, prev, false)
		}
		if err != nil {
			return err
		}
	}
	if _, err := n.kv.Put(ctx, n.pfx()+"room."+Key(roomName), []byte(sid)); err != nil {
		return err
	}
	if sessionID == roomName {
		return nil
	}
	_, err := n.kv.Put(ctx, n.pfx()+"session."+Key(sessionID), []byte(sid))
	return err
}

// putIfChanged writes prefix+name = sid unless it holds sid already; with
// onlyIfPresent, not when absent either.
func (n *Names) putIfChanged(ctx context.Context, prefix, name, sid string, onlyIfPresent bool) error {
	cur, ok, err := n.get(ctx, prefix, name)
	if err != nil || cur == sid || (!ok && onlyIfPresent) {
		return err
	}
	_, err = n.kv.Put(ctx, n.pfx()+prefix+Key(name), []byte(sid))
	return err
}

// BelugaMap is the Beluga bucket: backend session id -> Beluga session id.
type BelugaMap struct{ kv jetstream.KeyValue }

// BelugaEntry is one mapping, with what moving it needs.
type BelugaEntry struct {
	ID       string // the Beluga session id
	key      string
	revision uint64
}

// Get returns the mapping of a backend session id (ok false: none).
func (b *BelugaMap) Get(ctx context.Context, sessionID string) (BelugaEntry, bool, error) {
	e, err := Lookup(ctx, b.kv, "", sessionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return BelugaEntry{}, false, nil
	}
	if err != nil {
		return BelugaEntry{}, false, err
	}
	return BelugaEntry{ID: string(e.Value()), key: e.Key(), revision: e.Revision()}, true, nil
}

// Create maps sessionID to belugaID if no mapping exists; ErrConflict if
// one does (another creator won).
func (b *BelugaMap) Create(ctx context.Context, sessionID, belugaID string) error {
	_, err := b.kv.Create(ctx, Key(sessionID), []byte(belugaID))
	if isConflict(err) {
		return ErrConflict
	}
	return err
}

// Move points the mapping e read by Get at belugaID, if unchanged since.
func (b *BelugaMap) Move(ctx context.Context, e BelugaEntry, belugaID string) error {
	_, err := b.kv.Update(ctx, e.key, []byte(belugaID), e.revision)
	if isConflict(err) {
		return ErrConflict
	}
	return err
}

// Task is a timer kept in the tasks stream: the finalizer naks it until it
// is due, so it survives restarts and any replica may run it.
type Task struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	SID    string `json:"sid"`
	DueMs  int64  `json:"due_ms"`
	Reason string `json:"reason,omitempty"` // why an expire task closes the session
	// Project is the project whose view holds the room's record (""
	// before projects, see ProjectPrefix).
	Project string `json:"proj,omitempty"`
	// Tag tells apart tasks of one kind and room that must each run once
	// (see Schedule); empty for most.
	Tag string `json:"tag,omitempty"`
}

// Tasks is the tasks stream.
type Tasks struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Schedule stores t once per (project, kind, room sid, tag): the message id deduplicates
// repeated scheduling by retries and other replicas, so the first
// scheduling's header (trace context) is the one the task carries.
func (ts *Tasks) Schedule(ctx context.Context, t Task, header map[string]string) error {
	t.Key = ProjectPrefix(t.Project) + Key(t.SID)
	msg := nats.NewMsg(TaskSubject(t.Kind, t.SID))
	msg.Data, _ = json.Marshal(t)
	for k, v := range header {
		http.Header(msg.Header).Set(k, v) // canonical, as Msg.Header reads it
	}
	id := ProjectPrefix(t.Project) + t.Kind + "/" + t.SID
	if t.Tag != "" {
		id += "/" + t.Tag
	}
	_, err := ts.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamTasks))
	return err
}

// DeadLetters is the DLQ stream.
type DeadLetters struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	Seq      uint64
	EventID  string
	Event    string // event name, or the processor's name for a report task
	Error    string
	Attempts int
	At       time.Time
	Data     []byte
	header   nats.Header
}

// Put stores msg (an event, or a task when name says so) with its last
// error; id names it (an event id, a room sid). Deduplicated per stored
// message, so a retry after a failed ack stores it once.
func (d *DeadLetters) Put(ctx context.Context, msg *Msg, name, id string, cause error, attempts int) error {
	dl := DeadLetterMsg(name, msg.Data(), msg.m.Headers(), cause, attempts)
	if dl.Header.Get(HeaderEventID) == "" {
		dl.Header.Set(HeaderEventID, id)
	}
	dedupe := "dlq/" + id
	if msg.seq != 0 {
		dl.Header.Set(HeaderOrigSeq, strconv.FormatUint(msg.seq, 10))
		dedupe += "/" + strconv.FormatUint(msg.seq, 10)
	}
	_, err := d.js.PublishMsg(ctx, dl, jetstream.WithMsgID(dedupe))
	return err
}

// Each calls f with every stored dead letter, oldest first, until f
// returns false.
func (d *DeadLetters) Each(ctx context.Context, f func(DeadLetter) bool) error {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := d.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // replayed and deleted
		}
		if err != nil {
			return err
		}
		attempts, _ := strconv.Atoi(m.Header.Get(HeaderAttempts))
		if !f(DeadLetter{
			Seq: m.Sequence, EventID: m.Header.Get(HeaderEventID), Event: m.Header.Get(HeaderEvent),
			Error: m.Header.Get(HeaderError), Attempts: attempts, At: m.Time.UTC(),
			Data: m.Data, header: m.Header,
		}) {
			return nil
		}
	}
	return nil
}

// Replay publishes a dead letter back where it came from (an event onto
// its event subject; a task, named taskEvent, onto its task subject), then
// removes it from the DLQ.
func (d *DeadLetters) Replay(ctx context.Context, dl DeadLetter, taskEvent string) error {
	subject := EventSubject(dl.header.Get(HeaderRoomKey), dl.Event)
	if dl.Event == taskEvent {
		var t Task
		if err := json.Unmarshal(dl.Data, &t); err != nil {
			return fmt.Errorf("dead letter %d: %w", dl.Seq, err)
		}
		subject = TaskSubject(t.Kind, t.SID)
	}
	msg := nats.NewMsg(subject)
	msg.Data = dl.Data
	for k, v := range dl.header {
		switch k {
		case HeaderError, HeaderAttempts, HeaderOrigSeq:
		default:
			if !strings.HasPrefix(k, "Nats-") {
				msg.Header[k] = v
			}
		}
	}
	// A fresh message id: the original id is still inside the dedupe
	// window and would be dropped as a duplicate.
	replayID := "replay/" + dl.EventID + "/" + strconv.FormatUint(dl.Seq, 10)
	if _, err := d.js.PublishMsg(ctx, msg, jetstream.WithMsgID(replayID)); err != nil {
		return err
	}
	if err := d.stream.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}

// Count is how many dead letters are stored.
func (d *DeadLetters) Count(ctx context.Context) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
