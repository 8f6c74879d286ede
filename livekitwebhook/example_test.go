package livekitwebhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"github.com/lookatitude/beluga-ai/v2/server"
	"github.com/lookatitude/beluga-ai/v2/voice/transport"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const (
	apiKey    = "APIexample"
	apiSecret = "an-example-secret-of-at-least-32-bytes"
)

// A receiver on net/http: LiveKit posts a call (signed here by
// livekitwebhooktest exactly as LiveKit signs), event hooks see the live
// Session, and OnSessionEnded gets the final Report once the room finished.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "livekitwebhook-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := livekitwebhook.DefaultConfig() // or LoadConfigFromEnv, LoadConfig
	cfg.APIKey, cfg.APISecret = apiKey, apiSecret
	cfg.DataDir = dir          // the embedded NATS server's storage
	cfg.FinalizeGrace = "50ms" // how long a report waits for late events after room_finished

	joined := make(chan livekitwebhook.Session, 1)
	reports := make(chan livekitwebhook.Report, 1)
	recv, err := livekitwebhook.New(cfg,
		livekitwebhook.WithLogger(slog.New(slog.DiscardHandler)),
		livekitwebhook.WithHooks(livekitwebhook.Hooks{
			Name: "example",
			OnParticipantJoined: func(_ context.Context, _ *livekit.WebhookEvent, s livekitwebhook.Session) error {
				joined <- s
				return nil
			},
			OnSessionEnded: func(_ context.Context, r livekitwebhook.Report) error {
				reports <- r
				return nil
			},
		}))
	if err != nil {
		log.Fatal(err)
	}
	if err := recv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer recv.Stop(context.Background())

	mux := http.NewServeMux()
	for path, h := range recv.Routes() {
		mux.Handle(path, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(ev *livekit.WebhookEvent) {
		req, err := livekitwebhooktest.NewRequest(ctx, srv.URL+cfg.Path, apiKey, apiSecret, ev)
		if err != nil {
			log.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
		fmt.Println(ev.Event, res.Status, res.Header.Get(livekitwebhook.HeaderOutcome))
	}
	caller := &livekit.ParticipantInfo{Sid: "PA_caller", Identity: "caller", Kind: livekit.ParticipantInfo_SIP}
	post(livekitwebhooktest.RoomEvent("room_started", "call-7", "RM_call7"))
	post(livekitwebhooktest.ParticipantEvent("participant_joined", "call-7", "RM_call7", caller))
	s := <-joined
	fmt.Println("live:", s.SessionID, s.Participants[0].Identity, s.Participants[0].State, s.EndedAt == nil)

	post(livekitwebhooktest.ParticipantEvent("participant_left", "call-7", "RM_call7", caller))
	post(livekitwebhooktest.RoomEvent("room_finished", "call-7", "RM_call7"))
	r := <-reports
	fmt.Println("report:", r.SessionID, r.Disposition, r.Participants[0].State)
	// Output:
	// room_started 200 OK accepted
	// participant_joined 200 OK accepted
	// live: call-7 caller active true
	// participant_left 200 OK accepted
	// room_finished 200 OK accepted
	// report: call-7 completed left
}

// Every refused request comes with a *RefusalError: the HTTP status, a
// stable reason (also the metric label and log field) and a cause to test
// with errors.Is. Verification happens before the store is needed, so this
// receiver is not even started.
func ExampleWithRefusalHandler() {
	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret = apiKey, apiSecret
	recv, err := livekitwebhook.New(cfg,
		livekitwebhook.WithLogger(slog.New(slog.DiscardHandler)),
		livekitwebhook.WithRefusalHandler(func(_ *http.Request, e *livekitwebhook.RefusalError) {
			fmt.Println(e.Status, e.Reason, errors.Is(e, livekitwebhook.ErrHashMismatch))
		}))
	if err != nil {
		log.Fatal(err)
	}
	// A body changed after it was signed.
	req, err := livekitwebhooktest.NewRawRequest(context.Background(), "http://example"+cfg.Path, apiKey, apiSecret, []byte(`{"event":"room_started","id":"EV_a"}`))
	if err != nil {
		log.Fatal(err)
	}
	tampered := `{"event":"room_finished","id":"EV_a"}`
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader(tampered)), int64(len(tampered))
	w := httptest.NewRecorder()
	recv.ServeHTTP(w, req)
	fmt.Println(w.Code)
	// Output:
	// 401 hash_mismatch true
	// 401
}

// On a Beluga app: AutoWire builds, starts and mounts the receiver when the
// configuration enables it; the Plugin and the "livekit-webhook" transport
// tie the agent and the voice pipeline to the room.
func ExampleAutoWire() {
	ctx := context.Background()
	cfg, err := livekitwebhook.LoadConfigFromEnv() // BELUGA_LIVEKIT_WEBHOOK_ENABLED=true, LIVEKIT_API_KEY, …
	if err != nil {
		log.Fatal(err)
	}
	srv := server.NewStdlibAdapter(server.Config{})
	sessions := runtime.NewInMemorySessionService()
	recv, err := livekitwebhook.AutoWire(ctx, srv, "livekit", cfg,
		livekitwebhook.WithSessionService(sessions), // a Beluga session per room; the Report lands in its State
		livekitwebhook.WithHooks(livekitwebhook.Hooks{
			Name: "billing",
			OnSessionEnded: func(ctx context.Context, r livekitwebhook.Report) error {
				log.Printf("bill %s: %.0f participant-seconds", r.SessionID, r.ParticipantSeconds)
				return nil
			},
		}))
	if err != nil {
		log.Fatal(err)
	}
	if recv == nil {
		return // not enabled by the configuration
	}
	defer recv.Stop(context.Background())

	// Turns of a Beluga session whose room finished are refused with
	// ErrRoomFinished: runtime.NewRunner(agent, runtime.WithSessionService(sessions),
	// runtime.WithPlugins(recv.Plugin())).
	_ = recv.Plugin()

	// A voice transport bound to the room: it closes, and so ends a
	// voice.VoicePipeline on it, once the room's room_finished is processed.
	t, err := transport.New(livekitwebhook.TransportName,
		livekitwebhook.TransportConfig(recv, "call-7", transport.Config{URL: "wss://livekit.example", Token: "…"}))
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
}
