package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

// startTestReceiver runs a real receiver (embedded engine in a temp dir)
// behind an httptest server with all its routes.
func startTestReceiver(t *testing.T, cfg livekitwebhook.Config, opts ...livekitwebhook.Option) (*livekitwebhook.Receiver, *httptest.Server) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey, cfg.APISecret = "devkey", "secret"
	}
	cfg.Dev = true // the CLI's default key is the dev key devkey/secret
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	opts = append([]livekitwebhook.Option{livekitwebhook.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	recv, err := livekitwebhook.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := recv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = recv.Stop(ctx)
	})
	mux := http.NewServeMux()
	for p, h := range recv.Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return recv, srv
}

// clearKeyEnv makes the key environment empty for the test.
func clearKeyEnv(t *testing.T) {
	t.Setenv("LIVEKIT_API_KEY", "")
	t.Setenv("LIVEKIT_API_SECRET", "")
	t.Setenv("LIVEKIT_KEYS", "")
	t.Setenv("LKWEBHOOK_ADMIN_TOKEN", "")
}

// runCLI runs the command line with a bound and returns exit code, stdout
// and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	t.Logf("lkwebhook %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
