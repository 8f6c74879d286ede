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
	"runtime/debug"
	"strings"
	"time"

	"github.com/lookatitude/beluga-ai/v2/o11y"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/roomservice"
)

// defaultMemoryLimit is the soft memory limit serve sets unless GOMEMLIMIT
// is given.
const defaultMemoryLimit = 192 << 20

// Dev keys: exactly those of `livekit-server --dev`.
const (
	devKey    = "devkey"
	devSecret = "secret"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen address")
	path := fs.String("path", "", "webhook path (default /voice/livekit/webhooks)")
	data := fs.String("data", "", "embedded engine data directory (default ./data)")
	natsURL := fs.String("nats-url", "", "external NATS/JetStream URL(s), comma separated; empty runs an embedded server")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file")
	natsCA := fs.String("nats-tls-ca", "", "NATS TLS CA file")
	natsCert := fs.String("nats-tls-cert", "", "NATS TLS client certificate")
	natsKey := fs.String("nats-tls-key", "", "NATS TLS client key")
	replicas := fs.Int("replicas", 0, "stream and bucket replicas on an external cluster")
	configFile := fs.String("config", "", "JSON config file (livekitwebhook.Config)")
	dev := fs.Bool("dev", false, "development mode: keys devkey/secret (as livekit-server --dev; short secrets accepted), bind 127.0.0.1 only")
	grace := fs.String("finalize-grace", "", "wait for late events after room_finished (default 10s)")
	egressWait := fs.String("egress-wait", "", "how long after room_finished the report waits for the room's recordings (egress) to end (default 5m)")
	maxAge := fs.String("max-session-age", "", "close sessions without room_finished after this age (default 24h)")
	adminToken := fs.String("admin-token", os.Getenv("LKWEBHOOK_ADMIN_TOKEN"), "token for the sessions, DLQ, reconcile and metrics endpoints (env LKWEBHOOK_ADMIN_TOKEN); without it they answer local clients only, and are off on a non-loopback --addr")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	lkURL := fs.String("livekit-url", os.Getenv("LIVEKIT_URL"), "LiveKit server URL: enables reconciliation through RoomService (env LIVEKIT_URL)")
	reconcileEvery := fs.Duration("reconcile-interval", time.Minute, "how often to reconcile sessions with LiveKit's room list")
	reconcileDelay := fs.Duration("reconcile-close-delay", livekitwebhook.DefaultReconcileCloseDelay, "how long a session whose room LiveKit no longer lists waits for a late room_finished")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr, *logLevel)
	if os.Getenv("GOMEMLIMIT") == "" {
		// The embedded engine caches recently written blocks; without a
		// soft limit Go's GC lets a burst of large bodies double the heap.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	cfg, err := loadServeConfig(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook serve:", err)
		return 2
	}
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setIf(&cfg.Path, *path)
	setIf(&cfg.DataDir, *data)
	if cfg.DataDir == "" {
		cfg.DataDir = livekitwebhook.DefaultDataDir // serve's documented default: chosen, not warned about
	}
	setIf(&cfg.NatsURL, *natsURL)
	setIf(&cfg.NatsCreds, *natsCreds)
	setIf(&cfg.NatsTLSCA, *natsCA)
	setIf(&cfg.NatsTLSCert, *natsCert)
	setIf(&cfg.NatsTLSKey, *natsKey)
	setIf(&cfg.FinalizeGrace, *grace)
	setIf(&cfg.EgressWait, *egressWait)
	setIf(&cfg.MaxSessionAge, *maxAge)
	setIf(&cfg.AdminToken, *adminToken)
	if *replicas > 0 {
		cfg.Replicas = *replicas
	}
	listen := *addr
	if *dev {
		cfg.APIKey, cfg.APISecret, cfg.Dev = devKey, devSecret, true
		listen = loopbackOnly(listen)
	}

	shutdownTracing, err := o11y.BootstrapFromEnv(ctx, "lkwebhook")
	if err != nil {
		log.Warn("tracing disabled", "error", err.Error())
	}
	defer shutdownTracing()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook serve: metrics:", err)
		return 1
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = meters.Shutdown(context.Background()) }()

	opts := []livekitwebhook.Option{livekitwebhook.WithLogger(log), livekitwebhook.WithMeterProvider(meters)}
	if *lkURL != "" {
		key, secret := cfg.APIKey, cfg.APISecret
		if key == "" {
			fmt.Fprintln(stderr, "lkwebhook serve: --livekit-url needs an API key and secret (LIVEKIT_API_KEY/LIVEKIT_API_SECRET or api_key/api_secret)")
			return 2
		}
		opts = append(opts, livekitwebhook.WithReconciler(roomservice.New(*lkURL, key, secret), *reconcileEvery),
			livekitwebhook.WithReconcileCloseDelay(*reconcileDelay))
	}
	recv, err := livekitwebhook.New(cfg, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook serve:", err)
		return 2
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = recv.Start(startCtx)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook serve:", err)
		return 1
	}

	c := recv.Config()
	// Without a token the admin endpoints trust the network position of a
	// request; on an address other hosts reach, a proxy or sidecar on this
	// host can make them public in ways no header reveals. So they are off.
	adminOff := c.AdminToken == "" && !loopbackListen(listen)
	mux := http.NewServeMux()
	for p, h := range recv.Routes() {
		if adminOff && p != c.Path {
			h = adminDisabled
		}
		mux.Handle(p, h)
	}
	mux.Handle("/healthz", healthz(recv))
	metrics := livekitwebhook.AdminGuard(c.AdminToken, promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	if adminOff {
		metrics = adminDisabled
	}
	mux.Handle("/metrics", metrics)
	// The timeouts and the header cap bound what one connection can hold,
	// max_connections how many there are (see the README's Limits).
	srv := &http.Server{
		Addr:              listen,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook serve:", err)
		_ = recv.Stop(context.Background())
		return 1
	}
	retryAfter, _ := time.ParseDuration(c.RetryAfter) // validated by New
	ln = newLimitListener(ln, c.MaxConnections, retryAfter)
	engineDesc := "embedded (data " + c.DataDir + ")"
	if c.NatsURL != "" {
		engineDesc = "external " + redactURL(c.NatsURL)
	}
	log.Info("lkwebhook serving", "addr", ln.Addr().String(), "webhook_path", c.Path,
		"sessions_path", c.SessionsPath, "engine", engineDesc, "dev", *dev, "max_connections", c.MaxConnections)
	// One write: whoever waits for "listening on" sees the rest too.
	var banner strings.Builder
	fmt.Fprintf(&banner, "lkwebhook: listening on http://%s%s\n", ln.Addr(), c.Path)
	if adminOff {
		log.Warn(adminOffMessage, "addr", ln.Addr().String())
		fmt.Fprintln(&banner, "lkwebhook: WARNING:", adminOffMessage)
	}
	consoleURL, access := consoleAt(ln.Addr(), c.ConsolePath, c.AdminToken != "", adminOff)
	if consoleURL == "" {
		log.Info("console off", "reason", access)
		fmt.Fprintln(&banner, "lkwebhook: console OFF:", access)
	} else {
		log.Info("console", "url", consoleURL, "access", access)
		fmt.Fprintf(&banner, "lkwebhook: console at %s (%s)\n", consoleURL, access)
	}
	fmt.Fprint(stdout, banner.String())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		log.Error("http server stopped", "error", err.Error())
		_ = recv.Stop(context.Background())
		return 1
	case <-ctx.Done():
	}
	// Graceful: refuse new webhooks with 503 (LiveKit retries), let
	// in-flight requests finish, then stop processing and the engine.
	log.Info("shutting down")
	recv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "error", err.Error())
	}
	if err := recv.Stop(sctx); err != nil {
		log.Warn("engine shutdown", "error", err.Error())
	}
	log.Info("stopped")
	return 0
}

// loadServeConfig: defaults, then the JSON file (if any), then environment.
func loadServeConfig(file string) (livekitwebhook.Config, error) {
	if file != "" {
		return livekitwebhook.LoadConfig(file)
	}
	return livekitwebhook.LoadConfigFromEnv()
}

func healthz(recv *livekitwebhook.Receiver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := recv.Health()
		w.Header().Set("Content-Type", "application/json")
		if h.Status != "healthy" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "{\"status\":%q,\"message\":%q}\n", h.Status, h.Message)
	})
}

// consoleAt is the console's URL on addr and who may open it, or "" and
// why it is off (the admin endpoints are off). An unspecified listen
// address (":8080") is shown as localhost, where this host reaches it.
func consoleAt(addr net.Addr, path string, token, adminOff bool) (url, access string) {
	if adminOff {
		return "", "the admin endpoints are off (non-loopback address without an admin token); set --admin-token to use it"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", "unknown listen address " + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	url = "http://" + net.JoinHostPort(host, port) + strings.TrimSuffix(path, "/") + "/"
	if token {
		return url, "log in with the admin token"
	}
	return url, "local requests only: no admin token"
}

// adminOffMessage says why the admin endpoints answer 403 admin_disabled.
const adminOffMessage = "admin endpoints (sessions, DLQ, reconcile, /metrics) are OFF: listening on a non-loopback address " +
	"without an admin token; set --admin-token (or LKWEBHOOK_ADMIN_TOKEN, admin_token) to use them"

// adminDisabled answers the admin endpoints when adminOffMessage applies.
var adminDisabled = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintln(w, `{"error":"Forbidden","reason":"admin_disabled"}`)
})

// loopbackListen reports whether a listen address binds loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() || host == "localhost"
}

// loopbackOnly rewrites a listen address to bind 127.0.0.1.
func loopbackOnly(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func redactURL(u string) string {
	var out []string
	for _, part := range strings.Split(u, ",") {
		if at := strings.LastIndex(part, "@"); at >= 0 {
			if scheme := strings.Index(part, "://"); scheme >= 0 && scheme < at {
				part = part[:scheme+3] + "***" + part[at:]
			}
		}
		out = append(out, part)
	}
	return strings.Join(out, ",")
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

var errUsage = errors.New("usage")
