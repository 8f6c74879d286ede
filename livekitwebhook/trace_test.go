package livekitwebhook

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTraceOneCall: the webhook spans of a room (processing, hooks,
// report) and an agent turn of its Beluga session carry one session
// attribute, gen_ai.conversation.id; later webhooks, the report and the
// turn link to the room's trace (its first webhook); hooks find the session
// id with core.GetSessionID.
func TestTraceOneCall(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	svc := runtime.NewInMemorySessionService()
	var mu sync.Mutex
	hookSessions := map[string]string{} // hook -> core.GetSessionID
	seen := func(name string) func(ctx context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			defer mu.Unlock()
			hookSessions[name] = core.GetSessionID(ctx)
		}
	}
	tr := startReceiver(t, testConfig(t), WithTracerProvider(tp), WithSessionService(svc), WithHooks(Hooks{
		OnRoomStarted: func(ctx context.Context, _ *livekit.WebhookEvent, _ Session) error {
			seen("OnRoomStarted")(ctx)
			return nil
		},
		OnSessionEnded: func(ctx context.Context, _ Report) error {
			seen("OnSessionEnded")(ctx)
			return nil
		},
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runner := runtime.NewRunner(echoAgent{}, runtime.WithSessionService(svc), runtime.WithPlugins(tr.Plugin()))
	defer func() { _ = runner.Shutdown(ctx) }()

	const call = "call-trace"
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_tc_start", "room_started", call, "RM_tc", t0))
	var belugaID string
	eventually(t, 10*time.Second, "room started processed", func() bool {
		s, ok, err := tr.SessionByID(ctx, call)
		belugaID = s.BelugaSessionID
		return err == nil && ok && belugaID != ""
	})
	postEvent(t, tr.url, participantEvent("EV_tc_join", "participant_joined", call, "RM_tc", "PA_c", "caller", livekit.ParticipantInfo_SIP, t0+1, t0+1))
	eventually(t, 10*time.Second, "join processed", func() bool {
		s, _, _ := tr.SessionByID(ctx, call)
		return len(s.Participants) == 1
	})

	// The app's span around a turn: the parent of the agent's spans.
	turnCtx, turn := tp.Tracer("app").Start(ctx, "agent.turn")
	if out, err := runTurn(turnCtx, runner, belugaID, "hello"); err != nil || out != "ok: hello" {
		t.Fatalf("turn: %q, %v", out, err)
	}
	turn.End()

	postEvent(t, tr.url, roomEvent("EV_tc_finish", "room_finished", call, "RM_tc", t0+20))
	eventually(t, 15*time.Second, "report span", func() bool { return len(spansNamed(rec, spanReport)) > 0 })

	attr := func(s sdktrace.ReadOnlySpan, k string) string {
		for _, a := range s.Attributes() {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	byEvent := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spansNamed(rec, spanProcess) {
		byEvent[attr(s, attrEventID)] = s
	}
	room, ok := byEvent["EV_tc_start"]
	if !ok {
		t.Fatal("no process span of room_started")
	}
	roomSC := room.SpanContext()
	linked := func(s sdktrace.ReadOnlySpan) bool {
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() == roomSC.TraceID() && l.SpanContext.SpanID() == roomSC.SpanID() {
				return true
			}
		}
		return false
	}
	wantSession := func(what string, s sdktrace.ReadOnlySpan) {
		t.Helper()
		if got := attr(s, "gen_ai.conversation.id"); got != call {
			t.Errorf("%s span %s: gen_ai.conversation.id = %q, want %q", what, s.Name(), got, call)
		}
	}

	for _, id := range []string{"EV_tc_start", "EV_tc_join", "EV_tc_finish"} {
		s, ok := byEvent[id]
		if !ok {
			t.Fatalf("no process span of %s", id)
		}
		wantSession(id, s)
		if id != "EV_tc_start" && !linked(s) {
			t.Errorf("process span of %s (trace %s) has no link to the room's trace %s", id, s.SpanContext().TraceID(), roomSC.TraceID())
		}
	}
	report := spansNamed(rec, spanReport)[0]
	wantSession("report", report)
	if report.SpanContext().TraceID() != roomSC.TraceID() && !linked(report) {
		t.Error("report span has no link to the room's trace")
	}
	for _, h := range spansNamed(rec, spanHook) {
		wantSession("hook "+attr(h, attrHook), h)
	}
	eventually(t, 10*time.Second, "OnSessionEnded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return hookSessions["OnSessionEnded"] != ""
	})
	mu.Lock()
	for _, h := range []string{"OnRoomStarted", "OnSessionEnded"} {
		if hookSessions[h] != call {
			t.Errorf("%s: core.GetSessionID = %q, want %q", h, hookSessions[h], call)
		}
	}
	mu.Unlock()

	// The turn: the app's span and the plugin's child span carry the
	// session and link to the room's trace.
	turns := spansNamed(rec, spanTurn)
	if len(turns) != 1 {
		t.Fatalf("%d %s spans, want 1", len(turns), spanTurn)
	}
	ts := turns[0]
	wantSession("turn", ts)
	if ts.Parent().SpanID() != turn.SpanContext().SpanID() || ts.SpanContext().TraceID() != turn.SpanContext().TraceID() {
		t.Error("turn span is not a child of the app's turn span")
	}
	if !linked(ts) {
		t.Error("turn span has no link to the room's trace")
	}
	app := spansNamed(rec, "agent.turn")[0]
	wantSession("app turn", app)
	if !linked(app) {
		t.Error("the app's turn span has no link to the room's trace")
	}
	sess, err := svc.Get(ctx, belugaID)
	if err != nil {
		t.Fatal(err)
	}
	if tp, _ := sess.State[StateKeyTraceParent].(string); !strings.Contains(tp, roomSC.TraceID().String()) {
		t.Errorf("State[%q] = %q, want the room's trace %s", StateKeyTraceParent, tp, roomSC.TraceID())
	}
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}
