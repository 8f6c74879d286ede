package livekitwebhook

import (
	"maps"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// The room trail: what the console shows of each event beyond the event
// itself (duplicates, late events, dead letters, hook calls).

// trailOf is a trail entry about one event.
func trailOf(kind, id, event, stage string) engine.TrailEntry {
	return engine.TrailEntry{Kind: kind, EventID: id, Event: event, Stage: stage}
}

// trail records a fact of room sid's trail (see engine.Trail).
func (p *processor) trail(sid string, e engine.TrailEntry) { p.eng.Trail.Record(sid, e) }

// trailHook records one hook call of event id (err nil: it succeeded).
func (p *processor) trailHook(sid, id, event, hook string, err error) {
	e := engine.TrailEntry{Kind: engine.TrailHook, EventID: id, Event: event, Hook: hook}
	if err != nil {
		e.Error = err.Error()
	}
	p.trail(sid, e)
}

// withHookOK returns m with the successful calls of hooks for event id
// (eventSessionReport for the report's hooks) stamped now: the console's
// record of successes, kept in the record write that settles them rather
// than in a trail write per call.
func withHookOK(m map[string]int64, id string, hooks hookNames) map[string]int64 {
	keys := make([]string, len(hooks))
	for i, h := range hooks {
		keys[i] = engine.HookCallKey(id, h)
	}
	return stampedNow(m, keys...)
}

// stampedNow returns a copy of m (never written: it may be a cached
// record's) with keys set to now, unix ms; m itself when there is no key.
func stampedNow(m map[string]int64, keys ...string) map[string]int64 {
	if len(keys) == 0 {
		return m
	}
	out := make(map[string]int64, len(m)+len(keys))
	maps.Copy(out, m)
	now := time.Now().UnixMilli()
	for _, k := range keys {
		out[k] = now
	}
	return out
}
