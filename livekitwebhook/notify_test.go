package livekitwebhook

import (
	"context"
	"testing"
	"time"

	"github.com/lookatitude/beluga-ai/v2/core"
)

// waitClosed fails unless ch is closed within d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: the watch did not fire within %s", what, d)
	}
}

// The room-finished signal comes from stored state: a watch begun after
// room_finished was processed (a transport started after a crash that
// came between the state write and a notice) fires at once. Before, the
// notice was a core NATS publish sent once: a later watch never fired.
func TestWatchRoomFinishedAfterTheFact(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	ctx := context.Background()
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_wf_start", "room_started", "past-room", "RM_past", t0))
	postEvent(t, tr.url, roomEvent("EV_wf_finish", "room_finished", "past-room", "RM_past", t0+1))
	eventually(t, 10*time.Second, "room_finished processed", func() bool {
		s, ok, _ := tr.SessionByRoomSID(ctx, "RM_past")
		return ok && s.EndedAt != nil
	})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fired, err := tr.WatchRoomFinished(wctx, "past-room")
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, fired, 10*time.Second, "room_finished processed before the watch")

	// Another room's mark does not fire a watch.
	other, err := tr.WatchRoomFinished(wctx, "other-room")
	if err != nil {
		t.Fatal(err)
	}
	postEvent(t, tr.url, roomEvent("EV_wf_finish2", "room_finished", "past-room-2", "RM_past2", t0+2))
	eventually(t, 10*time.Second, "the second room_finished processed", func() bool {
		s, ok, _ := tr.SessionByRoomSID(ctx, "RM_past2")
		return ok && s.EndedAt != nil
	})
	select {
	case <-other:
		t.Fatal("a watch of another room fired")
	default:
	}
}

// A watch outlives the loss of the engine's connection: it follows the
// receiver onto the restarted engine and fires for a room_finished
// processed there. Before, it was a subscription on the closed connection.
func TestWatchRoomFinishedAcrossEngineRestart(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired, err := tr.WatchRoomFinished(ctx, "blip-room")
	if err != nil {
		t.Fatal(err)
	}
	lost := tr.engine()
	lost.Conn().Close() // as -ERR 'maximum control line exceeded' does
	eventually(t, 30*time.Second, "healthy on a new engine", func() bool {
		return tr.engine() != lost && tr.Health().Status == core.HealthHealthy
	})
	t0 := time.Now().Unix()
	postUntilStored(t, tr.url, roomEvent("EV_wb_start", "room_started", "blip-room", "RM_blip", t0))
	postUntilStored(t, tr.url, roomEvent("EV_wb_finish", "room_finished", "blip-room", "RM_blip", t0+1))
	waitClosed(t, fired, 30*time.Second, "room_finished after an engine restart")
	if ctx.Err() != nil {
		t.Fatal("fired by its context, not by the room")
	}
}
