package engine

import "container/list"

// RoomCache is one worker's LRU of room records with their revisions. Events
// of a room go to one worker, so its cached record is usually current and the
// read before each compare-and-set can be skipped. A stale entry (another
// replica or the finalizer wrote since) only costs a conflict and a reload:
// the store's revision check stays the single source of truth.
type RoomCache struct {
	cap   int
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key string
	rec *Room
	rev uint64
}

// NewRoomCache keeps up to capacity records.
func NewRoomCache(capacity int) *RoomCache {
	return &RoomCache{cap: capacity, ll: list.New(), items: map[string]*list.Element{}}
}

// Get returns the cached record of key and its revision. Nil-safe.
func (c *RoomCache) Get(key string) (*Room, uint64, bool) {
	if c == nil {
		return nil, 0, false
	}
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		ce := e.Value.(*cacheEntry)
		return ce.rec, ce.rev, true
	}
	return nil, 0, false
}

// Put caches rec at rev. Nil-safe.
func (c *RoomCache) Put(key string, rec *Room, rev uint64) {
	if c == nil || c.cap <= 0 {
		return
	}
	if rec != nil && rec.Delivered {
		// Reported and delivered: only late events touch it again.
		c.Drop(key)
		return
	}
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		ce := e.Value.(*cacheEntry)
		ce.rec, ce.rev = rec, rev
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, rec: rec, rev: rev})
	if c.ll.Len() > c.cap {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// Drop forgets key. Nil-safe.
func (c *RoomCache) Drop(key string) {
	if c == nil {
		return
	}
	if e, ok := c.items[key]; ok {
		c.ll.Remove(e)
		delete(c.items, key)
	}
}
