package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// putRoom stores a room record as processing creates it.
func putRoom(t *testing.T, e *Engine, sid, sessionID string) string {
	t.Helper()
	ctx := context.Background()
	key, err := e.Rooms.Key(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Rooms.Update(ctx, key, nil, func(cur *Room) (*Room, error) {
		rec := &Room{State: lifecycle.NewState(sid, "name-"+sid), FirstSeenMs: time.Now().UnixMilli()}
		rec.State.SessionID = sessionID
		return rec, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// deliver marks a room's report delivered, as finalization does last.
func deliver(t *testing.T, e *Engine, key string) {
	t.Helper()
	_, err := e.Rooms.Update(context.Background(), key, nil, func(cur *Room) (*Room, error) {
		next := *cur
		next.Reported, next.Delivered = true, true
		return &next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func openSIDs(t *testing.T, e *Engine) []string {
	t.Helper()
	var sids []string
	if err := e.Rooms.EachOpen(context.Background(), func(rec *Room) error {
		sids = append(sids, rec.State.RoomSID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(sids)
	return sids
}

// openKeys lists the open index's keys (its completion marker aside).
func openKeys(t *testing.T, e *Engine) []string {
	t.Helper()
	keys, err := e.open.Keys(context.Background())
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatal(err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == openIndexBuilt || k == layoutKey })
	slices.Sort(keys)
	return keys
}

func TestRecordBucketsGetTTL(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, Config{DataDir: dir, RecordTTL: time.Hour})
	_ = e.Close()
	// An existing bucket takes a new TTL on the next start.
	e = openTest(t, Config{DataDir: dir, RecordTTL: time.Second})
	ctx := context.Background()
	for _, kv := range []jetstream.KeyValue{e.rooms, e.names, e.beluga} {
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != time.Second {
			t.Errorf("bucket %s: TTL %s, want 1s", st.Bucket(), st.TTL())
		}
	}
	if st, _ := e.reportKV.Status(ctx); st.TTL() != 30*24*time.Hour {
		t.Errorf("reports bucket TTL %s changed", st.TTL())
	}
	key := putRoom(t, e, "RM_ttl", "name-RM_ttl")
	if err := e.Names.Index(ctx, "name-RM_ttl", "other", "RM_ttl"); err != nil {
		t.Fatal(err)
	}
	if err := e.Beluga.Create(ctx, "other", "beluga-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "room, names and Beluga entries to expire", func() bool {
		rec, _, err := e.Rooms.Get(ctx, key)
		_, nameOK, _ := e.Names.RoomSID(ctx, "name-RM_ttl")
		_, sesOK, _ := e.Names.SessionRoomSID(ctx, "other")
		_, belOK, _ := e.Beluga.Get(ctx, "other")
		return err == nil && rec == nil && !nameOK && !sesOK && !belOK
	})
}

func TestOpenIndexFollowsOpenRooms(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	a := putRoom(t, e, "RM_a", "a")
	putRoom(t, e, "RM_b", "b")
	c := putRoom(t, e, "RM_c", "c")
	deliver(t, e, c)
	// A roomless event's record (once-only hooks) is no room.
	if _, err := e.Rooms.Update(ctx, "ev.x", nil, func(*Room) (*Room, error) {
		return &Room{Pending: map[string]HookNames{"x": {"h"}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := openSIDs(t, e); !slices.Equal(got, []string{"RM_a", "RM_b"}) {
		t.Fatalf("open rooms %v, want [RM_a RM_b]", got)
	}
	if got := openKeys(t, e); !slices.Equal(got, []string{"RM_a", "RM_b"}) {
		t.Fatalf("open index keys %v, want the two open rooms only", got)
	}
	// An entry left behind for a delivered room (its removal failed) is
	// skipped and removed when listed.
	if err := e.Rooms.markOpen(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := openSIDs(t, e); !slices.Equal(got, []string{"RM_a", "RM_b"}) {
		t.Fatalf("open rooms %v with a stale entry", got)
	}
	if got := openKeys(t, e); slices.Contains(got, c) {
		t.Fatalf("stale entry of a delivered room kept: %v", got)
	}
	// Removal leaves no delete marker for listings to read.
	deliver(t, e, a)
	st, err := e.Rooms.openStream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Msgs != 3 { // RM_b, the completion marker and the layout record
		t.Fatalf("open index stream holds %d messages, want 3", st.State.Msgs)
	}
}

func TestOpenIndexWrittenBeforeRecord(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	crash := errors.New("crash")
	e.Rooms.beforeCreate = func(string) error { return crash }
	key, _ := e.Rooms.Key(ctx, "RM_crash")
	create := func(*Room) (*Room, error) { return &Room{State: lifecycle.NewState("RM_crash", "n")}, nil }
	if _, err := e.Rooms.Update(ctx, key, nil, create); !errors.Is(err, crash) {
		t.Fatalf("Update: %v, want the injected crash", err)
	}
	if got := openKeys(t, e); !slices.Equal(got, []string{key}) {
		t.Fatalf("after a crash before the record: index %v, want the entry", got)
	}
	// Listed without a record: skipped, and kept while its record may
	// still come.
	if got := openSIDs(t, e); len(got) != 0 {
		t.Fatalf("open rooms %v, want none", got)
	}
	if got := openKeys(t, e); len(got) != 1 {
		t.Fatalf("young entry without a record removed: %v", got)
	}
	e.Rooms.beforeCreate = nil
	if _, err := e.Rooms.Update(ctx, key, nil, create); err != nil {
		t.Fatal(err)
	}
	if got := openSIDs(t, e); !slices.Equal(got, []string{"RM_crash"}) {
		t.Fatalf("open rooms %v after the retry, want [RM_crash]", got)
	}
	// An entry whose record never came (or expired) goes once old.
	if err := e.Rooms.markOpen(ctx, "RM_gone"); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { orphanAfter = d }(orphanAfter)
	orphanAfter = 0
	openSIDs(t, e)
	if got := openKeys(t, e); !slices.Equal(got, []string{key}) {
		t.Fatalf("index %v, want the orphan removed", got)
	}
}

func TestOpenIndexBuiltOnUpgrade(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, Config{DataDir: dir})
	putRoom(t, e, "RM_1", "1")
	putRoom(t, e, "RM_2", "2")
	deliver(t, e, putRoom(t, e, "RM_3", "3"))
	// A store written by a version without the index.
	if err := e.js.DeleteKeyValue(context.Background(), BucketOpen); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	e = openTest(t, Config{DataDir: dir})
	if got := openSIDs(t, e); !slices.Equal(got, []string{"RM_1", "RM_2"}) {
		t.Fatalf("open rooms after the upgrade %v, want [RM_1 RM_2]", got)
	}
}

// namesWrites is how many writes the names bucket has taken.
func namesWrites(t *testing.T, e *Engine) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), "KV_"+BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func TestNamesIndexOneWriteWithoutCorrelator(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	lookup := func(id, want string) {
		t.Helper()
		sid, ok, err := e.Names.SessionRoomSID(ctx, id)
		if err != nil || (ok && sid != want) || ok != (want != "") {
			t.Fatalf("session %q: %q %v %v, want %q", id, sid, ok, err, want)
		}
	}
	// Session id = room name: one write serves both lookups.
	putRoom(t, e, "RM_1", "call")
	if err := e.Names.Index(ctx, "call", "call", "RM_1"); err != nil {
		t.Fatal(err)
	}
	if n := namesWrites(t, e); n != 1 {
		t.Fatalf("names writes %d, want 1", n)
	}
	lookup("call", "RM_1")
	if sid, _, _ := e.Names.RoomSID(ctx, "call"); sid != "RM_1" {
		t.Fatalf("room sid %q", sid)
	}
	// The name reused by a room mapped to another session: the older
	// session stays findable by its id.
	putRoom(t, e, "RM_2", "S2")
	if err := e.Names.Index(ctx, "call", "S2", "RM_2"); err != nil {
		t.Fatal(err)
	}
	lookup("call", "RM_1")
	lookup("S2", "RM_2")
	if sid, _, _ := e.Names.RoomSID(ctx, "call"); sid != "RM_2" {
		t.Fatalf("room sid %q, want RM_2", sid)
	}
	// Reused again, unmapped: the session id "call" is now the newest room.
	putRoom(t, e, "RM_3", "call")
	if err := e.Names.Index(ctx, "call", "call", "RM_3"); err != nil {
		t.Fatal(err)
	}
	lookup("call", "RM_3")
	lookup("S2", "RM_2")
	// A name whose room is mapped elsewhere is no session id.
	putRoom(t, e, "RM_4", "S4")
	if err := e.Names.Index(ctx, "other", "S4", "RM_4"); err != nil {
		t.Fatal(err)
	}
	lookup("other", "")
	lookup("S4", "RM_4")
}

// TestProjectViewsKeepApart: two projects' views of one room name and
// session id hold their own entries and records; the unscoped view (the
// layout before projects) sees neither.
func TestProjectViewsKeepApart(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	for _, p := range []struct{ project, sid string }{{"acme", "RM_acme"}, {"globex", "RM_globex"}} {
		names, rooms := e.Names.Project(p.project), e.Rooms.Project(p.project)
		if err := names.Index(ctx, "call-1", "call-1", p.sid); err != nil {
			t.Fatal(err)
		}
		key, err := rooms.Key(ctx, p.sid)
		if err != nil {
			t.Fatal(err)
		}
		if key != ProjectPrefix(p.project)+p.sid {
			t.Fatalf("key %q", key)
		}
		st := lifecycle.NewState(p.sid, "call-1")
		st.SessionID = "call-1"
		if _, err := rooms.Update(ctx, key, nil, func(*Room) (*Room, error) { return &Room{State: st}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	for project, want := range map[string]string{"acme": "RM_acme", "globex": "RM_globex"} {
		if sid, ok, err := e.Names.Project(project).SessionRoomSID(ctx, "call-1"); err != nil || !ok || sid != want {
			t.Errorf("%s: %q %v %v, want %s", project, sid, ok, err, want)
		}
	}
	if _, ok, err := e.Names.SessionRoomSID(ctx, "call-1"); ok || err != nil {
		t.Errorf("the unscoped view found a project's session: %v %v", ok, err)
	}
	if e.LegacyWindowOpen() {
		t.Error("legacy window open on a fresh store")
	}
}
