package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Room is what the rooms bucket stores per room sid: the pure lifecycle
// state plus the processor's bookkeeping. It is only ever written with
// compare-and-set on the revision it was read at (Rooms.Update).
type Room struct {
	State lifecycle.State `json:"s"`
	// TraceParent is the W3C traceparent of the span that first stored the
	// room: the room's trace, which later events, the report and agent
	// turns link to.
	TraceParent string `json:"tp,omitempty"`
	// Pending lists, per applied event id, the hooks that have not succeeded
	// yet. An entry disappears once they all have.
	Pending map[string]HookNames `json:"p,omitempty"`
	// FirstSeenMs is when this receiver first saw the room (processing
	// clock): the start of MaxSessionAge.
	FirstSeenMs int64 `json:"fs"`
	// FinalizeDueMs is when the report may be produced (room_finished seen
	// plus the grace period); 0 until room_finished.
	FinalizeDueMs int64 `json:"due,omitempty"`
	// EgressDueMs is how long the report may wait for the room's egresses
	// to end (room_finished's receipt plus the egress wait); 0 until
	// room_finished, and in records written before the wait existed.
	EgressDueMs int64 `json:"egd,omitempty"`
	// Reported is set, by exactly one compare-and-set, when the final report
	// was fixed; Report holds it.
	Reported bool               `json:"rep,omitempty"`
	Report   *lifecycle.Session `json:"report,omitempty"`
	// EndedPending are the OnSessionEnded hooks not yet succeeded; Delivered
	// is set once the report is stored, published and handed to them.
	EndedPending HookNames `json:"ep,omitempty"`
	Delivered    bool      `json:"del,omitempty"`
	// EndedFailures counts the report's failed hook rounds in a row.
	EndedFailures int `json:"ef,omitempty"`
	// ReportStale is set when Report was amended (by events that arrived
	// after it was fixed) or may differ from the stored copy, and cleared
	// once the stored copy (Reports.Put) holds it.
	ReportStale bool `json:"rst,omitempty"`
	// AppliedMs is when each event id was applied (unix ms), for the
	// operator's console: kept in the record, which every applied event
	// writes anyway, rather than in a write of its own.
	AppliedMs map[string]int64 `json:"am,omitempty"`
	// HookOKMs is when each hook call succeeded (unix ms), keyed by
	// HookCallKey: also for the console, in the write that clears the call
	// from Pending; failed calls, rare, go to the trail stream.
	HookOKMs map[string]int64 `json:"hok,omitempty"`
}

// HookCallKey names one hook's call for one event in Room.HookOKMs.
func HookCallKey(eventID, hook string) string { return eventID + " " + hook }

// SplitHookCallKey is the inverse of HookCallKey (event ids have no space).
func SplitHookCallKey(k string) (eventID, hook string) {
	eventID, hook, _ = strings.Cut(k, " ")
	return eventID, hook
}

// HookNames are the durable names of the hooks a call is owed to. Versions
// before hooks had names stored registration positions, JSON numbers: they
// decode as LegacyHookName(n).
type HookNames []string

// UnmarshalJSON reads names, or the positions older versions stored.
func (h *HookNames) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err == nil {
		*h = names
		return nil
	}
	var positions []uint
	if err := json.Unmarshal(b, &positions); err != nil {
		return err
	}
	*h = make(HookNames, len(positions))
	for i, n := range positions {
		(*h)[i] = LegacyHookName(n)
	}
	return nil
}

// LegacyHookName is how a registration position stored by an older
// version reads.
func LegacyHookName(position uint) string { return "#" + strconv.FormatUint(uint64(position), 10) }

// Contains reports whether name is in h.
func (h HookNames) Contains(name string) bool {
	for _, x := range h {
		if x == name {
			return true
		}
	}
	return false
}

// Without returns h less the names in done.
func (h HookNames) Without(done HookNames) HookNames {
	out := make(HookNames, 0, len(h))
	for _, x := range h {
		if !done.Contains(x) {
			out = append(out, x)
		}
	}
	return out
}

// Rooms is the rooms bucket: room records by key (see Rooms.Key), written
// with compare-and-set.
type Rooms struct {
	kv jetstream.KeyValue
	// open is the open rooms index: a key per room record not yet
	// delivered (value empty), written before the record is created.
	open       jetstream.KeyValue
	openStream jetstream.Stream
	// beforeCreate, set by this package's tests, runs between the index
	// write and the record's creation.
	beforeCreate func(key string) error
	// project scopes the view (see Project); legacy is the store's legacy
	// window.
	project string
	legacy  *legacyWindow
}

// Key is the key the record of room sid lives at (its legacy key if only
// that holds it, see Lookup; in a project's view, see Rooms.Project).
func (r *Rooms) Key(ctx context.Context, sid string) (string, error) {
	return r.keyOf(ctx, sid, nil)
}

// RoomlessKey is the key of the record an event without a room keeps for
// its once-only hooks.
func (r *Rooms) RoomlessKey(ctx context.Context, eventID string) (string, error) {
	return ResolveKey(ctx, r.kv, "ev.", eventID)
}

// Get returns the record at key and its revision (nil and 0 when absent).
func (r *Rooms) Get(ctx context.Context, key string) (*Room, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var rec Room
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, err
	}
	return &rec, e.Revision(), nil
}

// EachOpen calls f for every room record not yet delivered, read through
// the open rooms index, so its cost follows open rooms, not history. An
// index entry whose room was delivered, or whose record is long gone (a
// crash between the two writes, or a record expired), is removed when
// seen. f's error stops the walk.
func (r *Rooms) EachOpen(ctx context.Context, f func(rec *Room) error) error {
	lister, err := r.open.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		if strings.HasPrefix(key, "meta.") { // openIndexBuilt, layoutKey
			continue
		}
		rec, _, err := r.Get(ctx, key)
		if err != nil {
			return err
		}
		switch {
		case rec == nil:
			if err := r.dropOrphan(ctx, key); err != nil {
				return err
			}
		case rec.Delivered:
			if err := r.unmarkOpen(ctx, key); err != nil {
				return err
			}
		case rec.State.RoomSID != "":
			if err := f(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// each calls f for every record of the bucket, whatever its state: a scan
// of all history, kept for building the open rooms index once.
func (r *Rooms) each(ctx context.Context, f func(key string, rec *Room) error) error {
	lister, err := r.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		if len(key) > MaxLegacyKeyLen {
			continue // written before keys were bounded, unsafe to read (LegacyKey)
		}
		rec, _, err := r.Get(ctx, key)
		if err != nil {
			return err
		}
		if rec == nil {
			continue // deleted while listing
		}
		if err := f(key, rec); err != nil {
			return err
		}
	}
	return nil
}

// isOpen: the record belongs in the open rooms index (a room, not yet
// delivered; records of roomless events are not rooms).
func (rec *Room) isOpen() bool { return rec.State.RoomSID != "" && !rec.Delivered }

// openIndexBuilt marks the open rooms index as complete. Room keys never
// contain a dot (see Key), so it cannot name a room.
const openIndexBuilt = "meta.built"

// orphanAfter is how old an open-index entry without a record must be to
// be removed: younger, its record may be about to be created. Tests
// shorten it.
var orphanAfter = time.Hour

// markOpen adds key to the open rooms index.
func (r *Rooms) markOpen(ctx context.Context, key string) error {
	_, err := r.open.Put(ctx, key, nil)
	return err
}

// unmarkOpen removes key from the open rooms index. A purge of its subject
// rather than a KV delete: a delete leaves a marker that every listing
// would still read.
func (r *Rooms) unmarkOpen(ctx context.Context, key string) error {
	err := r.openStream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+BucketOpen+"."+key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

// dropOrphan removes the index entry of a record that does not exist, if
// the entry is old enough that no write of the record is under way.
func (r *Rooms) dropOrphan(ctx context.Context, key string) error {
	e, err := r.open.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil || time.Since(e.Created()) < orphanAfter {
		return err
	}
	return r.unmarkOpen(ctx, key)
}

// buildOpenIndex fills the open rooms index from a scan of every record,
// once: the first start of a version that keeps the index, on a store
// written by one that did not.
func (r *Rooms) buildOpenIndex(ctx context.Context, log *slog.Logger) error {
	_, err := r.open.Get(ctx, openIndexBuilt)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	scanned, open := 0, 0
	err = r.each(ctx, func(key string, rec *Room) error {
		scanned++
		if !rec.isOpen() {
			return nil
		}
		open++
		return r.markOpen(ctx, key)
	})
	if err != nil {
		return err
	}
	if scanned > 0 {
		log.Info("built the open rooms index from every stored record", "records", scanned, "open_rooms", open)
	}
	_, err = r.open.Put(ctx, openIndexBuilt, nil)
	return err
}

// ErrConflict means another worker or replica wrote the key first: reload
// and try again.
var ErrConflict = errors.New("revision conflict")

// put writes rec if the key is still at rev (0: must not exist yet).
func (r *Rooms) put(ctx context.Context, key string, rec *Room, rev uint64) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = r.kv.Create(ctx, key, b)
	} else {
		nrev, err = r.kv.Update(ctx, key, b, rev)
	}
	if isConflict(err) {
		return 0, ErrConflict
	}
	return nrev, err
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Update runs f on the current record (nil when absent) and writes the
// result with compare-and-set, retrying on conflicts. f returns nil to
// write nothing; it must not modify the record it is given. cache may be
// nil.
func (r *Rooms) Update(ctx context.Context, key string, cache *RoomCache, f func(rec *Room) (*Room, error)) (*Room, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cur, rev, cached := cache.Get(key)
		if !cached {
			var err error
			if cur, rev, err = r.Get(ctx, key); err != nil {
				return nil, err
			}
		}
		next, err := f(cur)
		if err != nil || next == nil {
			if !cached && cur != nil {
				cache.Put(key, cur, rev)
			}
			return cur, err
		}
		if cur == nil && next.isOpen() {
			// Indexed before it exists: a crash in between leaves an entry
			// without a record (skipped, later removed), never an open
			// room missing from the index.
			if err := r.markOpen(ctx, key); err != nil {
				return nil, err
			}
			if r.beforeCreate != nil {
				if err := r.beforeCreate(key); err != nil {
					return nil, err
				}
			}
		}
		nrev, err := r.put(ctx, key, next, rev)
		if errors.Is(err, ErrConflict) {
			cache.Drop(key)
			continue
		}
		if err != nil {
			cache.Drop(key)
			return nil, err
		}
		cache.Put(key, next, nrev)
		if next.Delivered && (cur == nil || !cur.Delivered) {
			// Best effort: an entry left behind is removed when listed.
			_ = r.unmarkOpen(ctx, key)
		}
		return next, nil
	}
}
