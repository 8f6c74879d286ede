package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// postUntilStored posts ev until intake stores it, as LiveKit's notifier
// retries a 503 (intake refuses while the engine restarts).
func postUntilStored(t *testing.T, url string, ev *livekit.WebhookEvent) {
	t.Helper()
	var code int
	var resp string
	eventually(t, 30*time.Second, "webhook "+ev.Id+" stored", func() bool {
		code, resp = postEvent(t, url, ev)
		return code == 200
	})
	if resp != "accepted" && resp != "duplicate" {
		t.Fatalf("webhook %s: %d %s", ev.Id, code, resp)
	}
}

// A NATS connection closed under the receiver (nats.go closes it on some
// server errors instead of reconnecting) is recovered by itself: the
// embedded engine is restarted, health turns green, and the next webhook is
// stored and applied. Before, every webhook got 503 until a restart.
func TestEngineRecoversAfterConnectionClose(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithHooks(hc.hooks()),
		WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	t0 := time.Now().Unix()
	postUntilStored(t, tr.url, roomEvent("EV_recover0001", "room_started", "before", "RM_before", t0))
	eventually(t, 10*time.Second, "first event applied", func() bool { return hc.get("any/EV_recover0001") == 1 })

	lost := tr.engine()
	lost.Conn().Close()
	eventually(t, 30*time.Second, "healthy on a new engine", func() bool {
		return tr.engine() != lost && tr.Health().Status == core.HealthHealthy
	})
	if code, resp := postEvent(t, tr.url, roomEvent("EV_recover0002", "room_started", "after", "RM_after", t0+1)); code != 200 || resp != "accepted" {
		t.Fatalf("webhook after recovery: %d %s", code, resp)
	}
	eventually(t, 10*time.Second, "event after recovery applied", func() bool { return hc.get("any/EV_recover0002") == 1 })
	if n := gaugeSum(t, reader, "livekitwebhook.engine.restarts"); n != 1 {
		t.Fatalf("engine restarts counted %d, want 1", n)
	}
	if hc.get("any/EV_recover0001") != 1 {
		t.Fatal("the event before the loss was applied again")
	}
}

// An event whose handling closes the connection every time is
// dead-lettered, unapplied, once its attempts are used up (each one costs
// an engine restart), and OnError hears of it; the events after it are
// applied. Before, the first close left the receiver down for good.
func TestEventThatClosesTheConnectionIsDeadLettered(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAttempts = 2
	const poison = "EV_poison00001"
	var recv atomic.Pointer[Receiver]
	var hc hookCounter
	var deadLetterErr atomic.Value
	hooks := Hooks{
		OnEvent: func(_ context.Context, ev *livekit.WebhookEvent, _ Session) error {
			hc.add("any/" + ev.Id)
			if ev.Id == poison {
				recv.Load().engine().Conn().Close() // as -ERR 'maximum control line exceeded' does
			}
			return nil
		},
		OnError: func(_ context.Context, ev *livekit.WebhookEvent, err error) {
			if ev != nil && ev.Id == poison && errors.Is(err, engine.ErrConnectionLost) {
				deadLetterErr.Store(err.Error())
			}
		},
	}
	reader := sdkmetric.NewManualReader()
	tr := startReceiver(t, cfg, WithHooks(hooks), func(o *options) { o.ackWait = time.Second },
		WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	recv.Store(tr.Receiver)
	t0 := time.Now().Unix()
	postUntilStored(t, tr.url, roomEvent(poison, "room_started", "poison", "RM_poison", t0))
	postUntilStored(t, tr.url, roomEvent("EV_poison00002", "room_started", "healthy", "RM_healthy", t0+1))

	var dls []DeadLetter
	eventually(t, 60*time.Second, "the poison dead-lettered", func() bool {
		dls, _ = tr.DeadLetters(context.Background(), 0)
		return len(dls) == 1
	})
	// Attempts counts deliveries: on a loaded machine some come while the
	// engine is being reopened and are handed back unhandled, so it may
	// exceed MaxAttempts; the handlings are counted by the hook below.
	if dl := dls[0]; dl.EventID != poison || dl.Attempts < cfg.MaxAttempts || !strings.Contains(dl.Error, engine.ErrConnectionLost.Error()) {
		t.Fatalf("dead letter %+v", dl)
	}
	eventually(t, 30*time.Second, "the event after it applied, healthy", func() bool {
		return hc.get("any/EV_poison00002") >= 1 && tr.Health().Status == core.HealthHealthy
	})
	if n := hc.get("any/" + poison); n != cfg.MaxAttempts {
		t.Errorf("the poison was handled %d times, want %d (its attempts)", n, cfg.MaxAttempts)
	}
	// The dead letter is stored before it is counted and OnError hears of it.
	eventually(t, 10*time.Second, "OnError told of the dead letter, counted once", func() bool {
		return deadLetterErr.Load() != nil && gaugeSum(t, reader, "livekitwebhook.dead_letters") == 1
	})
	// A restart is counted once the new engine runs, which may be just
	// after its processor dead-lettered the poison. Losses that come while a
	// restart is under way are folded into it, so the count is not exact.
	eventually(t, 10*time.Second, "the restarts counted", func() bool {
		return gaugeSum(t, reader, "livekitwebhook.engine.restarts") >= 1
	})
}

// Stop with a hook slower than its deadline returns, without the panic
// (send on closed channel) a dispatch blocked on the busy worker caused,
// and the unfinished events are applied after a restart.
func TestStopWithHookSlowerThanDeadline(t *testing.T) {
	cfg := testConfig(t)
	cfg.Workers = 1
	release := make(chan struct{})
	entered := make(chan struct{})
	var blocked atomic.Bool
	var held string
	slow := Hooks{OnEvent: func(_ context.Context, ev *livekit.WebhookEvent, _ Session) error {
		if blocked.CompareAndSwap(false, true) {
			held = ev.Id
			close(entered)
			<-release // ignores its context: slower than any stop deadline
		}
		return nil
	}}
	tr := startReceiver(t, cfg, WithHooks(slow))
	t.Cleanup(func() { close(release) })
	t0 := time.Now().Unix()
	const n = 12
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("EV_slowstop%03d", i)
		postUntilStored(t, tr.url, participantEvent(ids[i], "participant_joined", "slow", "RM_slow", fmt.Sprintf("PA_%d", i), fmt.Sprintf("p%d", i), livekit.ParticipantInfo_STANDARD, t0+int64(i), t0+int64(i)))
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook was not called")
	}
	// With one worker the consumer pulls 4 at a time: once 6 are out, one is
	// in the hook, four fill the worker's queue and dispatch waits on it.
	eventually(t, 30*time.Second, "events pulled past the worker's queue", func() bool {
		c, err := testStream(t, tr.engine(), engine.StreamEvents).Consumer(context.Background(), engine.ConsumerProcessor)
		return err == nil && c.CachedInfo().NumAckPending >= 6
	})

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		stopped <- tr.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Stop did not return with a hook slower than its deadline")
	}
	tr.srv.Close()

	var hc hookCounter
	counting := Hooks{OnEvent: func(_ context.Context, ev *livekit.WebhookEvent, _ Session) error {
		hc.add(ev.Id)
		return nil
	}}
	startReceiver(t, cfg, WithHooks(counting))
	eventually(t, 60*time.Second, "every event applied after the restart", func() bool {
		for _, id := range ids {
			if hc.get(id) == 0 {
				return false
			}
		}
		return true
	})
	// The event the slow hook held was not acknowledged: its hook ran again.
	if hc.get(held) != 1 {
		t.Fatalf("hook of the unfinished event %s called %d times after the restart, want 1", held, hc.get(held))
	}
}
