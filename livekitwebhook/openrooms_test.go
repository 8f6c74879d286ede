package livekitwebhook

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine/enginetest"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// openIndexKeys lists the open rooms index (its completion marker aside).
func openIndexKeys(t testing.TB, eng *engine.Engine) []string {
	t.Helper()
	keys := enginetest.Keys(t, eng, engine.BucketOpen)
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, "meta.") {
			out = append(out, k)
		}
	}
	return out
}

// TestOpenRoomsIndexFollowsProcessing: rooms posted as LiveKit sends them
// enter the open rooms index when first seen and leave it once reported,
// so the sessions listing and the sweeper read open rooms only.
func TestOpenRoomsIndexFollowsProcessing(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	t0 := time.Now().Unix()
	for i := range 3 {
		name, sid := fmt.Sprintf("call-%d", i), fmt.Sprintf("RM_call%d", i)
		postEvent(t, tr.url, roomEvent("EV_s"+sid, "room_started", name, sid, t0))
		postEvent(t, tr.url, participantEvent("EV_j"+sid, "participant_joined", name, sid, "PA_"+sid, "u", livekit.ParticipantInfo_STANDARD, t0, t0))
	}
	for i := range 2 {
		sid := fmt.Sprintf("RM_call%d", i)
		postEvent(t, tr.url, roomEvent("EV_f"+sid, "room_finished", fmt.Sprintf("call-%d", i), sid, t0+5))
	}
	ctx := context.Background()
	eventually(t, 20*time.Second, "two reports delivered", func() bool {
		ended, err := tr.EndedSessions(ctx, 10)
		return err == nil && len(ended) == 2 && len(openIndexKeys(t, tr.engine())) == 1
	})
	if keys := openIndexKeys(t, tr.engine()); len(keys) != 1 || keys[0] != engine.ProjectPrefix(testKey)+"RM_call2" {
		t.Fatalf("open rooms index %v, want [RM_call2]", keys)
	}
	active, err := tr.ActiveSessions(ctx)
	if err != nil || len(active) != 1 || active[0].RoomSID != "RM_call2" {
		t.Fatalf("active sessions %+v %v, want RM_call2 only", active, err)
	}
}

func TestRecordTTLConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxSessionAge, cfg.DedupeWindow, cfg.RecordTTL = "24h", "24h", "30h"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "record_ttl") {
		t.Fatalf("record_ttl under max_session_age + dedupe_window: %v, want refused", err)
	}
	d, err := DefaultConfig().durations()
	if err != nil || d.recordTTL != 7*24*time.Hour {
		t.Fatalf("default record_ttl %s %v, want 168h", d.recordTTL, err)
	}
	cfg.MaxSessionAge, cfg.DedupeWindow, cfg.RecordTTL = "1s", "1s", "3s"
	tr := startReceiver(t, cfg)
	ctx := context.Background()
	for _, b := range []string{engine.BucketRooms, engine.BucketNames, engine.BucketBeluga} {
		kv, err := tr.engine().JetStream().KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil || st.TTL() != 3*time.Second {
			t.Fatalf("bucket %s TTL %v %v, want 3s", b, st, err)
		}
	}
}

// storeRooms writes ended and open room records as processing leaves them
// (an ended room: created open, then reported and delivered).
func storeRooms(b testing.TB, eng *engine.Engine, prefix string, ended, open int) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now().Unix()
	write := func(i int, finish bool) error {
		sid, name := fmt.Sprintf("RM_%s%d", prefix, i), fmt.Sprintf("%s-%d", prefix, i)
		key, err := eng.Rooms.Key(ctx, sid)
		if err != nil {
			return err
		}
		st := lifecycle.NewState(sid, name)
		st.SessionID = name
		st, _ = lifecycle.Apply(st, roomEvent("EV_s"+sid, "room_started", name, sid, t0))
		st, _ = lifecycle.Apply(st, participantEvent("EV_j"+sid, "participant_joined", name, sid, "PA_"+sid, "u", livekit.ParticipantInfo_STANDARD, t0, t0))
		if err := eng.Names.Index(ctx, name, name, sid); err != nil {
			return err
		}
		_, err = eng.Rooms.Update(ctx, key, nil, func(*roomRecord) (*roomRecord, error) {
			return &roomRecord{State: st, FirstSeenMs: time.Now().UnixMilli()}, nil
		})
		if err != nil || !finish {
			return err
		}
		_, err = eng.Rooms.Update(ctx, key, nil, func(cur *roomRecord) (*roomRecord, error) {
			next := *cur
			next.State, _ = lifecycle.Apply(next.State, roomEvent("EV_f"+sid, "room_finished", name, sid, t0+60))
			rep := next.State.Session()
			next.Reported, next.Report, next.Delivered = true, &rep, true
			return &next, nil
		})
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < ended+open; i += 8 {
				if err := write(i, i < ended); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpenRooms measures one sessions listing and one sweep with
// 10,000 ended and 100 open sessions stored, against 100 open alone in
// the same run, and reports the ratio.
//
//	go test -run '^$' -bench OpenRooms -benchtime 20x ./livekitwebhook
func BenchmarkOpenRooms(b *testing.B) {
	const ended, open = 10_000, 100
	ctx := context.Background()
	alone := startReceiver(b, testConfig(b))
	storeRooms(b, alone.engine(), "a", 0, open)
	history := startReceiver(b, testConfig(b))
	storeRooms(b, history.engine(), "h", ended, open)
	pass := func(tr *testReceiver) time.Duration {
		start := time.Now()
		active, err := tr.ActiveSessions(ctx)
		if err != nil || len(active) != open {
			b.Fatalf("active sessions: %d %v, want %d", len(active), err, open)
		}
		if err := tr.processorRef().sweepOnce(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var tAlone, tHistory time.Duration
	b.ResetTimer()
	for b.Loop() {
		tAlone += pass(alone)
		tHistory += pass(history)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tAlone.Microseconds())/n, "open_only_µs/op")
	b.ReportMetric(float64(tHistory.Microseconds())/n, "with_history_µs/op")
	b.ReportMetric(float64(tHistory)/float64(tAlone), "ratio")
}
