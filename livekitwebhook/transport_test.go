package livekitwebhook

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/voice"
	"github.com/lookatitude/beluga-ai/v2/voice/transport"
)

// lkBase is what Beluga's "livekit" transport requires (it dials nothing).
var lkBase = transport.Config{URL: "ws://127.0.0.1:7880", Token: "test-token"}

func newTestTransport(t *testing.T, r *Receiver, room string) *Transport {
	t.Helper()
	at, err := transport.New(TransportName, TransportConfig(r, room, lkBase))
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	tr, ok := at.(*Transport)
	if !ok {
		t.Fatalf("transport is %T", at)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestTransportRegistered(t *testing.T) {
	names := transport.List()
	for _, want := range []string{TransportName, "livekit"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%q not registered: %v", want, names)
		}
	}
}

func TestTransportConfig(t *testing.T) {
	r := &Receiver{}
	base := transport.Config{URL: "u", Token: "k", SampleRate: 48000, Extra: map[string]any{"x": 1}}
	cfg := TransportConfig(r, "room-a", base)
	if cfg.Extra[extraReceiver] != r || cfg.Extra[extraRoom] != "room-a" || cfg.Extra["x"] != 1 {
		t.Fatalf("Extra = %v", cfg.Extra)
	}
	if cfg.URL != "u" || cfg.Token != "k" || cfg.SampleRate != 48000 {
		t.Fatalf("base fields lost: %+v", cfg)
	}
	if len(base.Extra) != 1 {
		t.Fatalf("base.Extra modified: %v", base.Extra)
	}
}

func TestTransportFactoryErrors(t *testing.T) {
	started := startReceiver(t, testConfig(t))
	unstarted, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  transport.Config
		code core.ErrorCode
		want string
	}{
		{"no receiver", transport.Config{URL: "u", Token: "k", Extra: map[string]any{"room": "r"}},
			core.ErrInvalidInput, `Extra["livekitwebhook.receiver"]`},
		{"nil extra", transport.Config{URL: "u", Token: "k"}, core.ErrInvalidInput, "TransportConfig"},
		{"wrong receiver type", transport.Config{URL: "u", Token: "k", Extra: map[string]any{extraReceiver: "x", "room": "r"}},
			core.ErrInvalidInput, "holds string"},
		{"nil receiver", TransportConfig(nil, "r", lkBase), core.ErrInvalidInput, "holds *livekitwebhook.Receiver"},
		{"no room", TransportConfig(started.Receiver, "", lkBase), core.ErrInvalidInput, `Extra["room"]`},
		{"no url", TransportConfig(started.Receiver, "r", transport.Config{Token: "k"}), core.ErrInvalidInput, "URL is required"},
		{"no token", TransportConfig(started.Receiver, "r", transport.Config{URL: "u"}), core.ErrInvalidInput, "Token is required"},
		{"receiver not started", TransportConfig(unstarted, "r", lkBase), core.ErrProviderDown, "not started"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := transport.New(TransportName, tc.cfg)
			if err == nil {
				_ = tr.Close()
				t.Fatal("no error")
			}
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("want core.Error %s, got %v", tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestTransportPipelineEndsOnRoomFinished runs a voice.VoicePipeline over the
// "livekit-webhook" transport: it keeps running through room_started and
// ends, without an error, once room_finished of its room was processed.
// The transport of another room stays open.
func TestTransportPipelineEndsOnRoomFinished(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	tp := newTestTransport(t, tr.Receiver, "voice-room")
	other := newTestTransport(t, tr.Receiver, "other-room")

	pipe := voice.NewPipeline(
		voice.WithTransport(tp),
		voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})),
		voice.WithSession(voice.NewSession("voice-room")),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- pipe.Run(ctx) }()

	t0 := time.Now().Unix()
	for _, ev := range []*livekit.WebhookEvent{
		roomEvent("EV_tr_start1", "room_started", "voice-room", "RM_voice", t0),
		participantEvent("EV_tr_join1", "participant_joined", "voice-room", "RM_voice", "PA_1", "caller", livekit.ParticipantInfo_STANDARD, t0+1, t0+1),
		roomEvent("EV_tr_ostart", "room_started", "other-room", "RM_other", t0),
	} {
		if code, body := postEvent(t, tr.url, ev); code != 200 {
			t.Fatalf("%s: %d %s", ev.Event, code, body)
		}
	}
	eventually(t, 10*time.Second, "room started processed", func() bool {
		s, ok, err := tp.Session(ctx)
		return err == nil && ok && len(s.Participants) == 1
	})
	select {
	case err := <-runErr:
		t.Fatalf("pipeline ended before room_finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if tp.Finished() {
		t.Fatal("finished before room_finished")
	}

	finished := roomEvent("EV_tr_finish", "room_finished", "voice-room", "RM_voice", t0+30)
	finished.RoomEndReason = livekit.RoomEndReason_ROOM_END_API_DELETE
	if code, body := postEvent(t, tr.url, finished); code != 200 {
		t.Fatalf("room_finished: %d %s", code, body)
	}
	var processed time.Time
	eventually(t, 10*time.Second, "room_finished processed", func() bool {
		s, ok, err := tr.SessionByRoomSID(ctx, "RM_voice")
		if err == nil && ok && s.EndedAt != nil {
			processed = time.Now()
			return true
		}
		return false
	})
	select {
	case err := <-runErr:
		// Run tells the room's end from a stop: the error names it, with
		// LiveKit's end reason.
		var fin *RoomFinishedError
		if !errors.Is(err, ErrRoomFinished) || !errors.As(err, &fin) {
			t.Fatalf("pipeline Run = %v, want a *RoomFinishedError", err)
		}
		if fin.Reason != "ROOM_END_API_DELETE" || fin.Room != "voice-room" || fin.RoomSID != "RM_voice" {
			t.Fatalf("RoomFinishedError = %+v", *fin)
		}
		if errors.Is(err, context.Canceled) {
			t.Fatalf("room end reads as a cancel: %v", err)
		}
		t.Logf("pipeline ended %s after room_finished was seen processed", time.Since(processed).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline still running 5s after room_finished was processed")
	}

	if !tp.Finished() {
		t.Fatal("Finished() = false")
	}
	select {
	case <-tp.Done():
	default:
		t.Fatal("Done not closed")
	}
	err := tp.Send(ctx, voice.NewAudioFrame([]byte{0, 0}, 16000))
	if !errors.Is(err, ErrTransportClosed) || !errors.Is(err, ErrRoomFinished) {
		t.Fatalf("Send after room_finished: %v", err)
	}
	if _, err := tp.AudioOut().Write([]byte{0}); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("AudioOut after close: %v", err)
	}
	assertRecvFinished(t, tp)

	// The other room's transport is still bound and open.
	if other.Finished() || other.isClosed() {
		t.Fatal("transport of another room was closed")
	}
	if err := other.Send(ctx, voice.NewAudioFrame([]byte{0, 0}, 16000)); err != nil {
		t.Fatalf("Send on open transport: %v", err)
	}
}

func TestTransportCloseUnbinds(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	conn := tr.engine().Conn()
	before := conn.NumSubscriptions()
	tp := newTestTransport(t, tr.Receiver, "close-room")
	if got := conn.NumSubscriptions(); got != before+1 {
		t.Fatalf("subscriptions %d → %d, want one more", before, got)
	}
	ctx := context.Background()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for _, err := range tp.Recv(ctx) {
			if err != nil {
				t.Errorf("Recv error: %v", err)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-recvDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Recv did not end on Close")
	}
	eventually(t, 5*time.Second, "subscription removed", func() bool { return conn.NumSubscriptions() == before })
	err := tp.Send(ctx, voice.Frame{})
	if !errors.Is(err, ErrTransportClosed) || errors.Is(err, ErrRoomFinished) {
		t.Fatalf("Send after Close: %v", err)
	}
	// room_finished of the unbound room changes nothing.
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_cl_start", "room_started", "close-room", "RM_close", t0))
	postEvent(t, tr.url, roomEvent("EV_cl_finish", "room_finished", "close-room", "RM_close", t0+1))
	eventually(t, 10*time.Second, "room_finished processed", func() bool {
		s, ok, _ := tr.SessionByRoomSID(ctx, "RM_close")
		return ok && s.EndedAt != nil
	})
	time.Sleep(50 * time.Millisecond)
	if tp.Finished() {
		t.Fatal("a closed transport became finished")
	}
}

func TestTransportRoomSIDAlreadyFinished(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	ctx := context.Background()
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_af_start", "room_started", "done-room", "RM_done", t0))
	postEvent(t, tr.url, roomEvent("EV_af_finish", "room_finished", "done-room", "RM_done", t0+1))
	eventually(t, 10*time.Second, "room_finished processed", func() bool {
		s, ok, _ := tr.SessionByRoomSID(ctx, "RM_done")
		return ok && s.EndedAt != nil
	})

	cfg := TransportConfig(tr.Receiver, "done-room", lkBase)
	cfg.Extra[ExtraRoomSID] = "RM_done"
	at, err := transport.New(TransportName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp := at.(*Transport)
	if !tp.Finished() {
		t.Fatal("transport of a finished room sid is open")
	}
	assertRecvFinished(t, tp)

	// Without the sid only a future room_finished closes it (the name may be
	// reused by a new room).
	tp2 := newTestTransport(t, tr.Receiver, "done-room")
	if tp2.Finished() {
		t.Fatal("transport by name closed by a past room_finished")
	}
	// The same sid, still active, keeps it open.
	postEvent(t, tr.url, roomEvent("EV_af_start2", "room_started", "live-room", "RM_live", t0))
	eventually(t, 10*time.Second, "room processed", func() bool {
		_, ok, _ := tr.SessionByRoomSID(ctx, "RM_live")
		return ok
	})
	cfg = TransportConfig(tr.Receiver, "live-room", lkBase)
	cfg.Extra[ExtraRoomSID] = "RM_live"
	at, err = transport.New(TransportName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	if at.(*Transport).Finished() {
		t.Fatal("transport of an active room sid is closed")
	}
}

// assertRecvFinished: Recv on a transport closed by its room's end yields
// one pair, the room's end, and nothing else.
func assertRecvFinished(t *testing.T, tp *Transport) {
	t.Helper()
	n := 0
	for f, err := range tp.Recv(context.Background()) {
		n++
		if len(f.Data) != 0 || !errors.Is(err, ErrRoomFinished) {
			t.Fatalf("Recv after the room finished yielded %v, %v", f, err)
		}
	}
	if n != 1 {
		t.Fatalf("Recv after the room finished yielded %d pairs, want 1", n)
	}
}

// TestTransportPipelineCanceled: a canceled context ends Run with
// context.Canceled, never with the room's end.
func TestTransportPipelineCanceled(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	tp := newTestTransport(t, tr.Receiver, "cancel-room")
	pipe := voice.NewPipeline(
		voice.WithTransport(tp),
		voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})),
	)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- pipe.Run(ctx) }()
	cancel()
	select {
	case err := <-runErr:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrRoomFinished) {
			t.Fatalf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end on cancel")
	}
	if tp.Finished() {
		t.Fatal("cancel marked the transport finished")
	}
}
