package livekitwebhook

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/lookatitude/beluga-ai/v2/agent"
	"github.com/lookatitude/beluga-ai/v2/server"
	grpcadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/grpc"
)

// recordingAdapter records RegisterHandler calls.
type recordingAdapter struct {
	paths []string
}

func (a *recordingAdapter) RegisterAgent(string, agent.Agent) error { return nil }
func (a *recordingAdapter) RegisterHandler(p string, _ http.Handler) error {
	a.paths = append(a.paths, p)
	return nil
}
func (a *recordingAdapter) Serve(context.Context, string) error { return nil }
func (a *recordingAdapter) Shutdown(context.Context) error      { return nil }

func TestAutoWireDisabled(t *testing.T) {
	enabled := testConfig(t)
	enabled.Enabled = true
	disabled := testConfig(t)
	broken := enabled
	broken.APIKey, broken.APISecret = "", "" // would fail New: proves nothing is built
	tests := []struct {
		name      string
		cfg       Config
		transport string
	}{
		{"not enabled", disabled, "livekit"},
		{"not enabled, webhook transport", disabled, TransportName},
		{"other transport", enabled, "websocket"},
		{"empty transport", enabled, ""},
		{"case differs", enabled, "LiveKit"},
		{"not enabled, broken config", func() Config { c := broken; c.Enabled = false; return c }(), "livekit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &recordingAdapter{}
			r, err := AutoWire(context.Background(), a, tc.transport, tc.cfg)
			if r != nil || err != nil {
				t.Fatalf("AutoWire = %v, %v; want nil, nil", r, err)
			}
			if len(a.paths) != 0 {
				t.Fatalf("routes registered: %v", a.paths)
			}
		})
	}
}

func TestAutoWireEnabled(t *testing.T) {
	for _, name := range []string{"livekit", TransportName} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Enabled = true
			a := server.NewStdlibAdapter(server.Config{})
			r, err := AutoWire(context.Background(), a, name, cfg)
			if err != nil || r == nil {
				t.Fatalf("AutoWire: %v, %v", r, err)
			}
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			if h := r.Health(); h.Status != "healthy" {
				t.Fatalf("not started: %+v", h)
			}
			base := serveAdapter(t, a, freeAddr)
			code, body := postEvent(t, base+cfg.Path, roomEvent("EV_aw_1", "room_started", "aw-room", "RM_aw", time.Now().Unix()))
			if code != http.StatusOK {
				t.Fatalf("post: %d %s", code, body)
			}
			eventually(t, 10*time.Second, "session listed", func() bool {
				var list sessionsList
				return getJSON(t, base+cfg.SessionsPath, &list) == http.StatusOK && len(list.Active) == 1
			})
		})
	}
}

func TestAutoWireErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.Enabled = true
	t.Run("invalid config", func(t *testing.T) {
		bad := cfg
		bad.FinalizeGrace = "soon"
		if r, err := AutoWire(context.Background(), &recordingAdapter{}, "livekit", bad); err == nil || r != nil {
			t.Fatalf("AutoWire = %v, %v; want an error", r, err)
		}
	})
	t.Run("nil adapter", func(t *testing.T) {
		if r, err := AutoWire(context.Background(), nil, "livekit", cfg); err == nil || r != nil {
			t.Fatalf("AutoWire = %v, %v; want an error", r, err)
		}
	})
	t.Run("grpc adapter stops the receiver again", func(t *testing.T) {
		c := cfg
		c.DataDir = t.TempDir()
		r, err := AutoWire(context.Background(), grpcadapter.New(server.Config{}), "livekit", c)
		if err == nil || r != nil {
			t.Fatalf("AutoWire = %v, %v; want an error", r, err)
		}
		// The engine was closed: the same data dir opens again.
		c.Enabled = true
		r, err = AutoWire(context.Background(), &recordingAdapter{}, "livekit", c)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		_ = r.Stop(context.Background())
	})
}

func TestAutoWireFromEnv(t *testing.T) {
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_ENABLED", "true")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_DATA_DIR", t.TempDir())
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_FINALIZE_GRACE", "200ms")
	t.Setenv("LIVEKIT_API_KEY", testKey)
	t.Setenv("LIVEKIT_API_SECRET", testSecret)
	t.Setenv("LIVEKIT_KEYS", "")
	cfg, err := LoadConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled {
		t.Fatal("BELUGA_LIVEKIT_WEBHOOK_ENABLED=true did not set Enabled")
	}
	a := &recordingAdapter{}
	r, err := AutoWire(context.Background(), a, "livekit", cfg)
	if err != nil || r == nil {
		t.Fatalf("AutoWire: %v, %v", r, err)
	}
	defer func() { _ = r.Stop(context.Background()) }()
	// Every path of Routes, the per-session one in each router spelling.
	want := map[string]bool{}
	for p := range r.Routes() {
		want[p] = true
	}
	for _, s := range sessionRouteSpellings {
		want[cfg.SessionsPath+s] = true
		want[cfg.ConsolePath+s] = true // the console serves a subtree too
	}
	got := map[string]bool{}
	for _, p := range a.paths {
		got[p] = true
	}
	if !maps.Equal(got, want) || len(a.paths) != len(want) {
		t.Fatalf("registered %v, want %v", a.paths, want)
	}

	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_ENABLED", "false")
	cfg, err = LoadConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := AutoWire(context.Background(), &recordingAdapter{}, "livekit", cfg); r != nil || err != nil {
		t.Fatalf("disabled from env: %v, %v", r, err)
	}
}
