package livekitwebhook

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/server"
	chiadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/chi"
	echoadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/echo"
	fiberadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/fiber"
	ginadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/gin"
	grpcadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/grpc"
	humaadapter "github.com/lookatitude/beluga-ai/v2/server/adapters/huma"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/testport"
)

// freeAddr returns a loopback address that was free a moment ago: another
// process can take it before it is bound (see serveAdapter).
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := testport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// serveAdapter runs a.Serve on a loopback port until the test ends and
// returns its base URL once it answers. Beluga's adapters listen themselves
// and do not report the port of ":0", so the port is picked from addrs;
// when another process took it meanwhile, Serve fails with EADDRINUSE and
// the next one is tried. A route of its own with a random answer tells this
// adapter from whoever holds the port.
func serveAdapter(t testing.TB, a server.ServerAdapter, addrs func(testing.TB) string) string {
	t.Helper()
	const probe = "/serve-adapter-probe"
	token := rand.Text()
	if err := a.RegisterHandler(probe, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, token)
	})); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		base := "http://" + addrs(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx, strings.TrimPrefix(base, "http://")) }()
		err := waitServing(base+probe, token, done, 10*time.Second)
		if err == nil {
			t.Cleanup(func() {
				cancel()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Error("adapter did not stop")
				}
			})
			return base
		}
		cancel()
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("serve adapter (attempt %d): %v", attempt, err)
		}
		t.Logf("serve adapter attempt %d: %v; trying another port", attempt, err)
	}
}

// waitServing polls url until it answers token, or Serve (done) ends.
func waitServing(url, token string, done <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("Serve: %w", err)
		default:
		}
		// A short timeout: whatever holds a taken port may never answer.
		if res, err := (&http.Client{Timeout: time.Second}).Get(url); err == nil {
			b, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if string(b) == token {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s", url, timeout)
}

// TestServeAdapterPortTaken: the port picked for an adapter is taken by
// another HTTP server before the adapter binds it; serveAdapter must not
// take that server for the adapter, and serves on another port.
func TestServeAdapterPortTaken(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer other.Close()
	taken := other.Listener.Addr().String()
	picks := 0
	a := server.NewStdlibAdapter(server.Config{})
	if err := a.RegisterHandler("/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "adapter")
	})); err != nil {
		t.Fatal(err)
	}
	base := serveAdapter(t, a, func(t testing.TB) string {
		if picks++; picks == 1 {
			return taken
		}
		return freeAddr(t)
	})
	if base == "http://"+taken || picks != 2 {
		t.Fatalf("adapter served at %s after %d picks; want another address than %s, after 2", base, picks, taken)
	}
	res, err := http.Get(base + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(b) != "adapter" {
		t.Fatalf("GET /hello = %q, want the adapter's answer", b)
	}
}

// TestMountAdapters: every Beluga HTTP adapter, bare and wrapped by
// server.ApplyMiddleware (whose wrapper hides the adapter's type), serves
// the webhook, the sessions list, one session at SessionsPath/{id} and at
// SessionsPath?id=, and the DLQ.
func TestMountAdapters(t *testing.T) {
	type adapterCase struct {
		name    string
		adapter func() server.ServerAdapter
	}
	bare := []adapterCase{
		{"stdlib", func() server.ServerAdapter { return server.NewStdlibAdapter(server.Config{}) }},
		{"chi", func() server.ServerAdapter { return chiadapter.New(server.Config{}) }},
		{"echo", func() server.ServerAdapter { return echoadapter.New(server.Config{}) }},
		{"gin", func() server.ServerAdapter { return ginadapter.New(server.Config{}) }},
		{"fiber", func() server.ServerAdapter { return fiberadapter.New(server.Config{}) }},
		{"huma", func() server.ServerAdapter { return humaadapter.New(server.Config{}) }},
	}
	tests := append([]adapterCase{{"registry-stdlib", func() server.ServerAdapter {
		a, err := server.New("stdlib", server.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}}}, bare...)
	for _, b := range bare {
		tests = append(tests, adapterCase{"traced-" + b.name, func() server.ServerAdapter {
			return server.ApplyMiddleware(b.adapter(), server.WithTracing())
		}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			a := tc.adapter()
			if err := r.Mount(a); err != nil {
				t.Fatalf("Mount: %v", err)
			}
			base := serveAdapter(t, a, freeAddr)

			// The webhook: signed, accepted; unsigned, refused; GET, 405.
			code, body := postEvent(t, base+cfg.Path, roomEvent("EV_mount1", "room_started", "mount-room", "RM_mount", time.Now().Unix()))
			if code != http.StatusOK || body != "accepted" {
				t.Fatalf("signed post: %d %s", code, body)
			}
			if code, _, _ := post(t, base+cfg.Path, []byte(`{"event":"room_started"}`), nil); code != http.StatusUnauthorized {
				t.Fatalf("unsigned post: %d, want 401", code)
			}
			res, err := http.Get(base + cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("GET webhook: %d, want 405", res.StatusCode)
			}

			// The sessions API: the list, then one session by id.
			eventually(t, 10*time.Second, "session listed", func() bool {
				var list sessionsList
				return getJSON(t, base+cfg.SessionsPath, &list) == http.StatusOK &&
					len(list.Active) == 1 && list.Active[0].RoomSID == "RM_mount"
			})
			// The by-id index is written just after the room record.
			eventually(t, 10*time.Second, "session by id", func() bool {
				var s Session
				return getJSON(t, base+cfg.SessionsPath+"/mount-room", &s) == http.StatusOK && s.RoomName == "mount-room"
			})
			if code := getJSON(t, base+cfg.SessionsPath+"/nope", nil); code != http.StatusNotFound {
				t.Fatalf("GET unknown session: %d, want 404", code)
			}
			// The query form answers the same, on every adapter.
			byPath, byQuery := getBody(t, base+cfg.SessionsPath+"/mount-room"), getBody(t, base+cfg.SessionsPath+"?id=mount-room")
			if byQuery != byPath {
				t.Fatalf("GET ?id=mount-room = %s, want the answer of /mount-room: %s", byQuery, byPath)
			}
			if code := getJSON(t, base+cfg.SessionsPath+"?id=nope", nil); code != http.StatusNotFound {
				t.Fatalf("GET ?id=nope: %d, want 404", code)
			}
			var dlq map[string]any
			if code := getJSON(t, base+"/voice/livekit/dlq", &dlq); code != http.StatusOK {
				t.Fatalf("GET dlq: %d", code)
			}
		})
	}
}

func TestMountErrors(t *testing.T) {
	r, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]server.ServerAdapter{
		"grpc":        grpcadapter.New(server.Config{}),
		"traced-grpc": server.ApplyMiddleware(grpcadapter.New(server.Config{}), server.WithTracing()),
	} {
		t.Run(name, func(t *testing.T) {
			err := r.Mount(a)
			if err == nil {
				t.Fatal("Mount on grpc succeeded")
			}
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Code != core.ErrInvalidInput {
				t.Fatalf("want core.Error invalid_input, got %#v", err)
			}
			if !strings.Contains(err.Error(), "RegisterHandler not supported") || !strings.Contains(err.Error(), "gRPC") {
				t.Fatalf("error does not explain itself: %v", err)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		if err := r.Mount(nil); err == nil {
			t.Fatal("Mount(nil) succeeded")
		}
	})
	t.Run("panicking router", func(t *testing.T) {
		err := r.Mount(panicAdapter{})
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Fatalf("want a panic turned into an error, got %v", err)
		}
	})
}

// panicAdapter's RegisterHandler panics like a router with a route
// conflict.
type panicAdapter struct{ server.ServerAdapter }

func (panicAdapter) RegisterHandler(string, http.Handler) error { panic("route conflict") }

// getBody GETs url and returns its status and body, for comparing answers.
func getBody(t testing.TB, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", res.StatusCode, b)
}
