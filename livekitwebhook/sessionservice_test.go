package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/runtime"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine/enginetest"
)

// mappedBelugaID waits until the receiver has mapped backend session id to
// a Beluga session and returns that session's id.
func mappedBelugaID(t *testing.T, tr *testReceiver, sessionID string) string {
	t.Helper()
	var id string
	eventually(t, 10*time.Second, "beluga session of "+sessionID, func() bool {
		s, ok, err := tr.SessionByID(context.Background(), sessionID)
		if err != nil || !ok {
			return false
		}
		id = s.BelugaSessionID
		return id != ""
	})
	return id
}

// Webhooks first: the Runner, handed recv.SessionService(), continues the
// session the receiver created and filled for the room.
func TestSessionServiceWebhooksFirst(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	tr := startReceiver(t, testConfig(t), WithSessionService(svc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_ss1_start", "room_started", "call-7", "RM_ss1", t0))
	belugaID := mappedBelugaID(t, tr, "call-7")

	sess, err := tr.SessionService().Get(ctx, "call-7")
	if err != nil {
		t.Fatalf("Get(call-7): %v", err)
	}
	if sess.ID != belugaID || sess.State[StateKeyRoomName] != "call-7" || sess.State[StateKeyRoomSID] != "RM_ss1" {
		t.Fatalf("Get(call-7) = %s %v, want %s with the room's state", sess.ID, sess.State, belugaID)
	}

	runner := runtime.NewRunner(echoAgent{}, runtime.WithSessionService(tr.SessionService()), runtime.WithPlugins(tr.Plugin()))
	defer func() { _ = runner.Shutdown(ctx) }()
	if out, err := runTurn(ctx, runner, "call-7", "hello"); err != nil || out != "ok: hello" {
		t.Fatalf("turn: %q, %v", out, err)
	}
	got, err := svc.Get(ctx, belugaID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Turns) != 1 || got.State[StateKeyRoom] == nil || got.State[StateKeyRoomName] != "call-7" {
		t.Fatalf("room's session after runner.Run(call-7): %d turns, state %v", len(got.Turns), got.State)
	}
}

// Runner first: its session for "call-8" is the one the room's webhooks
// then fill, live state and final report included.
func TestSessionServiceRunnerFirst(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	tr := startReceiver(t, testConfig(t), WithSessionService(svc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runner := runtime.NewRunner(echoAgent{}, runtime.WithSessionService(tr.SessionService()), runtime.WithPlugins(tr.Plugin()))
	defer func() { _ = runner.Shutdown(ctx) }()

	if _, err := runTurn(ctx, runner, "call-8", "early"); err != nil {
		t.Fatalf("turn before any webhook: %v", err)
	}
	first, err := tr.SessionService().Get(ctx, "call-8")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Turns) != 1 {
		t.Fatalf("Get(call-8) after the turn: %d turns, want the Runner's session", len(first.Turns))
	}

	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_ss2_start", "room_started", "call-8", "RM_ss2", t0))
	postEvent(t, tr.url, participantEvent("EV_ss2_join", "participant_joined", "call-8", "RM_ss2", "PA_c", "caller", livekit.ParticipantInfo_SIP, t0+1, t0+1))
	if id := mappedBelugaID(t, tr, "call-8"); id != first.ID {
		t.Fatalf("receiver's Beluga session %s, the Runner's is %s", id, first.ID)
	}
	if _, err := runTurn(ctx, runner, "call-8", "again"); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	room, _ := got.State[StateKeyRoom].(map[string]any)
	if len(got.Turns) != 2 || got.State[StateKeyRoomName] != "call-8" || got.State[StateKeyRoomSID] != "RM_ss2" || room["room_name"] != "call-8" {
		t.Fatalf("session: %d turns, state %v", len(got.Turns), got.State)
	}

	postEvent(t, tr.url, roomEvent("EV_ss2_end", "room_finished", "call-8", "RM_ss2", t0+5))
	eventually(t, 20*time.Second, "report in the Runner's session", func() bool {
		s, err := svc.Get(ctx, first.ID)
		return err == nil && s.State[StateKeyReport] != nil
	})
}

// gateAgent answers once release is closed: a turn in progress while the
// room's webhooks arrive.
type gateAgent struct {
	echoAgent
	started chan struct{}
	release chan struct{}
}

func (g gateAgent) Stream(ctx context.Context, in string, _ ...agent.Option) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		close(g.started)
		select {
		case <-g.release:
			yield(agent.Event{Type: agent.EventText, Text: "ok: " + in}, nil)
		case <-ctx.Done():
			yield(agent.Event{}, ctx.Err())
		}
	}
}

// A turn that began before the room was tagged saves a session copy
// without the receiver's keys: they survive its Update.
func TestSessionServiceTurnKeepsRoomKeys(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	tr := startReceiver(t, testConfig(t), WithSessionService(svc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := gateAgent{started: make(chan struct{}), release: make(chan struct{})}
	runner := runtime.NewRunner(a, runtime.WithSessionService(tr.SessionService()))
	defer func() { _ = runner.Shutdown(ctx) }()

	done := make(chan error, 1)
	go func() {
		_, err := runTurn(ctx, runner, "call-9", "hi")
		done <- err
	}()
	select {
	case <-a.started:
	case <-ctx.Done():
		t.Fatal("turn did not start")
	}
	postEvent(t, tr.url, roomEvent("EV_ss3_start", "room_started", "call-9", "RM_ss3", time.Now().Unix()))
	id := mappedBelugaID(t, tr, "call-9")
	close(a.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Turns) != 1 || got.State[StateKeyRoomName] != "call-9" || got.State[StateKeyRoomSID] != "RM_ss3" {
		t.Fatalf("after the turn: %d turns, state %v", len(got.Turns), got.State)
	}
}

// A room whose metadata names a session the app created uses that session.
func TestSessionServiceAdoptsMetadataSession(t *testing.T) {
	svc := runtime.NewInMemorySessionService()
	cfg := testConfig(t)
	cfg.Correlation = "metadata:beluga_session"
	tr := startReceiver(t, cfg, WithSessionService(svc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	app, err := svc.Create(ctx, "my-agent")
	if err != nil {
		t.Fatal(err)
	}
	ev := roomEvent("EV_ss4_start", "room_started", "support-1", "RM_ss4", time.Now().Unix())
	ev.Room.Metadata = fmt.Sprintf(`{"beluga_session":%q}`, app.ID)
	postEvent(t, tr.url, ev)
	if id := mappedBelugaID(t, tr, app.ID); id != app.ID {
		t.Fatalf("room mapped to Beluga session %s, not the app's %s", id, app.ID)
	}
	got, err := tr.SessionService().Get(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != app.ID || got.AgentID != "my-agent" || got.State[StateKeyRoomName] != "support-1" {
		t.Fatalf("Get(%s) = %s (agent %s), state %v", app.ID, got.ID, got.AgentID, got.State)
	}
}

// liveSessions counts sessions created and not deleted through it.
type liveSessions struct {
	runtime.SessionService
	live atomic.Int64
}

func (c *liveSessions) Create(ctx context.Context, agentID string) (*runtime.Session, error) {
	s, err := c.SessionService.Create(ctx, agentID)
	if err == nil {
		c.live.Add(1)
	}
	return s, err
}

func (c *liveSessions) Delete(ctx context.Context, id string) error {
	err := c.SessionService.Delete(ctx, id)
	if err == nil {
		c.live.Add(-1)
	}
	return err
}

// Two replicas on one store, their Runners and their webhooks racing for
// the same rooms: one Beluga session per room.
func TestSessionServiceOneSessionAcrossReplicas(t *testing.T) {
	url := enginetest.Server(t) // an external deployment the replicas share
	svc := &liveSessions{SessionService: runtime.NewInMemorySessionService()}
	var replicas []*testReceiver
	for range 2 {
		cfg := testConfig(t)
		cfg.NatsURL = url
		replicas = append(replicas, startReceiver(t, cfg, WithSessionService(svc)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const rooms = 4
	t0 := time.Now().Unix()
	got := make([][]string, rooms) // Beluga ids each Get returned, per room
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range rooms {
		name, sid := fmt.Sprintf("call-r%d", i), fmt.Sprintf("RM_r%d", i)
		for j, tr := range replicas {
			wg.Add(2)
			go func() {
				defer wg.Done()
				postEvent(t, tr.url, roomEvent(fmt.Sprintf("EV_r%d_%d", i, j), "room_started", name, sid, t0))
			}()
			go func() {
				defer wg.Done()
				s, err := tr.SessionService().Get(ctx, name)
				if err != nil {
					t.Errorf("Get(%s): %v", name, err)
					return
				}
				mu.Lock()
				got[i] = append(got[i], s.ID)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for i := range rooms {
		name := fmt.Sprintf("call-r%d", i)
		id := mappedBelugaID(t, replicas[0], name)
		for _, g := range got[i] {
			if g != id {
				t.Errorf("%s: Get returned %s, the receiver's session is %s", name, g, id)
			}
		}
		for _, tr := range replicas {
			if s, err := tr.SessionService().Get(ctx, name); err != nil || s.ID != id {
				t.Errorf("%s on a replica: %v, %v", name, s, err)
			}
		}
	}
	if n := svc.live.Load(); n != rooms {
		t.Fatalf("%d Beluga sessions for %d rooms", n, rooms)
	}
}

// Before Start, Get reports the store unavailable (the Runner passes the
// error on instead of creating an unrelated session).
func TestSessionServiceNotStarted(t *testing.T) {
	r, err := New(testConfig(t), WithSessionService(runtime.NewInMemorySessionService()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SessionService().Get(context.Background(), "call-1"); !errors.Is(err, ErrEngineUnavailable) || isNotFound(err) {
		t.Fatalf("Get before Start: %v", err)
	}
	if s, _ := New(testConfig(t)); s.SessionService() != nil {
		t.Fatal("SessionService without WithSessionService is not nil")
	}
}
