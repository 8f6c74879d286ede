package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Room is what the rooms bucket stores per room sid: the pure lifecycle
// state plus the processor's bookkeeping. It is only ever written with
// compare-and-set on the revision it was read at (Rooms.Update).
type Room struct {
	State lifecycle.State `json:"s"`
	// Pending lists, per applied event id, the hooks that have not succeeded
	// yet. An entry disappears once they all have.
	Pending map[string]HookNames `json:"p,omitempty"`
	// FirstSeenMs is when this receiver first saw the room (processing
	// clock): the start of MaxSessionAge.
	FirstSeenMs int64 `json:"fs"`
	// FinalizeDueMs is when the report may be produced (room_finished seen
	// plus the grace period); 0 until room_finished.
	FinalizeDueMs int64 `json:"due,omitempty"`
	// Reported is set, by exactly one compare-and-set, when the final report
	// was fixed; Report holds it.
	Reported bool               `json:"rep,omitempty"`
	Report   *lifecycle.Session `json:"report,omitempty"`
	// EndedPending are the OnSessionEnded hooks not yet succeeded; Delivered
	// is set once the report is stored, published and handed to them.
	EndedPending HookNames `json:"ep,omitempty"`
	Delivered    bool      `json:"del,omitempty"`
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
type Rooms struct{ kv jetstream.KeyValue }

// Key is the key the record of room sid lives at (its legacy key if only
// that holds it, see Lookup).
func (r *Rooms) Key(ctx context.Context, sid string) (string, error) {
	return ResolveKey(ctx, r.kv, "", sid)
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

// Each calls f for every room record (records without a room, kept only
// for once-only hooks of roomless events, are skipped). A record deleted
// while listing is skipped; f's error stops the walk.
func (r *Rooms) Each(ctx context.Context, f func(rec *Room) error) error {
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
		if rec == nil || rec.State.RoomSID == "" {
			continue
		}
		if err := f(rec); err != nil {
			return err
		}
	}
	return nil
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
		return next, nil
	}
}
