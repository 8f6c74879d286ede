// Command beluga-voice runs a Beluga voice pipeline whose lifetime follows a
// LiveKit room: a Beluga server (stdlib adapter) receives LiveKit's webhooks
// (livekitwebhook.AutoWire mounts the receiver), and a voice.VoicePipeline
// runs over the "livekit-webhook" transport bound to --room. When the
// room's room_finished has been processed, the transport closes, the
// pipeline ends and the command exits 0.
//
//	go run ./examples/beluga-voice --room demo
//	go run ./cmd/lkwebhook send --url http://127.0.0.1:8080/voice/livekit/webhooks room_finished --room demo
//
// Keys come from the variables `lkwebhook serve` reads: LIVEKIT_API_KEY and
// LIVEKIT_API_SECRET, LIVEKIT_KEYS ("key: secret" lines) and the
// BELUGA_LIVEKIT_WEBHOOK_* configuration, else the development keys
// devkey/secret of `livekit-server --dev`.
//
// The pipeline has a voice activity detector (Beluga's built-in energy VAD)
// and no STT, LLM or TTS: those need network providers, and a pipeline
// needs at least one processor. Beluga's "livekit" transport under
// "livekit-webhook" opens no media connection, so the pipeline receives no
// audio: this example shows the lifecycle, not speech.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lookatitude/beluga-ai/v2/server"
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
		fmt.Fprintln(os.Stderr, "beluga-voice:", err)
		os.Exit(1)
	}
}

// run serves webhooks and runs the pipeline until the room finishes (nil),
// ctx ends (nil) or something fails.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("beluga-voice", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the Beluga server")
	room := fs.String("room", "demo", "LiveKit room whose room_finished ends the pipeline")
	data := fs.String("data", "./data", "embedded engine data directory")
	lkURL := fs.String("livekit-url", envOr("LIVEKIT_URL", "ws://127.0.0.1:7880"), "LiveKit server URL given to the transport")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *room == "" {
		return errors.New("--room is required")
	}

	cfg, err := livekitwebhook.LoadConfigFromEnv()
	if err != nil {
		return err
	}
	if cfg.APIKey == "" && cfg.APISecret == "" && strings.TrimSpace(cfg.Keys) == "" && cfg.KeyFile == "" {
		cfg.APIKey, cfg.APISecret, cfg.Dev = devKey, devSecret, true
		fmt.Fprintln(stdout, "using the development keys devkey/secret (set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)")
	}
	cfg.DataDir = *data
	cfg.Enabled = true // this example is about the plugin; AutoWire honours Enabled

	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.NewStdlibAdapter(server.Config{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	recv, err := livekitwebhook.AutoWire(ctx, srv, livekitwebhook.TransportName, cfg, livekitwebhook.WithLogger(log))
	if err != nil {
		return err
	}
	defer func() { _ = recv.Stop(context.Background()) }()

	token, err := cfg.AgentToken(*room, "beluga-agent")
	if err != nil {
		return err
	}
	tcfg := livekitwebhook.TransportConfig(recv, *room, transport.Config{URL: *lkURL, Token: token, SampleRate: 16000, Channels: 1})
	tr, err := transport.New(livekitwebhook.TransportName, tcfg)
	if err != nil {
		return err
	}
	defer func() { _ = tr.Close() }()

	pipe := voice.NewPipeline(
		voice.WithTransport(tr),
		voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})),
		voice.WithSession(voice.NewSession(*room)),
		voice.WithHooks(voice.Hooks{
			OnSpeechStart: func(context.Context) { fmt.Fprintln(stdout, "speech started") },
		}),
	)

	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(srvCtx, *addr) }()
	fmt.Fprintf(stdout, "listening on http://%s%s; voice pipeline bound to room %q\n", *addr, recv.Config().Path, *room)

	pipeErr := make(chan error, 1)
	go func() { pipeErr <- pipe.Run(ctx) }()

	select {
	case err = <-pipeErr:
	case err := <-serveErr:
		// The server ended first: it failed, or ctx ended.
		_ = tr.Close()
		<-pipeErr
		if ctx.Err() != nil {
			fmt.Fprintln(stdout, "interrupted")
			return nil
		}
		if err == nil {
			err = errors.New("server stopped")
		}
		return fmt.Errorf("server: %w", err)
	}
	stopServer()
	<-serveErr
	// Run says why it ended: the room's end (with LiveKit's reason) is an
	// error matching ErrRoomFinished, a cancel is ctx's error.
	var fin *livekitwebhook.RoomFinishedError
	switch {
	case errors.As(err, &fin):
		fmt.Fprintf(stdout, "room %q finished (%s): pipeline ended\n", *room, reasonOr(fin.Reason))
		return nil
	case ctx.Err() != nil:
		fmt.Fprintln(stdout, "interrupted")
		return nil
	case err != nil:
		return fmt.Errorf("pipeline: %w", err)
	}
	return errors.New("pipeline ended before the room finished")
}

func reasonOr(reason string) string {
	if reason == "" {
		return "no end reason sent"
	}
	return reason
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
