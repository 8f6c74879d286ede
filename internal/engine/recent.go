package engine

import "sync"

// recentIDs remembers the last ids this process journaled, so that a retry
// of an event it already stored (LiveKit retries the same URL) is answered
// "duplicate" at once. It is only a fast answer: the exact deduplication is
// the events stream's, across replicas and restarts.
type recentIDs struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string // insertion order; the oldest is evicted first
	next int
}

func newRecentIDs(capacity int) *recentIDs {
	return &recentIDs{set: make(map[string]struct{}, capacity), ring: make([]string, capacity)}
}

func (r *recentIDs) has(id string) bool {
	r.mu.Lock()
	_, ok := r.set[id]
	r.mu.Unlock()
	return ok
}

// addAll remembers the ids of a written envelope (one lock per envelope).
func (r *recentIDs) addAll(batch []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range batch {
		r.addLocked(p.a.ID)
	}
}

func (r *recentIDs) addLocked(id string) {
	if id == "" {
		return
	}
	if _, ok := r.set[id]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}
