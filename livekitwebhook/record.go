package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// roomRecord is what the rooms bucket stores per room sid: the pure
// lifecycle state plus the processor's bookkeeping. It is only ever written
// with compare-and-set on the revision it was read at.
type roomRecord struct {
	State lifecycle.State `json:"s"`
	// Pending lists, per applied event id, the hooks that have not succeeded
	// yet. An entry disappears once they all have.
	Pending map[string]hookNames `json:"p,omitempty"`
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
	EndedPending hookNames `json:"ep,omitempty"`
	Delivered    bool      `json:"del,omitempty"`
}

// hookNames are the durable names of the hooks a call is owed to (see
// Hooks). Versions before hooks had names stored registration positions,
// JSON numbers: they decode as "#<n>" and are read through today's
// registration order, which is how those versions read them.
type hookNames []string

func (h *hookNames) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err == nil {
		*h = names
		return nil
	}
	var positions []uint
	if err := json.Unmarshal(b, &positions); err != nil {
		return err
	}
	*h = make(hookNames, len(positions))
	for i, n := range positions {
		(*h)[i] = legacyName(n)
	}
	return nil
}

func legacyName(position uint) string { return "#" + strconv.FormatUint(uint64(position), 10) }

// isLegacyName tells a position from an older version from a name.
func isLegacyName(name string) bool {
	if len(name) < 2 || name[0] != '#' {
		return false
	}
	_, err := strconv.ParseUint(name[1:], 10, 64)
	return err == nil
}

func (h hookNames) contains(name string) bool {
	for _, x := range h {
		if x == name {
			return true
		}
	}
	return false
}

// without returns h less the names in done.
func (h hookNames) without(done hookNames) hookNames {
	out := make(hookNames, 0, len(h))
	for _, x := range h {
		if !done.contains(x) {
			out = append(out, x)
		}
	}
	return out
}

// rooms wraps the rooms bucket with typed, revisioned access.
type rooms struct{ kv jetstream.KeyValue }

// get returns the record at key and its revision (0 when absent).
func (r rooms) get(ctx context.Context, key string) (*roomRecord, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var rec roomRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, err
	}
	return &rec, e.Revision(), nil
}

// each calls f for every room record (records without a room, kept only for
// once-only hooks of roomless events, are skipped). A record deleted while
// listing is skipped; f's error stops the walk.
func (r rooms) each(ctx context.Context, f func(rec *roomRecord) error) error {
	lister, err := r.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		if len(key) > engine.MaxLegacyKeyLen {
			continue // written before keys were bounded, unsafe to read (engine.LegacyKey)
		}
		rec, _, err := r.get(ctx, key)
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

// errConflict means another worker or replica wrote the key first: reload
// and try again.
var errConflict = errors.New("revision conflict")

// put writes rec if the key is still at rev (0: must not exist yet).
func (r rooms) put(ctx context.Context, key string, rec *roomRecord, rev uint64) (uint64, error) {
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
		return 0, errConflict
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

// update runs f on the current record (nil when absent) and writes the
// result with compare-and-set, retrying on conflicts. f returns nil to write
// nothing; it must not modify the record it is given. cache may be nil.
func (r rooms) update(ctx context.Context, key string, cache *recordCache, f func(rec *roomRecord) (*roomRecord, error)) (*roomRecord, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cur, rev, cached := cache.get(key)
		if !cached {
			var err error
			if cur, rev, err = r.get(ctx, key); err != nil {
				return nil, err
			}
		}
		next, err := f(cur)
		if err != nil || next == nil {
			if !cached && cur != nil {
				cache.put(key, cur, rev)
			}
			return cur, err
		}
		nrev, err := r.put(ctx, key, next, rev)
		if errors.Is(err, errConflict) {
			cache.drop(key)
			continue
		}
		if err != nil {
			cache.drop(key)
			return nil, err
		}
		cache.put(key, next, nrev)
		return next, nil
	}
}
