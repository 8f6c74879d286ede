// Command observability runs the LiveKit webhook receiver with its
// telemetry wired up: metrics in Prometheus format on /metrics (the OTel
// Prometheus exporter over the receiver's instruments) and traces through
// Beluga's o11y.BootstrapFromEnv (OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, stdout when BELUGA_OTEL_STDOUT is).
// otel-collector.yaml and grafana-dashboard.json beside it consume both;
// see README.md.
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 go run ./examples/observability
package main

import (
	"context"
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

	"github.com/lookatitude/beluga-ai/v2/o11y"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

// run serves webhooks, the sessions API, /metrics and /healthz until ctx
// ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("observability", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (otel-collector.yaml scrapes 127.0.0.1:8080/metrics)")
	data := fs.String("data", "./data", "embedded engine data directory")
	grace := fs.String("finalize-grace", "10s", "wait for late events after room_finished before the report")
	adminToken := fs.String("admin-token", os.Getenv("LKWEBHOOK_ADMIN_TOKEN"),
		"bearer token for /metrics and the sessions API; without it they answer local clients only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Traces: Beluga's bootstrap installs the global tracer provider, which
	// the receiver uses by default. It installs no propagator.
	shutdownTracing, err := o11y.BootstrapFromEnv(ctx, "lkwebhook-example")
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer shutdownTracing()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	// Metrics: Beluga installs no MeterProvider; wire the Prometheus one.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = meters.Shutdown(context.Background()) }()

	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret = os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	if cfg.APIKey == "" || cfg.APISecret == "" {
		cfg.APIKey, cfg.APISecret, cfg.Dev = "devkey", "secret", true
		fmt.Fprintln(out, "using the development keys devkey/secret (set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)")
	}
	cfg.DataDir = *data
	cfg.FinalizeGrace = *grace
	cfg.AdminToken = *adminToken
	recv, err := livekitwebhook.New(cfg, livekitwebhook.WithLogger(log), livekitwebhook.WithMeterProvider(meters))
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
	mux.Handle("/metrics", livekitwebhook.AdminGuard(cfg.AdminToken, promhttp.HandlerFor(registry, promhttp.HandlerOpts{})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := recv.Health()
		if h.Status != "healthy" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "%s: %s\n", h.Status, h.Message)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening on http://%s (webhooks %s, metrics /metrics)\n", ln.Addr(), recv.Config().Path)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	recv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
