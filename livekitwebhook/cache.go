package livekitwebhook

import "container/list"

// recordCache is one worker's LRU of room records with their revisions. Events
// of a room go to one worker, so its cached record is usually current and the
// read before each compare-and-set can be skipped. A stale entry (another
// replica or the finalizer wrote since) only costs a conflict and a reload:
// the store's revision check stays the single source of truth.
type recordCache struct {
	cap   int
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key string
	rec *roomRecord
	rev uint64
}

func newRecordCache(capacity int) *recordCache {
	return &recordCache{cap: capacity, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *recordCache) get(key string) (*roomRecord, uint64, bool) {
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

func (c *recordCache) put(key string, rec *roomRecord, rev uint64) {
	if c == nil || c.cap <= 0 {
		return
	}
	if rec != nil && rec.Delivered {
		// Reported and delivered: only late events touch it again.
		c.drop(key)
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

func (c *recordCache) drop(key string) {
	if c == nil {
		return
	}
	if e, ok := c.items[key]; ok {
		c.ll.Remove(e)
		delete(c.items, key)
	}
}
