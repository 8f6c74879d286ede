package livekitwebhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/webhook"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// An event without an id is the same event however it is serialized: field
// order, whitespace, int64 as number or string, enum as name or number.
func TestNoIDDedupeByCanonicalForm(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	at := time.Now().Unix()
	ev := participantEvent("", "participant_joined", "canon-room", "RM_canon", "PA_canon", "carol", 3, at, at)
	first := marshal(t, ev) // protojson: int64 as strings, enum names
	again := []byte(fmt.Sprintf(`{
	  "participant": {"kind": 3, "joinedAt": %d, "identity": "carol", "sid": "PA_canon"},
	  "createdAt": %d,
	  "room": {"creationTime": %d, "name": "canon-room", "sid": "RM_canon"},
	  "event": "participant_joined"
	}`+"\n", at, at, at-1))
	other := marshal(t, participantEvent("", "participant_joined", "canon-room", "RM_canon", "PA_canon", "carol", 3, at+1, at))
	for i, c := range []struct {
		body []byte
		want string
	}{{first, "accepted"}, {again, "duplicate"}, {other, "accepted"}} {
		code, resp, _ := post(t, tr.url, c.body, map[string]string{"Authorization": sign(t, testKey, testSecret, c.body, time.Minute)})
		if code != http.StatusOK || resp != c.want {
			t.Fatalf("body %d: %d %s, want 200 %s", i, code, resp, c.want)
		}
	}
	if got := storedEvents(t, tr.Receiver); got != 2 {
		t.Fatalf("stored %d events, want 2", got)
	}
}

// A validly signed body that is not a WebhookEvent is refused (400) with
// the reason and the field path; what it carries (a turnPassword) reaches
// no log line, span and refusal error.
func TestMalformedEventLeaksNoBodyContent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var mu sync.Mutex
	var refused []string
	tr := startReceiver(t, testConfig(t), WithTracerProvider(tp), WithLogger(log),
		WithRefusalHandler(func(_ *http.Request, re *RefusalError) {
			mu.Lock()
			refused = append(refused, re.Error())
			mu.Unlock()
		}))
	const turn = "TURN-SECRET-7f3a9c"
	bodies := map[string]string{
		"room.turnPassword": `{"event":"room_started","room":{"sid":"RM_x","turnPassword" "` + turn + `"}}`, // no colon
		"room.name":         `{"event":"room_started","room":{"sid":"RM_x","name":` + turn + `}}`,           // unquoted
		"room.sid":          `{"event":"room_started","room":{"turnPassword":"` + turn + `","sid":["` + turn + `"]}}`,
	}
	for path, body := range bodies {
		code, resp, _ := post(t, tr.url, []byte(body), map[string]string{"Authorization": sign(t, testKey, testSecret, []byte(body), time.Minute)})
		if code != http.StatusBadRequest || !strings.Contains(resp, `"malformed_event"`) {
			t.Fatalf("%s: %d %s, want 400 malformed_event", path, code, resp)
		}
		if strings.Contains(resp, turn) {
			t.Errorf("%s: the answer quotes the body: %s", path, resp)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != len(bodies) {
		t.Fatalf("%d refusals, want %d", len(refused), len(bodies))
	}
	for _, msg := range refused {
		if strings.Contains(msg, turn) {
			t.Errorf("refusal error quotes the body: %s", msg)
		}
	}
	for path := range bodies {
		found := false
		for _, msg := range refused {
			found = found || strings.Contains(msg, " at "+path+" (line 1, column ")
		}
		if !found {
			t.Errorf("no refusal names the field %s: %q", path, refused)
		}
	}
	spans := exp.GetSpans()
	if len(spans) < len(bodies) {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		b, _ := json.Marshal(s.Attributes)
		e, _ := json.Marshal(s.Events)
		if strings.Contains(string(b)+string(e)+s.Status.Description, turn) {
			t.Errorf("span %s quotes the body: %s %s", s.Name, b, e)
		}
	}
	if strings.Count(logs.String(), `"reason":"malformed_event"`) != len(bodies) {
		t.Errorf("want %d malformed_event log lines:\n%s", len(bodies), logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, turn) {
			t.Errorf("log line quotes the body: %s", line)
		}
	}
}

// The event label of the metrics takes LiveKit's events, "other" and
// "unknown": a signed body with a made-up name makes no series of its own.
func TestEventLabelBounded(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tr := startReceiver(t, testConfig(t), WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	now := time.Now().Unix()
	for i := range 5 {
		ev := roomEvent(fmt.Sprintf("EV_label%07d", i), fmt.Sprintf("made_up_event_%d", i), "label-room", "RM_label", now)
		if code, resp := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("post: %d %s", code, resp)
		}
	}
	if code, resp := postEvent(t, tr.url, roomEvent("EV_label_known", "room_started", "label-room", "RM_label", now)); code != http.StatusOK {
		t.Fatalf("post: %d %s", code, resp)
	}
	counts := map[string]int64{}
	eventually(t, 10*time.Second, "processing latency of 6 events", func() bool {
		clear(counts)
		var processed uint64
		for _, m := range collectMetrics(t, reader) {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if v, ok := dp.Attributes.Value("event"); ok && m.Name == "livekitwebhook.requests" {
						counts[v.AsString()] += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					v, ok := dp.Attributes.Value("event")
					if m.Name == "livekitwebhook.process.duration" && ok {
						if !knownEvents[v.AsString()] && v.AsString() != "other" {
							t.Fatalf("process.duration label event=%q", v.AsString())
						}
						processed += dp.Count
					}
				}
			}
		}
		return processed == 6
	})
	if len(counts) != 2 || counts["other"] != 5 || counts["room_started"] != 1 {
		t.Fatalf("requests by event label: %v, want other=5 room_started=1", counts)
	}
	// The list is LiveKit's.
	for _, e := range []string{webhook.EventRoomStarted, webhook.EventRoomFinished, webhook.EventParticipantJoined,
		webhook.EventParticipantLeft, webhook.EventParticipantConnectionAborted, webhook.EventTrackPublished,
		webhook.EventTrackUnpublished, webhook.EventEgressStarted, webhook.EventEgressUpdated, webhook.EventEgressEnded,
		webhook.EventIngressStarted, webhook.EventIngressEnded, webhook.EventAgentJobPending, webhook.EventAgentJobStarted,
		webhook.EventAgentJobEnded} {
		if eventLabel(e) != e {
			t.Errorf("known event %s labelled %q", e, eventLabel(e))
		}
	}
}

// Outside dev mode an API secret shorter than 32 characters is refused, as
// livekit-server does, naming the key and never the secret; in dev mode
// the dev key devkey/secret works.
func TestShortSecretRefusedOutsideDev(t *testing.T) {
	const short = "short-secret-31-characters-long" // 31
	if len(short) != minSecretLength-1 {
		t.Fatalf("test secret has %d characters", len(short))
	}
	for name, mut := range map[string]func(*Config){
		"api_secret": func(c *Config) { c.APIKey, c.APISecret = "APIshortkey", short },
		"keys":       func(c *Config) { c.Keys = "APIshortkey: " + short },
		"one of two": func(c *Config) { c.Keys = "APIshortkey: " + short + "\nAPIlong: " + testSecret },
		"dev key":    func(c *Config) { c.APIKey, c.APISecret = "APIshortkey", "secret" },
	} {
		cfg := testConfig(t)
		mut(&cfg)
		_, err := New(cfg)
		if !errors.Is(err, ErrSecretTooShort) {
			t.Errorf("%s: New = %v, want ErrSecretTooShort", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, `"APIshortkey"`) || strings.Contains(msg, short) || strings.Contains(msg, "secret\"") {
			t.Errorf("%s: error must name the key and not the secret: %s", name, msg)
		}
	}
	exact := testConfig(t)
	exact.APISecret = short + "x" // 32
	if _, err := New(exact); err != nil {
		t.Fatalf("32-character secret: %v", err)
	}

	dev := testConfig(t)
	dev.APIKey, dev.APISecret, dev.Dev = "devkey", "secret", true
	tr := startReceiver(t, dev)
	body := marshal(t, roomEvent("EV_devmode0001", "room_started", "dev-room", "RM_dev", time.Now().Unix()))
	if code, resp, _ := post(t, tr.url, body, map[string]string{"Authorization": sign(t, "devkey", "secret", body, time.Minute)}); code != http.StatusOK {
		t.Fatalf("dev mode, devkey/secret: %d %s", code, resp)
	}
}
