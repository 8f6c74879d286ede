// Command hookserve is the receiver with a slow, counting OnEvent hook: the
// crash test kills it with SIGKILL while hooks are running and counts, from
// the file the hook appends to, how often each event reached the hook.
package main

import (
	"context"
	"flag"
	"fmt"
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
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	data := flag.String("data", "./data", "data directory")
	calls := flag.String("calls", "calls.log", "file the hook appends one event id per call to")
	delay := flag.Duration("hook-delay", 30*time.Millisecond, "how long each hook call takes")
	flag.Parse()

	f, err := os.OpenFile(*calls, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	hook := func(ctx context.Context, ev *livekit.WebhookEvent, _ livekitwebhook.Session) error {
		select {
		case <-time.After(*delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		_, err := f.WriteString(ev.Id + "\n")
		return err
	}
	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret = os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	cfg.DataDir = *data
	r, err := livekitwebhook.New(cfg, livekitwebhook.WithHooks(livekitwebhook.Hooks{OnEvent: hook}),
		livekitwebhook.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err == nil {
		err = r.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	for p, h := range r.Routes() {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if r.Health().Status != "healthy" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// As serve does: the tests start it on port 0 and read the address here.
	fmt.Printf("hookserve: listening on http://%s/\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = r.Stop(context.Background())
}
