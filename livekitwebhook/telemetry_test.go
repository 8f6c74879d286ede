package livekitwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTracesMetricsLogs: one receive span per request (continuing the
// caller's traceparent), the process span in the same trace through the
// engine, hook and report spans under it; metrics by event and outcome; no
// secret or turnPassword in any attribute or log line.
func TestTracesMetricsLogs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithTracerProvider(tp), WithMeterProvider(mp), WithLogger(log), WithHooks(hc.hooks()))

	const turn = "TURN-PASSWORD-SHOULD-NEVER-SHOW"
	t0 := time.Now().Unix()
	started := roomEvent("EV_otel00000001", "room_started", "otel-room", "RM_otel", t0)
	started.Room.TurnPassword = turn
	started.Room.Metadata = `{"secret_note":"METADATA-BLOB"}`
	joined := participantEvent("EV_otel00000002", "participant_joined", "otel-room", "RM_otel", "PA_o", "olga", livekit.ParticipantInfo_SIP, t0+1, t0+1)
	joined.Room.TurnPassword = turn
	finished := roomEvent("EV_otel00000003", "room_finished", "otel-room", "RM_otel", t0+9)

	// The first request carries a traceparent from an upstream proxy.
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled})
	hdr := map[string]string{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), parent), propagation.MapCarrier(hdr))
	body := marshal(t, started)
	hdr["Authorization"] = sign(t, testKey, testSecret, body, time.Minute)
	if code, resp, _ := post(t, tr.url, body, hdr); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	postEvent(t, tr.url, joined)
	postEvent(t, tr.url, finished)
	post(t, tr.url, body, map[string]string{"Authorization": sign(t, testKey, "wrong-secret-wrong-secret-wrong!!", body, time.Minute)})
	eventually(t, 15*time.Second, "report", func() bool { return len(hc.ended()) == 1 })
	eventually(t, 5*time.Second, "report span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == spanReport {
				return true
			}
		}
		return false
	})

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	attr := func(s tracetest.SpanStub, k string) string {
		for _, a := range s.Attributes {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	var receiveStarted, processStarted *tracetest.SpanStub
	var refused, hooks int
	for i, s := range spans {
		switch {
		case s.Name == spanReceive && attr(s, attrEventID) == "EV_otel00000001":
			receiveStarted = &spans[i]
		case s.Name == spanProcess && attr(s, attrEventID) == "EV_otel00000001":
			processStarted = &spans[i]
		case s.Name == spanReceive && attr(s, attrReason) == "bad_signature":
			refused++
		case s.Name == spanHook:
			hooks++
		}
	}
	if receiveStarted == nil || processStarted == nil {
		t.Fatalf("missing receive/process spans among %d", len(spans))
	}
	if receiveStarted.SpanKind != trace.SpanKindServer || receiveStarted.Parent.SpanID() != parent.SpanID() ||
		receiveStarted.SpanContext.TraceID() != parent.TraceID() {
		t.Fatalf("receive span does not continue the traceparent: %+v", receiveStarted.Parent)
	}
	if processStarted.SpanContext.TraceID() != parent.TraceID() || processStarted.Parent.SpanID() != receiveStarted.SpanContext.SpanID() {
		t.Fatal("process span is not a child of the receive span through the engine")
	}
	for k, want := range map[string]string{attrEvent: "room_started", attrRoomName: "otel-room", attrRoomSID: "RM_otel", attrOpName: spanProcess, attrSession: "otel-room"} {
		if got := attr(*processStarted, k); got != want {
			t.Errorf("process span %s = %q, want %q", k, got, want)
		}
	}
	if refused != 1 {
		t.Errorf("refused receive spans: %d", refused)
	}
	if hooks < 4 {
		t.Errorf("hook spans: %d", hooks)
	}
	for _, s := range spans {
		if s.Name == spanHook {
			if p, ok := byID[s.Parent.SpanID()]; !ok || (p.Name != spanProcess && p.Name != spanReport) {
				t.Errorf("hook span parent %v", s.Parent.SpanID())
			}
		}
		b, _ := json.Marshal(s.Attributes)
		for _, bad := range []string{testSecret, turn, "METADATA-BLOB"} {
			if strings.Contains(string(b), bad) || strings.Contains(s.Status.Description, bad) {
				t.Errorf("span %s leaks %q", s.Name, bad)
			}
			for _, e := range s.Events {
				eb, _ := json.Marshal(e)
				if strings.Contains(string(eb), bad) {
					t.Errorf("span event leaks %q", bad)
				}
			}
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, bad := range []string{testSecret, turn, "METADATA-BLOB"} {
			if strings.Contains(line, bad) {
				t.Errorf("log line leaks %q: %s", bad, line)
			}
		}
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+parent.TraceID().String()) {
		t.Error("log lines carry no trace id")
	}

	sums := map[string]int64{}
	names := map[string]bool{}
	for _, m := range collectMetrics(t, reader) {
		names[m.Name] = true
		if d, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, dp := range d.DataPoints {
				key := m.Name
				for _, kv := range dp.Attributes.ToSlice() {
					key += "," + string(kv.Key) + "=" + kv.Value.Emit()
				}
				sums[key] += dp.Value
			}
		}
	}
	for k, want := range map[string]int64{
		"livekitwebhook.requests,event=room_started,outcome=accepted":  1,
		"livekitwebhook.requests,event=unknown,outcome=refused":        1,
		"livekitwebhook.refusals,reason=bad_signature":                 1,
		"livekitwebhook.reports,disposition=completed":                 1,
		"livekitwebhook.sessions.active":                               0,
		"livekitwebhook.requests,event=room_finished,outcome=accepted": 1,
	} {
		if sums[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, sums[k], want, sums)
		}
	}
	for _, n := range []string{"livekitwebhook.accept.duration", "livekitwebhook.process.duration", "livekitwebhook.delivery.lag",
		"livekitwebhook.session.duration", "livekitwebhook.participant.seconds", "livekitwebhook.participants.active"} {
		if !names[n] {
			t.Errorf("metric %s not recorded", n)
		}
	}
}

// TestReportSpanUnderRoomFinished: the report span is a child of the
// processing span of the room_finished that scheduled it (through the
// task's headers), in the same trace, and the OnSessionEnded hook spans are
// children of the report span.
func TestReportSpanUnderRoomFinished(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithTracerProvider(tp),
		WithHooks(hc.hooks(), Hooks{Name: "billing", OnSessionEnded: func(context.Context, Report) error { return nil }}))
	t0 := time.Now().Unix()
	postEvent(t, tr.url, roomEvent("EV_rspan000001", "room_started", "rspan", "RM_rspan", t0))
	postEvent(t, tr.url, roomEvent("EV_rspan000002", "room_finished", "rspan", "RM_rspan", t0+3))
	find := func(pred func(tracetest.SpanStub) bool) []tracetest.SpanStub {
		var out []tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			if pred(s) {
				out = append(out, s)
			}
		}
		return out
	}
	attr := func(s tracetest.SpanStub, k string) string {
		for _, a := range s.Attributes {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	var reports []tracetest.SpanStub
	eventually(t, 15*time.Second, "report span", func() bool {
		reports = find(func(s tracetest.SpanStub) bool { return s.Name == spanReport })
		return len(reports) > 0
	})
	finished := find(func(s tracetest.SpanStub) bool {
		return s.Name == spanProcess && attr(s, attrEventID) == "EV_rspan000002"
	})
	report := reports[0]
	var parent *tracetest.SpanStub // a retried room_finished has several
	for i, p := range finished {
		if report.Parent.SpanID() == p.SpanContext.SpanID() && report.SpanContext.TraceID() == p.SpanContext.TraceID() {
			parent = &finished[i]
		}
	}
	if parent == nil {
		t.Fatalf("report span (trace %s, parent %s) is not a child of any of the %d process spans of room_finished",
			report.SpanContext.TraceID(), report.Parent.SpanID(), len(finished))
	}
	hooks := find(func(s tracetest.SpanStub) bool {
		return s.Name == spanHook && strings.HasSuffix(attr(s, attrHook), "OnSessionEnded")
	})
	got := map[string]bool{}
	for _, h := range hooks {
		if h.Parent.SpanID() != report.SpanContext.SpanID() {
			t.Errorf("hook span %s is not a child of the report span", attr(h, attrHook))
		}
		got[attr(h, attrHook)] = true
	}
	if !got["OnSessionEnded"] || !got["billing/OnSessionEnded"] {
		t.Errorf("OnSessionEnded hook spans %v", got)
	}
}

// backlogGauge reads livekitwebhook.backlog for one stage (-1: not observed).
func backlogGauge(t *testing.T, reader *sdkmetric.ManualReader, stage string) int64 {
	t.Helper()
	for _, m := range collectMetrics(t, reader) {
		if d, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "livekitwebhook.backlog" {
			for _, dp := range d.DataPoints {
				if v, _ := dp.Attributes.Value("stage"); v.AsString() == stage {
					return dp.Value
				}
			}
		}
	}
	return -1
}

// The backlog gauge shows stored events a blocked hook holds, and goes back
// to zero once they are applied.
func TestBacklogGauge(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	block := Hooks{OnRoomStarted: func(ctx context.Context, _ *livekit.WebhookEvent, _ Session) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}
	tr := startReceiver(t, testConfig(t), WithHooks(block), WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	now := time.Now().Unix()
	for i := range 3 {
		ev := roomEvent(fmt.Sprintf("EV_backlog%05d", i), "room_started", fmt.Sprintf("backlog-%d", i), fmt.Sprintf("RM_backlog%d", i), now)
		if code, resp := postEvent(t, tr.url, ev); code != 200 {
			t.Fatalf("post: %d %s", code, resp)
		}
	}
	eventually(t, 10*time.Second, "3 events held by the hook", func() bool { return backlogGauge(t, reader, "events") == 3 })
	if got := backlogGauge(t, reader, "journal"); got != 0 {
		t.Fatalf("journal backlog %d, want 0 (all handed on)", got)
	}
	once.Do(func() { close(release) })
	eventually(t, 10*time.Second, "backlog back to 0", func() bool { return backlogGauge(t, reader, "events") == 0 })
}
