package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/o11y"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/beluga-ai-contrib/beluga-livekit/examples/internal/exampletest"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/testport"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	exampletest.WaitFor(t, 15*time.Second, what, cond)
}

var clearKeyEnv = exampletest.ClearKeyEnv

// serve serves a.srv and returns the webhook URL once it answers. Beluga's
// stdlib adapter binds the address itself and does not report the port of
// ":0", so it gets a port found free; when another process took it
// meanwhile, Serve fails with EADDRINUSE and another port is tried.
func serve(t *testing.T, ctx context.Context, a *app) string {
	t.Helper()
	probe := &http.Client{Timeout: time.Second}
	for attempt := 1; ; attempt++ {
		addr, err := testport.Addr()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.srv.Serve(ctx, addr) }()
		url := "http://" + addr + a.cfg.Path
		var serveErr error
		ended := false
		waitFor(t, "server up", func() bool {
			select {
			case serveErr = <-done:
				ended = true
				return true
			default:
			}
			res, err := probe.Get(url)
			if err != nil {
				return false
			}
			_ = res.Body.Close()
			return res.StatusCode == http.StatusMethodNotAllowed
		})
		if !ended {
			t.Cleanup(func() { <-done }) // Serve ends with ctx
			return url
		}
		if !errors.Is(serveErr, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("serve (attempt %d): %v", attempt, serveErr)
		}
	}
}

// TestAgentFollowsRoom drives the app with signed webhooks for "call-7":
// the Runner's turn for "call-7" continues the session the receiver fills
// (room name, live room, then the report), the pipeline learns that the
// room finished, the turn after room_finished is refused, and the webhook
// spans and the turn's spans (recorded by the exporter given to Beluga's
// o11y bootstrap) share gen_ai.conversation.id and are linked.
func TestAgentFollowsRoom(t *testing.T) {
	clearKeyEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	exp := tracetest.NewInMemoryExporter()
	shutdownTracing, err := o11y.BootstrapFromEnv(ctx, "beluga-agent-test", o11y.WithSpanExporter(exp), o11y.WithSyncExport())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownTracing()

	cfg, err := loadConfig(io.Discard, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.FinalizeGrace = "200ms" // the report soon after room_finished
	a, err := newApp(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	url := serve(t, ctx, a)

	const call = "call-7"
	roomDone := make(chan error, 1)
	go func() { roomDone <- a.followRoom(ctx, call) }()

	post := func(ev *livekit.WebhookEvent) {
		t.Helper()
		if code := exampletest.PostSigned(t, url, devKey, devSecret, ev); code != http.StatusOK {
			t.Fatalf("%s: HTTP %d", ev.Event, code)
		}
	}
	t0 := time.Now().Unix()
	room := &livekit.Room{Sid: "RM_call7", Name: call, CreationTime: t0}
	post(&livekit.WebhookEvent{Id: "EV_a1", Event: "room_started", CreatedAt: t0, Room: room})
	post(&livekit.WebhookEvent{Id: "EV_a2", Event: "participant_joined", CreatedAt: t0 + 1, Room: room,
		Participant: &livekit.ParticipantInfo{Sid: "PA_1", Identity: "caller", JoinedAt: t0 + 1}})
	waitFor(t, "participant_joined processed", func() bool {
		s, ok, err := a.recv.SessionByID(ctx, call)
		return err == nil && ok && len(s.Participants) == 1
	})

	// A turn in the room's session, by the room's session id.
	if out, err := a.turn(ctx, call, "hello"); err != nil || out != "you said: hello" {
		t.Fatalf("turn: %q, %v", out, err)
	}
	sess, err := a.recv.SessionService().Get(ctx, call)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Turns) != 1 || sess.State[livekitwebhook.StateKeyRoomName] != call {
		t.Fatalf("session after the turn: %d turns, %s = %v", len(sess.Turns), livekitwebhook.StateKeyRoomName, sess.State[livekitwebhook.StateKeyRoomName])
	}
	live, _ := sess.State[livekitwebhook.StateKeyRoom].(map[string]any)
	if live["status"] != livekitwebhook.RoomStatusActive {
		t.Fatalf("%s = %v, want an active room", livekitwebhook.StateKeyRoom, sess.State[livekitwebhook.StateKeyRoom])
	}
	select {
	case err := <-roomDone:
		t.Fatalf("pipeline ended before the room finished: %v", err)
	default:
	}

	post(&livekit.WebhookEvent{Id: "EV_a3", Event: "room_finished", CreatedAt: t0 + 30, Room: room,
		RoomEndReason: livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT})
	select {
	case err := <-roomDone:
		var fin *livekitwebhook.RoomFinishedError
		if !errors.Is(err, livekitwebhook.ErrRoomFinished) || !errors.As(err, &fin) || fin.Reason != "ROOM_END_IDLE_TIMEOUT" {
			t.Fatalf("pipeline: %v, want a RoomFinishedError with ROOM_END_IDLE_TIMEOUT", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pipeline still running 15s after room_finished")
	}
	waitFor(t, "report in the session", func() bool {
		s, err := a.recv.SessionService().Get(ctx, call)
		return err == nil && s.State[livekitwebhook.StateKeyReport] != nil
	})

	// The turn after room_finished is refused.
	if out, err := a.turn(ctx, call, "still there?"); !errors.Is(err, livekitwebhook.ErrRoomFinished) {
		t.Fatalf("turn after room_finished: %q, %v; want ErrRoomFinished", out, err)
	}

	checkCallTrace(t, exp.GetSpans(), call, []string{"EV_a1", "EV_a2", "EV_a3"})
}

// checkCallTrace: the webhook processing spans of events and the turns'
// spans carry gen_ai.conversation.id = call; later webhooks and the turns
// link to the room's trace (its first webhook's span); the agent's span is
// in the turn's trace.
func checkCallTrace(t *testing.T, spans tracetest.SpanStubs, call string, events []string) {
	t.Helper()
	attr := func(s tracetest.SpanStub, k string) string {
		for _, a := range s.Attributes {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	named := func(name string) []tracetest.SpanStub {
		var out []tracetest.SpanStub
		for _, s := range spans {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	byEvent := map[string]tracetest.SpanStub{}
	for _, s := range named("livekitwebhook.process") {
		byEvent[attr(s, "livekit.event.id")] = s
	}
	first, ok := byEvent[events[0]]
	if !ok {
		t.Fatalf("no webhook processing span of %s; spans: %v", events[0], spanNames(spans))
	}
	room := first.SpanContext
	linked := func(s tracetest.SpanStub) bool {
		for _, l := range s.Links {
			if l.SpanContext.TraceID() == room.TraceID() && l.SpanContext.SpanID() == room.SpanID() {
				return true
			}
		}
		return false
	}
	for i, id := range events {
		s, ok := byEvent[id]
		if !ok {
			t.Fatalf("no webhook processing span of %s", id)
		}
		if got := attr(s, "gen_ai.conversation.id"); got != call {
			t.Errorf("processing span of %s: gen_ai.conversation.id = %q, want %q", id, got, call)
		}
		if i > 0 && !linked(s) {
			t.Errorf("processing span of %s has no link to the room's trace", id)
		}
	}

	apps := named("app.turn")
	if len(apps) != 2 {
		t.Fatalf("%d app.turn spans, want 2 (the turn and the refused one)", len(apps))
	}
	for _, s := range apps {
		if got := attr(s, "gen_ai.conversation.id"); got != call {
			t.Errorf("app.turn span: gen_ai.conversation.id = %q, want %q", got, call)
		}
		if !linked(s) {
			t.Error("app.turn span has no link to the room's trace")
		}
		if s.SpanContext.TraceID() == room.TraceID() {
			t.Error("app.turn span is in the webhook's trace: want its own trace, linked")
		}
	}
	turn := apps[0]
	pluginTurn := false
	for _, s := range named("livekitwebhook.turn") {
		if s.SpanContext.TraceID() == turn.SpanContext.TraceID() {
			pluginTurn = true
			if attr(s, "gen_ai.conversation.id") != call || !linked(s) {
				t.Error("the plugin's livekitwebhook.turn span lacks the session or the link")
			}
		}
	}
	if !pluginTurn {
		t.Errorf("no livekitwebhook.turn span in the turn's trace; spans: %v", spanNames(spans))
	}
	agentInTurn := false
	for _, s := range named("agent.stream") {
		agentInTurn = agentInTurn || s.SpanContext.TraceID() == turn.SpanContext.TraceID()
	}
	if !agentInTurn {
		t.Errorf("no agent.stream span in the turn's trace; spans: %v", spanNames(spans))
	}
}

func spanNames(spans tracetest.SpanStubs) string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// TestRunErrors: a bad flag, and a server that cannot listen (the pipeline
// is stopped and run returns the server's error).
func TestRunErrors(t *testing.T) {
	clearKeyEnv(t)
	if err := run(context.Background(), []string{"--bogus"}, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, []string{"--addr", ln.Addr().String(), "--data", t.TempDir()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "server") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("busy port: %v", err)
	}
}
