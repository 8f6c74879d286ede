// Command minimal runs the LiveKit webhook receiver on plain net/http with
// two hooks: it logs participant joins and prints each final session
// report.
//
//	go run ./examples/minimal                      # keys devkey/secret, like livekit-server --dev
//	LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… go run ./examples/minimal --addr :8080
//
// Point livekit-server's webhook at http://HOST:8080/voice/livekit/webhooks
// (or send signed events with `go run ./cmd/lkwebhook send`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

// run serves the receiver until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	data := fs.String("data", "./data", "embedded engine data directory")
	grace := fs.String("finalize-grace", "10s", "wait for late events after room_finished before the report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}

	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret = os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	if cfg.APIKey == "" || cfg.APISecret == "" {
		cfg.APIKey, cfg.APISecret, cfg.Dev = "devkey", "secret", true
		fmt.Fprintln(out, "using the development keys devkey/secret (set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)")
	}
	cfg.DataDir = *data
	cfg.FinalizeGrace = *grace

	hooks := livekitwebhook.Hooks{
		OnParticipantJoined: func(_ context.Context, ev *livekit.WebhookEvent, s livekitwebhook.Session) error {
			fmt.Fprintf(out, "participant joined: %s (%s) in room %s, session %s\n",
				ev.GetParticipant().GetIdentity(), ev.GetParticipant().GetKind(), s.RoomName, s.SessionID)
			return nil
		},
		OnSessionEnded: func(_ context.Context, r livekitwebhook.Report) error {
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "session ended: %s (%s, %.0fs)\n%s\n", r.SessionID, r.Disposition, r.DurationSeconds, b)
			return nil
		},
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	recv, err := livekitwebhook.New(cfg, livekitwebhook.WithHooks(hooks), livekitwebhook.WithLogger(log))
	if err != nil {
		return err
	}
	if err := recv.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = recv.Stop(context.Background()) }()

	mux := http.NewServeMux()
	for path, h := range recv.Routes() {
		mux.Handle(path, h)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening on http://%s%s\n", ln.Addr(), recv.Config().Path)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	recv.Drain() // 503 to LiveKit, which retries later
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// lockedWriter serializes writes: hooks run on several workers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
