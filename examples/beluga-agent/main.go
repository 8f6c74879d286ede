// Command beluga-agent is the shape of a Beluga agent app whose agent and
// LiveKit room are one call, to copy from:
//   - a runtime.Runner with an agent (here a deterministic one: put your LLM
//     in newAgent);
//   - the Runner's sessions are the receiver's (recv.SessionService()): a
//     turn for the room's session id ("call-7", the room name by default)
//     continues the Beluga session whose State the receiver fills
//     (livekit.room_name, livekit.room_sid, the final livekit.report);
//   - the receiver's runtime plugin (recv.Plugin()) puts the live room into
//     State["livekit.room"] before each turn, refuses turns once the room
//     finished (ErrRoomFinished) and links each turn to the room's trace;
//   - a voice pipeline on the "livekit-webhook" transport, bound to --room,
//     whose Run returns a *livekitwebhook.RoomFinishedError when the room
//     ends;
//   - tracing bootstrapped with Beluga's o11y.BootstrapFromEnv
//     (OTEL_EXPORTER_OTLP_ENDPOINT, or BELUGA_OTEL_STDOUT=1): webhook spans
//     and turn spans carry gen_ai.conversation.id = the room's session id.
//
// Run it, then send it webhooks:
//
//	go run ./examples/beluga-agent --room call-7
//	go run ./cmd/lkwebhook send --url http://127.0.0.1:8080/voice/livekit/webhooks room_started --room call-7
//	go run ./cmd/lkwebhook send --url http://127.0.0.1:8080/voice/livekit/webhooks room_finished --room call-7
//
// Keys: LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or the other variables
// `lkwebhook serve` reads), else the development keys devkey/secret of
// `livekit-server --dev`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/o11y"
	"github.com/lookatitude/beluga-ai/v2/runtime"
	"github.com/lookatitude/beluga-ai/v2/schema"
	"github.com/lookatitude/beluga-ai/v2/server"
	"github.com/lookatitude/beluga-ai/v2/tool"
	"github.com/lookatitude/beluga-ai/v2/voice"
	"github.com/lookatitude/beluga-ai/v2/voice/transport"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

// Development keys, those of `livekit-server --dev`.
const (
	devKey    = "devkey"
	devSecret = "secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "beluga-agent:", err)
		os.Exit(1)
	}
}

// run serves webhooks and follows --room until it finishes (nil), ctx ends
// (nil) or something fails. traceOpts go to o11y.BootstrapFromEnv (a test
// passes an in-memory exporter).
func run(ctx context.Context, args []string, stdout io.Writer, traceOpts ...o11y.TracerOption) error {
	fs := flag.NewFlagSet("beluga-agent", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the Beluga server")
	room := fs.String("room", "call-7", "LiveKit room the voice pipeline follows")
	data := fs.String("data", "./data", "embedded engine data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Beluga's bootstrap installs the global TracerProvider the receiver,
	// the agent and o11y.StartSpan all use. A failure leaves tracing off,
	// it does not stop the app.
	shutdownTracing, err := o11y.BootstrapFromEnv(ctx, "beluga-agent", traceOpts...)
	if err != nil {
		fmt.Fprintln(stdout, "tracing off:", err)
	}
	defer shutdownTracing()

	cfg, err := loadConfig(stdout, *data)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()

	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.srv.Serve(srvCtx, *addr) }()
	fmt.Fprintf(stdout, "listening on http://%s%s; agent follows room %q\n", *addr, cfg.Path, *room)

	roomCtx, stopRoom := context.WithCancel(ctx)
	defer stopRoom()
	roomErr := make(chan error, 1)
	go func() { roomErr <- a.followRoom(roomCtx, *room) }()
	select {
	case err = <-roomErr:
		stopServer()
		<-serveErr
	case err = <-serveErr:
		stopRoom()
		<-roomErr
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("server stopped")
			}
			return fmt.Errorf("server: %w", err)
		}
	}
	var fin *livekitwebhook.RoomFinishedError
	switch {
	case errors.As(err, &fin):
		fmt.Fprintf(stdout, "room %q finished (%s)\n", fin.Room, fin.Reason)
		return nil
	case ctx.Err() != nil:
		fmt.Fprintln(stdout, "interrupted")
		return nil
	case err != nil:
		return fmt.Errorf("room %q: %w", *room, err)
	}
	return errors.New("pipeline ended before the room finished")
}

// loadConfig reads the receiver's configuration from the environment, with
// the development keys when none is set and the data directory given.
func loadConfig(stdout io.Writer, dataDir string) (livekitwebhook.Config, error) {
	cfg, err := livekitwebhook.LoadConfigFromEnv()
	if err != nil {
		return cfg, err
	}
	if cfg.APIKey == "" && cfg.APISecret == "" && strings.TrimSpace(cfg.Keys) == "" && cfg.KeyFile == "" {
		cfg.APIKey, cfg.APISecret, cfg.Dev = devKey, devSecret, true
		fmt.Fprintln(stdout, "using the development keys devkey/secret (set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)")
	}
	cfg.DataDir = dataDir
	cfg.Enabled = true // this example is about the plugin; AutoWire honours Enabled
	return cfg, nil
}

// app is the receiver, the agent's Runner sharing its sessions, and the
// Beluga server the receiver is mounted on.
type app struct {
	srv    server.ServerAdapter
	recv   *livekitwebhook.Receiver
	runner *runtime.Runner
	cfg    livekitwebhook.Config
	log    *slog.Logger
}

// newApp starts the receiver on a Beluga server and builds the Runner.
// Serve a.srv to receive webhooks; close the app when done.
func newApp(ctx context.Context, cfg livekitwebhook.Config, log *slog.Logger) (*app, error) {
	// The app's own session store goes here (anything implementing
	// runtime.SessionService); the receiver fills it, the Runner reads it.
	sessions := runtime.NewInMemorySessionService()
	srv := server.NewStdlibAdapter(server.Config{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	recv, err := livekitwebhook.AutoWire(ctx, srv, livekitwebhook.TransportName, cfg,
		livekitwebhook.WithSessionService(sessions), livekitwebhook.WithLogger(log))
	if err != nil {
		return nil, err
	}
	runner := runtime.NewRunner(agent.ApplyMiddleware(newAgent(), agent.WithTracing()),
		// Get resolves a room's session id to the session the receiver fills.
		runtime.WithSessionService(recv.SessionService()),
		runtime.WithPlugins(recv.Plugin()))
	return &app{srv: srv, recv: recv, runner: runner, cfg: cfg, log: log}, nil
}

// close stops the Runner and the receiver.
func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = a.runner.Shutdown(ctx)
	_ = a.recv.Stop(ctx)
}

// turn runs one agent turn in the session of a room (its session id: the
// room name unless the receiver's correlation says otherwise) and returns
// the reply. After the room finished it fails with an error matching
// livekitwebhook.ErrRoomFinished.
func (a *app) turn(ctx context.Context, sessionID, text string) (string, error) {
	// The app's span around the turn, parent of the agent's spans: the
	// plugin tags it with the session and links it to the room's trace.
	ctx, span := o11y.StartSpan(ctx, "app.turn", o11y.Attrs{o11y.AttrOperationName: "app.turn"})
	defer span.End()
	ctx = core.WithSessionID(ctx, sessionID)
	var out strings.Builder
	for ev, err := range a.runner.Run(ctx, sessionID, schema.NewHumanMessage(text)) {
		if err != nil {
			span.RecordError(err)
			return out.String(), err
		}
		out.WriteString(ev.Text)
	}
	return out.String(), nil
}

// followRoom runs a voice pipeline on the "livekit-webhook" transport bound
// to room until the room finishes (a *livekitwebhook.RoomFinishedError) or
// ctx ends.
func (a *app) followRoom(ctx context.Context, room string) error {
	token, err := a.cfg.AgentToken(room, "beluga-agent")
	if err != nil {
		return err
	}
	tcfg := livekitwebhook.TransportConfig(a.recv, room, transport.Config{URL: envOr("LIVEKIT_URL", "ws://127.0.0.1:7880"), Token: token, SampleRate: 16000, Channels: 1})
	tr, err := transport.New(livekitwebhook.TransportName, tcfg)
	if err != nil {
		return err
	}
	defer func() { _ = tr.Close() }()
	pipe := voice.NewPipeline(
		voice.WithTransport(tr),
		// Add your STT (voice.WithSTT) and TTS here: each transcript then
		// becomes an agent turn in the room's session.
		voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})),
		voice.WithSession(voice.NewSession(room)),
		voice.WithHooks(voice.Hooks{
			OnTranscript: func(ctx context.Context, text string) {
				if _, err := a.turn(ctx, room, text); err != nil {
					a.log.Warn("turn failed", "room", room, "error", err)
				}
			},
		}),
	)
	return pipe.Run(ctx)
}

// newAgent is the agent. A real app builds it with its LLM:
//
//	agent.New("assistant", agent.WithLLM(model), agent.WithTools(tools...))
//
// Here a deterministic one answers, so that the example runs offline.
func newAgent() agent.Agent { return echoAgent{} }

// echoAgent answers every input with "you said: <input>".
type echoAgent struct{}

func (echoAgent) ID() string              { return "assistant" }
func (echoAgent) Persona() agent.Persona  { return agent.Persona{} }
func (echoAgent) Tools() []tool.Tool      { return nil }
func (echoAgent) Children() []agent.Agent { return nil }
func (echoAgent) Invoke(_ context.Context, in string, _ ...agent.Option) (string, error) {
	return "you said: " + in, nil
}
func (echoAgent) Stream(_ context.Context, in string, _ ...agent.Option) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		yield(agent.Event{Type: agent.EventText, Text: "you said: " + in}, nil)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
