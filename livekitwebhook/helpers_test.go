package livekitwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
)

const (
	testKey    = "devkey"
	testSecret = "a-test-secret-of-at-least-32-chars!!"
)

// testReceiver is a started Receiver on an embedded engine in a temp dir,
// served by an httptest server with all its routes.
type testReceiver struct {
	*Receiver
	srv  *httptest.Server
	url  string // webhook URL
	base string // server base URL
	dir  string
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.APIKey, cfg.APISecret = testKey, testSecret
	cfg.DataDir = t.TempDir()
	cfg.FinalizeGrace = "200ms"
	return cfg
}

func startReceiver(t testing.TB, cfg Config, opts ...Option) *testReceiver {
	t.Helper()
	r, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mux := http.NewServeMux()
	for p, h := range r.Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	tr := &testReceiver{Receiver: r, srv: srv, url: srv.URL + cfg.Path, base: srv.URL, dir: cfg.DataDir}
	if cfg.Path == "" {
		tr.url = srv.URL + r.Config().Path
	}
	t.Cleanup(func() {
		srv.Close()
		_ = r.Stop(context.Background())
	})
	return tr
}

// sign makes a LiveKit webhook token for body, as the notifier does.
func sign(t testing.TB, key, secret string, body []byte, validFor time.Duration) string {
	t.Helper()
	tok, err := livekitwebhooktest.Signer{Key: key, Secret: secret, ValidFor: validFor}.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func marshal(t testing.TB, ev *livekit.WebhookEvent) []byte {
	t.Helper()
	b, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body with the given headers and returns status and body.
func post(t testing.TB, url string, body []byte, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/webhook+json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if o := res.Header.Get(HeaderOutcome); o != "" && len(b) == 0 {
		return res.StatusCode, o, res.Header // a 2xx says its outcome in a header
	}
	return res.StatusCode, string(b), res.Header
}

// postEvent signs ev with the test key and posts it.
func postEvent(t testing.TB, url string, ev *livekit.WebhookEvent) (int, string) {
	t.Helper()
	body := marshal(t, ev)
	code, b, _ := post(t, url, body, map[string]string{"Authorization": sign(t, testKey, testSecret, body, 5*time.Minute)})
	return code, b
}

func roomEvent(id, event, roomName, roomSID string, at int64) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{
		Id: id, Event: event, CreatedAt: at,
		Room: &livekit.Room{Sid: roomSID, Name: roomName, CreationTime: at - 1},
	}
}

func participantEvent(id, event, roomName, roomSID, psid, identity string, kind livekit.ParticipantInfo_Kind, at, joined int64) *livekit.WebhookEvent {
	ev := roomEvent(id, event, roomName, roomSID, at)
	ev.Participant = &livekit.ParticipantInfo{Sid: psid, Identity: identity, Kind: kind, JoinedAt: joined}
	return ev
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// storedEvents counts the messages in the events stream, once the journal
// has handed on everything accepted.
func storedEvents(t testing.TB, r *Receiver) uint64 {
	t.Helper()
	eventually(t, 10*time.Second, "journal handed on", func() bool {
		n, err := r.engine().JournalBacklog(context.Background())
		return err == nil && n == 0
	})
	info, err := testStream(t, r.engine(), engine.StreamEvents).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func decodeJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

func startHTTP(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// collectMetrics collects reader once and returns every metric of every scope.
func collectMetrics(t testing.TB, reader *sdkmetric.ManualReader) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}
