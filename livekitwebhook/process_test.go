package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// hookCounter counts hook calls per (hook, event id).
type hookCounter struct {
	mu      sync.Mutex
	calls   map[string]int
	reports []Report
}

func (h *hookCounter) add(k string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[k]++
}

func (h *hookCounter) get(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[k]
}

func (h *hookCounter) ended() []Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Report(nil), h.reports...)
}

func (h *hookCounter) hooks() Hooks {
	rec := func(name string) EventHook {
		return func(_ context.Context, ev *livekit.WebhookEvent, _ Session) error {
			h.add(name + "/" + ev.Id)
			return nil
		}
	}
	return Hooks{
		OnRoomStarted:        rec("started"),
		OnRoomFinished:       rec("finished"),
		OnParticipantJoined:  rec("joined"),
		OnParticipantLeft:    rec("left"),
		OnParticipantAborted: rec("aborted"),
		OnEvent:              rec("any"),
		OnSessionEnded: func(_ context.Context, r Report) error {
			h.mu.Lock()
			h.reports = append(h.reports, r)
			h.mu.Unlock()
			return nil
		},
	}
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil && res.StatusCode == 200 {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode
}

func TestSessionLifecycleThroughAPI(t *testing.T) {
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithHooks(hc.hooks()))
	t0 := time.Now().Add(-time.Minute).Unix()
	evs := []*livekit.WebhookEvent{
		roomEvent("EV_life0000001", "room_started", "call-7", "RM_life", t0),
		participantEvent("EV_life0000002", "participant_joined", "call-7", "RM_life", "PA_agent", "agent-1", livekit.ParticipantInfo_AGENT, t0+1, t0+1),
		participantEvent("EV_life0000003", "participant_joined", "call-7", "RM_life", "PA_caller", "caller", livekit.ParticipantInfo_SIP, t0+2, t0+2),
		participantEvent("EV_life0000004", "participant_left", "call-7", "RM_life", "PA_caller", "caller", livekit.ParticipantInfo_SIP, t0+32, t0+2),
		roomEvent("EV_life0000005", "room_finished", "call-7", "RM_life", t0+40),
	}
	for _, ev := range evs {
		if code, resp := postEvent(t, tr.url, ev); code != 200 {
			t.Fatalf("%s: %d %s", ev.Event, code, resp)
		}
	}
	postEvent(t, tr.url, evs[2]) // a duplicate delivery
	eventually(t, 15*time.Second, "final report", func() bool { return len(hc.ended()) == 1 })
	rep := hc.ended()[0]
	if rep.SessionID != "call-7" || rep.RoomSID != "RM_life" || rep.Disposition != DispositionCompleted {
		t.Fatalf("report %+v", rep)
	}
	if rep.ParticipantSeconds != 30+39 || rep.ParticipantSecondsByKind["sip"] != 30 || rep.ParticipantSecondsByKind["agent"] != 39 {
		t.Fatalf("participant seconds %v %v", rep.ParticipantSeconds, rep.ParticipantSecondsByKind)
	}
	for _, ev := range evs {
		if n := hc.get("any/" + ev.Id); n != 1 {
			t.Errorf("OnEvent called %d times for %s", n, ev.Id)
		}
	}
	if hc.get("joined/EV_life0000003") != 1 || hc.get("started/EV_life0000001") != 1 {
		t.Errorf("specific hooks: %v", hc.calls)
	}
	var list sessionsList
	if code := getJSON(t, tr.base+"/voice/livekit/sessions", &list); code != 200 {
		t.Fatalf("sessions: %d", code)
	}
	if len(list.Active) != 0 || len(list.Ended) != 1 || list.Ended[0].RoomSID != "RM_life" {
		t.Fatalf("sessions list %+v", list)
	}
	var one Session
	if code := getJSON(t, tr.base+"/voice/livekit/sessions/call-7", &one); code != 200 || one.Disposition != DispositionCompleted {
		t.Fatalf("session by id: %d %+v", code, one)
	}
	if code := getJSON(t, tr.base+"/voice/livekit/sessions/nope", nil); code != 404 {
		t.Fatalf("unknown session: %d", code)
	}
	// The report is on the reports subject for downstream consumers.
	info, err := testStream(t, tr.engine(), engine.StreamReports).Info(context.Background())
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("reports stream: %v %+v", err, info)
	}
	// Late event after the report: not applied, no second report.
	postEvent(t, tr.url, participantEvent("EV_life0000006", "participant_left", "call-7", "RM_life", "PA_agent", "agent-1", livekit.ParticipantInfo_AGENT, t0+45, t0+1))
	time.Sleep(500 * time.Millisecond)
	if n := len(hc.ended()); n != 1 {
		t.Fatalf("%d reports after a late event", n)
	}
}

func TestActiveSessionVisible(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	t0 := time.Now().Unix()
	postEvent(t, tr.url, participantEvent("EV_active00001", "participant_joined", "room-a", "RM_a", "PA_1", "alice", livekit.ParticipantInfo_STANDARD, t0, t0))
	var list sessionsList
	eventually(t, 10*time.Second, "active session", func() bool {
		getJSON(t, tr.base+"/voice/livekit/sessions", &list)
		return len(list.Active) == 1
	})
	s := list.Active[0]
	if s.RoomName != "room-a" || len(s.Participants) != 1 || s.Participants[0].State != "active" || s.EndedAt != nil {
		t.Fatalf("active view %+v", s)
	}
}

func TestFailingHookRetriesThenDeadLettersThenReplays(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAttempts = 3
	var fail atomic.Bool
	fail.Store(true)
	var calls, okCalls atomic.Int32
	var errs atomic.Int32
	flaky := Hooks{OnRoomStarted: func(context.Context, *livekit.WebhookEvent, Session) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("billing is down")
		}
		return nil
	}, OnError: func(context.Context, *livekit.WebhookEvent, error) { errs.Add(1) }}
	steady := Hooks{OnRoomStarted: func(context.Context, *livekit.WebhookEvent, Session) error {
		okCalls.Add(1)
		return nil
	}}
	tr := startReceiver(t, cfg, WithHooks(flaky, steady))
	postEvent(t, tr.url, roomEvent("EV_dlq00000001", "room_started", "r", "RM_dlq", time.Now().Unix()))
	var dls []DeadLetter
	eventually(t, 20*time.Second, "dead letter", func() bool {
		dls, _ = tr.DeadLetters(context.Background(), 0)
		return len(dls) == 1
	})
	if calls.Load() != 3 || dls[0].Attempts != 3 || dls[0].EventID != "EV_dlq00000001" || dls[0].Error == "" {
		t.Fatalf("calls=%d dl=%+v", calls.Load(), dls[0])
	}
	if okCalls.Load() != 1 {
		t.Fatalf("the succeeding hook ran %d times, want once", okCalls.Load())
	}
	if errs.Load() < 3 {
		t.Fatalf("OnError called %d times", errs.Load())
	}
	fail.Store(false)
	res, err := http.Post(tr.base+"/voice/livekit/dlq/replay?all=true", "application/json", nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("replay: %v %v", err, res)
	}
	res.Body.Close()
	eventually(t, 10*time.Second, "replayed hook", func() bool { return calls.Load() == 4 })
	time.Sleep(300 * time.Millisecond)
	if calls.Load() != 4 || okCalls.Load() != 1 {
		t.Fatalf("after replay calls=%d ok=%d", calls.Load(), okCalls.Load())
	}
	if dls, _ = tr.DeadLetters(context.Background(), 0); len(dls) != 0 {
		t.Fatalf("dead letters left: %+v", dls)
	}
}

func TestSlowHookDoesNotSlowIntake(t *testing.T) {
	release := make(chan struct{})
	var seen atomic.Int32
	slow := Hooks{OnEvent: func(ctx context.Context, _ *livekit.WebhookEvent, _ Session) error {
		seen.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}
	tr := startReceiver(t, testConfig(t), WithHooks(slow))
	defer close(release)
	start := time.Now()
	for i := 0; i < 20; i++ {
		code, _ := postEvent(t, tr.url, roomEvent(fmt.Sprintf("EV_slow%07d", i), "room_started", fmt.Sprintf("r%d", i), fmt.Sprintf("RM_s%d", i), time.Now().Unix()))
		if code != 200 {
			t.Fatalf("intake %d", code)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("20 accepts took %s with blocked hooks", d)
	}
	eventually(t, 5*time.Second, "hooks started", func() bool { return seen.Load() > 0 })
}

func TestExpiredSession(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxSessionAge = "1s"
	var hc hookCounter
	reader := sdkmetric.NewManualReader()
	tr := startReceiver(t, cfg, WithHooks(hc.hooks()), WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	t0 := time.Now().Unix()
	postEvent(t, tr.url, participantEvent("EV_exp0000001", "participant_joined", "lost", "RM_exp", "PA_1", "bob", livekit.ParticipantInfo_STANDARD, t0, t0))
	eventually(t, 15*time.Second, "expired report", func() bool { return len(hc.ended()) == 1 })
	if r := hc.ended()[0]; r.Disposition != DispositionExpired || r.EndedAt.IsZero() {
		t.Fatalf("expired report %+v", r)
	}
	// The participant never left: closing the session releases it from the
	// active gauges.
	for name, want := range map[string]int64{"livekitwebhook.participants.active": 0, "livekitwebhook.sessions.active": 0} {
		if got := gaugeSum(t, reader, name); got != want {
			t.Errorf("%s = %d after the expiry, want %d", name, got, want)
		}
	}
}

func TestBelugaSessionWiring(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithSessionService(svc), WithHooks(hc.hooks()))
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_beluga00001", "room_started", "support-1", "RM_b", t0))
	postEvent(t, tr.url, roomEvent("EV_beluga00002", "room_finished", "support-1", "RM_b", t0+5))
	eventually(t, 15*time.Second, "report", func() bool { return len(hc.ended()) == 1 })
	rep := hc.ended()[0]
	if rep.BelugaSessionID == "" {
		t.Fatal("no beluga session id in the report")
	}
	s, err := svc.Get(context.Background(), rep.BelugaSessionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.State[StateKeyRoomName] != "support-1" || s.State[StateKeyRoomSID] != "RM_b" {
		t.Fatalf("state %v", s.State)
	}
	if m, ok := s.State[StateKeyReport].(map[string]any); !ok || m["disposition"] != DispositionNoShow {
		t.Fatalf("report in state: %v", s.State[StateKeyReport])
	}
	e, err := testKV(t, tr.engine(), engine.BucketBeluga).Get(context.Background(), engine.Key("support-1"))
	if err != nil || string(e.Value()) != rep.BelugaSessionID {
		t.Fatalf("mapping: %v", err)
	}
}

// TestLateMetadataRemapsSession: a room that started unmapped and got its
// session id from metadata later is found under the new id.
func TestLateMetadataRemapsSession(t *testing.T) {
	cfg := testConfig(t)
	cfg.Correlation = "metadata:session_id"
	tr := startReceiver(t, cfg)
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_remap000001", "room_started", "lobby-9", "RM_remap", t0))
	var s Session
	eventually(t, 10*time.Second, "unmapped session", func() bool {
		return getJSON(t, tr.base+"/voice/livekit/sessions/lobby-9", &s) == 200 && s.Unmapped
	})
	ev := participantEvent("EV_remap000002", "participant_joined", "lobby-9", "RM_remap", "PA_r", "rita", livekit.ParticipantInfo_STANDARD, t0+1, t0+1)
	ev.Room.Metadata = `{"session_id":"sess-9"}`
	postEvent(t, tr.url, ev)
	eventually(t, 10*time.Second, "remapped session", func() bool {
		var s Session // fresh: "unmapped" is omitted when false
		return getJSON(t, tr.base+"/voice/livekit/sessions/sess-9", &s) == 200 && !s.Unmapped && s.RoomSID == "RM_remap"
	})
}

// TestUnmappedRoomTracked: a room the correlator cannot map is tracked
// under its name and flagged.
func TestUnmappedRoomTracked(t *testing.T) {
	cfg := testConfig(t)
	cfg.Correlation = "template:call-{session}"
	tr := startReceiver(t, cfg)
	postEvent(t, tr.url, roomEvent("EV_unmap000001", "room_started", "lobby", "RM_unmap", time.Now().Unix()))
	postEvent(t, tr.url, roomEvent("EV_unmap000002", "room_started", "call-77", "RM_call77", time.Now().Unix()))
	var s Session
	eventually(t, 10*time.Second, "unmapped", func() bool {
		return getJSON(t, tr.base+"/voice/livekit/sessions/lobby", &s) == 200
	})
	if !s.Unmapped || s.SessionID != "lobby" {
		t.Fatalf("unmapped room: %+v", s)
	}
	s = Session{} // fresh: "unmapped" is omitted when false
	eventually(t, 10*time.Second, "mapped", func() bool {
		return getJSON(t, tr.base+"/voice/livekit/sessions/77", &s) == 200
	})
	if s.Unmapped || s.RoomName != "call-77" {
		t.Fatalf("mapped room: %+v", s)
	}
}

// gaugeSum sums an up-down counter's data points.
func gaugeSum(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var sum int64
	for _, m := range collectMetrics(t, reader) {
		if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
			for _, dp := range d.DataPoints {
				sum += dp.Value
			}
		}
	}
	return sum
}
