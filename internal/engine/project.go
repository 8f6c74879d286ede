package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Projects. Several LiveKit projects (each its own signing key) may post to
// one receiver, and their room names (and so session ids) overlap. Each
// project keeps its room records, name and session index entries, finished
// marks and open-index entries under a prefix of its own (ProjectPrefix):
// Rooms.Project and Names.Project are views scoped to one project. The
// project "" is the layout of versions before projects (no prefix): events
// journaled by them, and events without a signing key (legacy signatures),
// are handled there.
//
// Upgrade: a store written before projects holds unprefixed entries. For
// a while after the first start of this version on such a store (the
// legacy window, see legacyWindow), a project-scoped lookup that misses
// falls back to the unprefixed entry, so a room open across the upgrade
// continues in its record and old sessions are still found. On a store
// that was empty at that start the window is closed and no fallback read
// is ever made.

// ProjectPrefix is the key prefix of a project's entries ("" for the
// project ""). Room keys (see Key) never contain a dot, so a prefixed key
// never equals an unprefixed one, nor meta entries.
func ProjectPrefix(project string) string {
	if project == "" {
		return ""
	}
	return "p." + Key(project) + "."
}

// legacyWindow says whether unprefixed entries may still be live.
type legacyWindow struct{ untilMs atomic.Int64 }

func (w *legacyWindow) active() bool {
	return w != nil && time.Now().UnixMilli() < w.untilMs.Load()
}

// layoutKey, in the open rooms bucket (which has no TTL), records when
// this version first ran on the store and whether entries of older
// versions were there: "projects <unix ms> legacy" or "projects <unix ms>".
const layoutKey = "meta.layout"

// openLegacyWindow reads or writes the layout record. Unprefixed entries
// live at most RecordTTL after their last write, and a room open at the
// upgrade is written for at most its max session age (below RecordTTL)
// more: the window is twice RecordTTL from the first start.
func (e *Engine) openLegacyWindow(ctx context.Context) (*legacyWindow, error) {
	w := &legacyWindow{}
	for range 3 {
		entry, err := e.open.Get(ctx, layoutKey)
		if err == nil {
			f := strings.Fields(string(entry.Value()))
			if len(f) == 3 && f[2] == "legacy" {
				since, _ := strconv.ParseInt(f[1], 10, 64)
				w.untilMs.Store(since + 2*e.cfg.RecordTTL.Milliseconds())
			}
			return w, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		legacy := false
		for _, kv := range []jetstream.KeyValue{e.rooms, e.names} {
			st, err := kv.Status(ctx)
			if err != nil {
				return nil, err
			}
			legacy = legacy || st.Values() > 0
		}
		v := "projects " + strconv.FormatInt(time.Now().UnixMilli(), 10)
		if legacy {
			v += " legacy"
		}
		if _, err := e.open.Create(ctx, layoutKey, []byte(v)); err != nil && !isConflict(err) {
			return nil, err
		}
		// Created, or another replica did first: read what is stored.
	}
	return w, nil
}

// LegacyWindowOpen reports whether project-scoped lookups still fall back
// to entries written before projects.
func (e *Engine) LegacyWindowOpen() bool { return e.legacy.active() }

// Project is the view of the rooms bucket scoped to project (see
// ProjectPrefix).
func (r *Rooms) Project(project string) *Rooms {
	c := *r
	c.project = project
	return &c
}

// ProjectName is the project of the view.
func (r *Rooms) ProjectName() string { return r.project }

// keyOf is the key of sid's record in this view: prefixed, unless only
// the unprefixed (legacy) key holds it during the legacy window. Reads
// found records into cache (which may be nil), so that the caller's
// Update does not read them again.
func (r *Rooms) keyOf(ctx context.Context, sid string, cache *RoomCache) (string, error) {
	if r.project == "" {
		return ResolveKey(ctx, r.kv, "", sid)
	}
	own := ProjectPrefix(r.project) + Key(sid)
	if !r.legacy.active() {
		return own, nil
	}
	if _, _, ok := cache.Get(own); ok {
		return own, nil
	}
	rec, rev, err := r.Get(ctx, own)
	if err != nil {
		return "", err
	}
	if rec != nil {
		cache.Put(own, rec, rev)
		return own, nil
	}
	legacy, err := ResolveKey(ctx, r.kv, "", sid)
	if err != nil {
		return "", err
	}
	if _, _, ok := cache.Get(legacy); ok {
		return legacy, nil
	}
	rec, rev, err = r.Get(ctx, legacy)
	if err != nil {
		return "", err
	}
	if rec != nil {
		cache.Put(legacy, rec, rev)
		return legacy, nil
	}
	return own, nil
}

// KeyCached is Key, reading through cache (see keyOf).
func (r *Rooms) KeyCached(ctx context.Context, sid string, cache *RoomCache) (string, error) {
	return r.keyOf(ctx, sid, cache)
}

// Project is the view of the names bucket scoped to project (see
// ProjectPrefix); its rooms are scoped too.
func (n *Names) Project(project string) *Names {
	c := *n
	c.project = project
	c.rooms = n.rooms.Project(project)
	return &c
}

// pfx is the view's key prefix.
func (n *Names) pfx() string { return ProjectPrefix(n.project) }

// finishedKeys are the keys WatchFinishedAny watches for roomName: the
// unprefixed one and every project's.
func finishedKeys(roomName string) []string {
	k := Key(roomName)
	return []string{"finished." + k, "p.*.finished." + k}
}
