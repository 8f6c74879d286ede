package servetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Default paths of `lkwebhook serve`.
const (
	WebhookPath  = "/voice/livekit/webhooks"
	SessionsPath = "/voice/livekit/sessions"
	HealthPath   = "/healthz"
	MetricsPath  = "/metrics"
)

// DefaultAPIKey is the API key serve is given when Options.APIKey is empty
// (the key name of livekit-server --dev; the secret is random).
const DefaultAPIKey = "devkey"

// Options configures an `lkwebhook serve`. The zero value is serve with the
// default flags on a fresh data directory.
type Options struct {
	// Command is the program and its arguments before the flags. Default:
	// Binary(t) and "serve". A program given here must take --addr and
	// --data and print serve's "listening on http://ADDR" line.
	Command []string
	// Name names the process in logs. Default: "serve".
	Name string
	// Args are extra flags after `--addr ADDR --data DIR [--admin-token T]`.
	Args []string
	// Data is the data directory, kept across restarts. Default: a new
	// t.TempDir().
	Data string
	// Env are extra KEY=VALUE variables. The process gets the test's
	// environment without BELUGA_*, LIVEKIT_*, OTEL_* and LKWEBHOOK_* (so
	// nothing configures it behind the test's back), then
	// LIVEKIT_API_KEY/LIVEKIT_API_SECRET, then these.
	Env []string
	// APIKey and APISecret are the signing key serve accepts. Defaults:
	// DefaultAPIKey and a random 48-character secret.
	APIKey, APISecret string
	// AdminToken is passed as --admin-token and sent by every API helper.
	// Empty: no token (serve answers loopback clients).
	AdminToken string
	// StartTimeout bounds Start and Restart's wait for /healthz 200.
	// Default: 60 s.
	StartTimeout time.Duration
	// StopTimeout bounds the wait for an exit after a signal; past it the
	// test fails and the process is killed. Default: 45 s.
	StopTimeout time.Duration
	// KillAtEnd ends serve with SIGKILL when the test ends. By default it is
	// stopped gracefully (SIGTERM), which a hang or a race in the shutdown
	// then fails.
	KillAtEnd bool
}

// Serve is an `lkwebhook serve` process (running or not) and a client of
// its HTTP API. Its Proc methods start, stop, kill and read it.
type Serve struct {
	*Proc
	// APIKey and APISecret are the key serve accepts: give livekit-server
	// the same pair.
	APIKey, APISecret string
	// DataDir is serve's data directory, kept across restarts.
	DataDir string

	opts   Options
	path   string // webhook path
	client *http.Client

	mu   sync.Mutex
	addr string // host:port once serve said it
}

// anyPort lets the kernel pick the port; serve says which it got.
const anyPort = "127.0.0.1:0"

// New prepares (does not start) serve as opts say.
func New(t testing.TB, opts Options) *Serve {
	t.Helper()
	if opts.Command == nil {
		opts.Command = []string{Binary(t), "serve"}
	}
	if opts.Name == "" {
		opts.Name = "serve"
	}
	if opts.Data == "" {
		opts.Data = t.TempDir()
	}
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.APISecret == "" {
		opts.APISecret = RandomSecret()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 45 * time.Second
	}
	args := append(append([]string(nil), opts.Command[1:]...), "--addr", anyPort, "--data", opts.Data)
	if opts.AdminToken != "" {
		args = append(args, "--admin-token", opts.AdminToken)
	}
	args = append(args, opts.Args...)
	env := append(Env("LIVEKIT_API_KEY="+opts.APIKey, "LIVEKIT_API_SECRET="+opts.APISecret), opts.Env...)
	s := &Serve{
		Proc:      NewProc(t, opts.Name, opts.Command[0], args, env),
		APIKey:    opts.APIKey,
		APISecret: opts.APISecret,
		DataDir:   opts.Data,
		opts:      opts,
		path:      flagValue(opts.Args, "path", WebhookPath),
		client:    &http.Client{Timeout: 10 * time.Second},
	}
	s.stopTimeout = opts.StopTimeout
	if !opts.KillAtEnd {
		s.endSignal = syscall.SIGTERM
	}
	return s
}

// Start starts serve as opts say and waits until /healthz answers 200.
func Start(t testing.TB, opts Options) *Serve {
	t.Helper()
	s := New(t, opts)
	s.Proc.Start()
	s.WaitHealthy(t, s.opts.StartTimeout)
	return s
}

// Restart stops serve if it runs (SIGTERM) and starts it again on the same
// address and data directory, waiting for /healthz 200.
func (s *Serve) Restart() {
	s.t.Helper()
	s.Stop()
	s.Proc.Start()
	s.WaitHealthy(s.t, s.opts.StartTimeout)
}

// listeningOn precedes the address in the line serve prints on stdout once
// it listens: "lkwebhook: listening on http://ADDR/path".
const listeningOn = "listening on http://"

// Addr is the host:port serve listens on, "" until it said so. The first
// address is kept for every restart, which must keep the URLs.
func (s *Serve) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr != "" {
		return s.addr
	}
	out := s.Output()
	i := strings.Index(out, listeningOn)
	if i < 0 {
		return ""
	}
	addr := out[i+len(listeningOn):]
	if j := strings.IndexAny(addr, "/\n"); j >= 0 {
		addr = addr[:j]
	}
	s.SetArg("--addr", addr)
	s.addr = addr
	return addr
}

// URL is serve's base URL (http://ADDR), "" until it listens.
func (s *Serve) URL() string {
	if a := s.Addr(); a != "" {
		return "http://" + a
	}
	return ""
}

// WebhookURL is where LiveKit must post (the --path flag is honoured).
func (s *Serve) WebhookURL() string { return s.URL() + s.path }

// Health is the status of GET /healthz: 0 while serve is unreachable or
// not yet listening.
func (s *Serve) Health() int {
	if s.Addr() == "" {
		return 0
	}
	resp, err := s.client.Get(s.URL() + HealthPath)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Healthy reports whether /healthz answers 200 now.
func (s *Serve) Healthy() bool { return s.Health() == http.StatusOK }

// WaitHealthy waits for /healthz 200 and returns how long it took.
func (s *Serve) WaitHealthy(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	return s.WaitHealth(t, http.StatusOK, timeout)
}

// WaitHealth waits until /healthz answers want and returns how long it
// took; it fails the test if serve exits or timeout passes first.
func (s *Serve) WaitHealth(t testing.TB, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := -1
	err := poll(context.Background(), timeout, 50*time.Millisecond, func() bool {
		if !s.Running() {
			return true
		}
		last = s.Health()
		return last == want
	})
	switch {
	case !s.Running():
		t.Fatalf("servetest: %s exited while waiting for /healthz %d: %v", s.name, want, s.ExitErr())
	case err != nil:
		t.Fatalf("servetest: %s /healthz still %d after %s, want %d", s.name, last, timeout, want)
	}
	return time.Since(start)
}

// poll calls cond every interval until it holds (nil), or until timeout
// passes or ctx ends (an error).
func poll(ctx context.Context, timeout, interval time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// flagValue is the value of the flag name in args ("--name v", "-name v",
// "--name=v"), or def.
func flagValue(args []string, name, def string) string {
	v := def
	for i, a := range args {
		switch {
		case (a == "--"+name || a == "-"+name) && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--"+name+"="), strings.HasPrefix(a, "-"+name+"="):
			v = a[strings.Index(a, "=")+1:]
		}
	}
	return v
}

// Env is the test's environment without the variables that would configure
// serve (or another program a test runs) behind the test's back (BELUGA_*,
// LIVEKIT_*, OTEL_*, LKWEBHOOK_*), plus extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BELUGA_"), strings.HasPrefix(k, "LIVEKIT_"),
			strings.HasPrefix(k, "OTEL_"), strings.HasPrefix(k, "LKWEBHOOK_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// RandomSecret is a random 48-character API secret (livekit-server wants
// at least 32).
func RandomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
