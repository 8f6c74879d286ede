package livekitwebhook

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"github.com/lookatitude/beluga-ai/v2/schema"
	"github.com/lookatitude/beluga-ai/v2/tool"
)

// echoAgent answers every input with "ok: <input>".
type echoAgent struct{}

func (echoAgent) ID() string              { return "echo" }
func (echoAgent) Persona() agent.Persona  { return agent.Persona{} }
func (echoAgent) Tools() []tool.Tool      { return nil }
func (echoAgent) Children() []agent.Agent { return nil }
func (echoAgent) Invoke(_ context.Context, in string, _ ...agent.Option) (string, error) {
	return "ok: " + in, nil
}
func (echoAgent) Stream(_ context.Context, in string, _ ...agent.Option) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		yield(agent.Event{Type: agent.EventText, Text: "ok: " + in}, nil)
	}
}

// runTurn runs one turn and returns its text or error.
func runTurn(ctx context.Context, r *runtime.Runner, sessionID, text string) (string, error) {
	var out string
	for ev, err := range r.Run(ctx, sessionID, schema.NewHumanMessage(text)) {
		if err != nil {
			return out, err
		}
		out += ev.Text
	}
	return out, nil
}

func TestPluginWithRunner(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	tr := startReceiver(t, testConfig(t), WithSessionService(svc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runner := runtime.NewRunner(echoAgent{}, runtime.WithSessionService(svc), runtime.WithPlugins(tr.Plugin()))
	defer func() { _ = runner.Shutdown(ctx) }()

	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_pl_start", "room_started", "call-9", "RM_pl", t0))
	postEvent(t, tr.url, participantEvent("EV_pl_join", "participant_joined", "call-9", "RM_pl", "PA_c", "caller", livekit.ParticipantInfo_SIP, t0+1, t0+1))
	var belugaID string
	eventually(t, 10*time.Second, "beluga session tagged", func() bool {
		s, ok, err := tr.SessionByID(ctx, "call-9")
		if err != nil || !ok || s.BelugaSessionID == "" || len(s.Participants) != 1 {
			return false
		}
		belugaID = s.BelugaSessionID
		return true
	})

	out, err := runTurn(ctx, runner, belugaID, "hello")
	if err != nil || out != "ok: hello" {
		t.Fatalf("turn in an active room: %q, %v", out, err)
	}
	sess, err := svc.Get(ctx, belugaID)
	if err != nil {
		t.Fatal(err)
	}
	room, ok := sess.State[StateKeyRoom].(map[string]any)
	if !ok {
		t.Fatalf("State[%q] = %#v", StateKeyRoom, sess.State[StateKeyRoom])
	}
	if room["status"] != RoomStatusActive || room["room_name"] != "call-9" || room["session_id"] != "call-9" {
		t.Fatalf("room state = %v", room)
	}
	parts, _ := room["participants"].([]any)
	if len(parts) != 1 || parts[0].(map[string]any)["identity"] != "caller" || parts[0].(map[string]any)["state"] != "active" {
		t.Fatalf("participants = %#v", room["participants"])
	}
	if len(sess.Turns) != 1 {
		t.Fatalf("turns = %d", len(sess.Turns))
	}

	postEvent(t, tr.url, roomEvent("EV_pl_finish", "room_finished", "call-9", "RM_pl", t0+20))
	eventually(t, 10*time.Second, "room_finished processed", func() bool {
		s, ok, err := tr.SessionByID(ctx, "call-9")
		return err == nil && ok && s.EndedAt != nil
	})
	_, err = runTurn(ctx, runner, belugaID, "still there?")
	if err == nil {
		t.Fatal("turn after room_finished was not refused")
	}
	if !errors.Is(err, ErrRoomFinished) {
		t.Fatalf("errors.Is(err, ErrRoomFinished) = false: %v", err)
	}
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.ErrInvalidInput {
		t.Fatalf("errors.As core.Error: %v", err)
	}
	// An unrelated invalid-input error is not mistaken for it.
	if errors.Is(core.NewError("x", core.ErrInvalidInput, "other", nil), ErrRoomFinished) {
		t.Fatal("unrelated core.Error matches ErrRoomFinished")
	}

	// Directly: the plugin's own error and the finished state.
	sess, err = svc.Get(ctx, belugaID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Plugin().BeforeTurn(ctx, sess, schema.NewHumanMessage("x"))
	if !errors.As(err, &ce) || ce.Op != "livekitwebhook.plugin.before_turn" || !errors.Is(err, ErrRoomFinished) {
		t.Fatalf("BeforeTurn: %#v", err)
	}
	if room := sess.State[StateKeyRoom].(map[string]any); room["status"] != RoomStatusFinished || room["ended_at"] == nil {
		t.Fatalf("finished room state = %v", room)
	}
}

func TestPluginPassThrough(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	ctx := context.Background()
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_pt_start", "room_started", "lobby", "RM_lobby", t0))
	eventually(t, 10*time.Second, "room processed", func() bool {
		_, ok, _ := tr.SessionByID(ctx, "lobby")
		return ok
	})
	unstarted, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	msg := schema.NewHumanMessage("hi")
	tests := []struct {
		name      string
		plugin    runtime.Plugin
		state     map[string]any
		wantState bool
	}{
		{"nil state", tr.Plugin(), nil, false},
		{"no session key", tr.Plugin(), map[string]any{"other": 1}, false},
		{"non-string key", tr.Plugin(), map[string]any{StateKeySession: 42}, false},
		{"unknown session", tr.Plugin(), map[string]any{StateKeySession: "nope"}, false},
		{"known session", tr.Plugin(), map[string]any{StateKeySession: "lobby"}, true},
		{"engine down fails open", unstarted.Plugin(), map[string]any{StateKeySession: "lobby"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess := runtime.NewSession("s1", "a")
			sess.State = tc.state
			out, err := tc.plugin.BeforeTurn(ctx, sess, msg)
			if err != nil {
				t.Fatalf("BeforeTurn: %v", err)
			}
			if out != schema.Message(msg) {
				t.Fatal("input was replaced")
			}
			_, has := sess.State[StateKeyRoom]
			if has != tc.wantState {
				t.Fatalf("state written = %v, want %v (%v)", has, tc.wantState, sess.State)
			}
			if has && sess.State[StateKeyRoom].(map[string]any)["status"] != RoomStatusActive {
				t.Fatalf("status = %v", sess.State[StateKeyRoom])
			}
		})
	}

	p := tr.Plugin()
	sess := runtime.NewSession("s2", "a")
	if p.Name() != "livekitwebhook" {
		t.Fatalf("Name = %q", p.Name())
	}
	evs := []agent.Event{{Type: agent.EventText, Text: "x"}}
	if got, err := p.AfterTurn(ctx, sess, evs); err != nil || len(got) != 1 {
		t.Fatalf("AfterTurn: %v %v", got, err)
	}
	e := errors.New("boom")
	if p.OnError(ctx, e) != e {
		t.Fatal("OnError changed the error")
	}
}
