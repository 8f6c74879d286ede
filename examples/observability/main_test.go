package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/examples/internal/exampletest"

	"github.com/livekit/protocol/livekit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"gopkg.in/yaml.v3"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

// Shared with the other examples' tests.
type syncBuffer = exampletest.SyncBuffer

var postSigned = exampletest.PostSigned

var waitFor = exampletest.WaitFor

const telemetrySource = "../../livekitwebhook/telemetry.go"

// instrument is one metric instrument created in telemetry.go.
type instrument struct {
	name    string // OTel name, "livekitwebhook.requests"
	kind    string // Int64Counter, Float64Histogram, …
	seconds bool   // unit "s"
}

// family is the Prometheus metric family the OTel exporter makes of it.
func (i instrument) family() string {
	n := strings.ReplaceAll(i.name, ".", "_")
	if i.seconds && !strings.HasSuffix(n, "_seconds") {
		n += "_seconds"
	}
	if strings.HasSuffix(i.kind, "Counter") && !strings.Contains(i.kind, "UpDown") {
		n += "_total"
	}
	return n
}

// promType is the family's Prometheus type.
func (i instrument) promType() string {
	switch {
	case strings.Contains(i.kind, "Histogram"):
		return "histogram"
	case strings.Contains(i.kind, "UpDown"), strings.Contains(i.kind, "Gauge"):
		return "gauge"
	default:
		return "counter"
	}
}

// series are the names a query may use for the family.
func (i instrument) series() []string {
	f := i.family()
	if i.promType() == "histogram" {
		return []string{f + "_bucket", f + "_sum", f + "_count"}
	}
	return []string{f}
}

// parseInstruments reads every meter.XxxCounter/Histogram/… call with a
// literal name from telemetry.go, and whether it passes the seconds unit.
func parseInstruments(t *testing.T) []instrument {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, telemetrySource, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := regexp.MustCompile(`^(Int64|Float64)(Counter|UpDownCounter|Histogram|Gauge|ObservableCounter|ObservableUpDownCounter|ObservableGauge)$`)
	// Identifiers bound to metric.WithUnit("s") in the file.
	secondsVars := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok {
			return true
		}
		for i, rhs := range as.Rhs {
			if isWithUnitSeconds(rhs) && i < len(as.Lhs) {
				if id, ok := as.Lhs[i].(*ast.Ident); ok {
					secondsVars[id.Name] = true
				}
			}
		}
		return true
	})
	var out []instrument
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !kinds.MatchString(sel.Sel.Name) || len(call.Args) == 0 {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		name, _ := strconv.Unquote(lit.Value)
		in := instrument{name: name, kind: sel.Sel.Name}
		for _, a := range call.Args[1:] {
			if id, ok := a.(*ast.Ident); ok && secondsVars[id.Name] || isWithUnitSeconds(a) {
				in.seconds = true
			}
		}
		out = append(out, in)
		return true
	})
	if len(out) < 10 {
		t.Fatalf("found only %d instruments in %s: the parser is out of date", len(out), telemetrySource)
	}
	return out
}

func isWithUnitSeconds(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "WithUnit" {
		return false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	return ok && lit.Value == `"s"`
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels: %+v", d)
	}
	return d
}

var metricRef = regexp.MustCompile(`\blivekitwebhook_[a-z0-9_]+`)

// TestDashboardQueriesKnownMetrics: every metric the dashboard queries is
// made by an instrument of telemetry.go, and every instrument has a panel.
func TestDashboardQueriesKnownMetrics(t *testing.T) {
	instruments := parseInstruments(t)
	known := map[string]string{} // series -> instrument
	for _, in := range instruments {
		for _, s := range in.series() {
			known[s] = in.name
		}
	}
	used := map[string]bool{}
	for _, p := range loadDashboard(t).Panels {
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			refs := metricRef.FindAllString(tg.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("panel %q: query %q names no livekitwebhook metric", p.Title, tg.Expr)
			}
			for _, m := range refs {
				in, ok := known[m]
				if !ok {
					t.Errorf("panel %q queries %q, which no instrument in telemetry.go exports", p.Title, m)
					continue
				}
				used[in] = true
			}
		}
	}
	for _, in := range instruments {
		if !used[in.name] {
			t.Errorf("instrument %s (%s) has no panel", in.name, in.family())
		}
	}
}

// TestInstrumentNamesMatchScrape cross-checks the naming rule of the test
// against a real scrape: a receiver driven until every instrument has
// data, exported through the OTel Prometheus exporter and a registry.
func TestInstrumentNamesMatchScrape(t *testing.T) {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		t.Fatal(err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = meters.Shutdown(context.Background()) }()

	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret, cfg.Dev = "devkey", "secret", true
	cfg.DataDir = t.TempDir()
	cfg.FinalizeGrace = "100ms"
	cfg.MaxAttempts = 2
	failing := livekitwebhook.Hooks{OnEvent: func(_ context.Context, ev *livekit.WebhookEvent, _ livekitwebhook.Session) error {
		if ev.Id == "EV_fail" {
			return errors.New("always fails")
		}
		return nil
	}}
	recv, err := livekitwebhook.New(cfg, livekitwebhook.WithMeterProvider(meters), livekitwebhook.WithHooks(failing),
		livekitwebhook.WithLogger(discardLogger()), livekitwebhook.WithReconciler(listedRooms{{Sid: "RM_elsewhere", Name: "elsewhere"}}, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = recv.Stop(context.Background()) }()
	mux := http.NewServeMux()
	for p, h := range recv.Routes() {
		mux.Handle(p, h)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	driveAllInstruments(t, srv.URL+cfg.Path, recv)
	if st, err := recv.Reconcile(context.Background()); err != nil || len(st.Unknown) != 1 {
		t.Fatalf("reconcile: %+v %v", st, err)
	}
	families := scrape(t, srv.URL+"/metrics")
	for _, in := range parseInstruments(t) {
		got, ok := families[in.family()]
		if !ok {
			t.Errorf("instrument %s: family %s not in the scrape (have %v)", in.name, in.family(), keys(families))
			continue
		}
		if got != in.promType() {
			t.Errorf("family %s: type %s, want %s", in.family(), got, in.promType())
		}
	}
}

// driveAllInstruments posts events that give every instrument data: a
// refusal, a duplicate, a full session (report, durations), a late event
// and an event whose hook fails until it is dead-lettered (retries). The
// engine restarts counter needs none: it is exported at 0 from the start.
func driveAllInstruments(t *testing.T, url string, recv *livekitwebhook.Receiver) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Unix()
	room := &livekit.Room{Sid: "RM_obs", Name: "obs", CreationTime: t0}
	// An answered outbound SIP call (sip.calls, sip.talk).
	pt := &livekit.ParticipantInfo{Sid: "PA_o", Identity: "caller", Kind: livekit.ParticipantInfo_SIP, JoinedAt: t0 + 1,
		Attributes: map[string]string{livekit.AttrSIPCallID: "SCL_obs", livekit.AttrSIPTrunkID: "ST_obs", livekit.AttrSIPPhoneNumber: "+15105550100",
			livekit.AttrSIPCallStatus: "active", livekit.AttrSIPAnswerTime: strconv.FormatInt((t0+3)*1000, 10)}}
	// A participant whose leave never arrives (report.anomalies).
	stray := &livekit.ParticipantInfo{Sid: "PA_s", Identity: "stray", Kind: livekit.ParticipantInfo_STANDARD, JoinedAt: t0 + 2}
	// A recording ended before room_finished (recordings).
	egress := &livekit.EgressInfo{EgressId: "EG_obs", RoomId: room.Sid, RoomName: room.Name, Status: livekit.EgressStatus_EGRESS_COMPLETE,
		StartedAt: (t0 + 2) * 1e9, EndedAt: (t0 + 10) * 1e9, UpdatedAt: (t0 + 10) * 1e9}
	// An agent job (agent_jobs): its room in job.room.
	job := &livekit.Job{Id: "AJ_obs", Room: room, AgentName: "obs-agent",
		State: &livekit.JobState{Status: livekit.JobStatus_JS_FAILED, Error: "boom", UpdatedAt: (t0 + 5) * 1e9}}
	if code := postSigned(t, url, "devkey", "wrong", &livekit.WebhookEvent{Id: "EV_bad", Event: "room_started", Room: room}); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	for _, ev := range []*livekit.WebhookEvent{
		{Id: "EV_o1", Event: "room_started", CreatedAt: t0, Room: room},
		{Id: "EV_o1", Event: "room_started", CreatedAt: t0, Room: room}, // duplicate
		{Id: "EV_o2", Event: "participant_joined", CreatedAt: t0 + 1, Room: room, Participant: pt},
		{Id: "EV_o5", Event: "participant_joined", CreatedAt: t0 + 2, Room: room, Participant: stray},
		{Id: "EV_o6", Event: "egress_ended", CreatedAt: t0 + 10, EgressInfo: egress},
		{Id: "EV_o7", Event: "agent_job_ended", CreatedAt: t0 + 5, Job: job},
		// In a room that stays open: once a session is reported, pending
		// hooks of its events are no longer retried.
		{Id: "EV_fail", Event: "room_started", CreatedAt: t0 + 2, Room: &livekit.Room{Sid: "RM_fail", Name: "obs-fail", CreationTime: t0}},
		{Id: "EV_o3", Event: "participant_left", CreatedAt: t0 + 20, Room: room, Participant: pt},
		{Id: "EV_o4", Event: "room_finished", CreatedAt: t0 + 30, Room: room},
	} {
		if code := postSigned(t, url, "devkey", "secret", ev); code != http.StatusOK {
			t.Fatalf("%s: %d", ev.Event, code)
		}
	}
	waitFor(t, 20*time.Second, "report and dead letter", func() bool {
		s, ok, err := recv.SessionByID(ctx, "obs")
		if err != nil || !ok || s.Disposition == "" {
			return false
		}
		ended, err := recv.EndedSessions(ctx, 10)
		dl, err2 := recv.DeadLetters(ctx, 0)
		return err == nil && err2 == nil && len(ended) == 1 && len(dl) == 1
	})
	late := &livekit.WebhookEvent{Id: "EV_late", Event: "participant_left", CreatedAt: t0 + 40, Room: room, Participant: pt}
	if code := postSigned(t, url, "devkey", "secret", late); code != http.StatusOK {
		t.Fatalf("late event: %d", code)
	}
}

// scrape returns the metric families (name -> type) of a /metrics page.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	var fams map[string]string
	// The late event is counted asynchronously: poll until it shows.
	waitFor(t, 10*time.Second, "late_events in the scrape", func() bool {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		fams = parseFamilies(t, res.Body)
		_, ok := fams["livekitwebhook_late_events_total"]
		return ok
	})
	return fams
}

func parseFamilies(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	fams := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fams
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if strings.HasPrefix(k, "livekitwebhook_") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestCollectorConfig checks otel-collector.yaml: OTLP in, a Prometheus
// scrape of /metrics, traces to the debug exporter, and every pipeline
// component defined.
func TestCollectorConfig(t *testing.T) {
	b, err := os.ReadFile("otel-collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Receivers  map[string]any `yaml:"receivers"`
		Processors map[string]any `yaml:"processors"`
		Exporters  map[string]any `yaml:"exporters"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	for _, want := range []string{"otlp", "prometheus"} {
		if _, ok := c.Receivers[want]; !ok {
			t.Errorf("no %s receiver", want)
		}
	}
	if !bytes.Contains(b, []byte("metrics_path: /metrics")) {
		t.Error("the prometheus receiver does not scrape /metrics")
	}
	traces, ok := c.Service.Pipelines["traces"]
	if !ok || !slices.Contains(traces.Receivers, "otlp") || !slices.Contains(traces.Exporters, "debug") {
		t.Errorf("traces pipeline = %+v, want otlp -> debug", traces)
	}
	if m, ok := c.Service.Pipelines["metrics"]; !ok || !slices.Contains(m.Receivers, "prometheus") {
		t.Errorf("metrics pipeline = %+v, want the prometheus receiver", m)
	}
	for name, p := range c.Service.Pipelines {
		for _, r := range p.Receivers {
			if _, ok := c.Receivers[r]; !ok {
				t.Errorf("pipeline %s: receiver %s undefined", name, r)
			}
		}
		for _, pr := range p.Processors {
			if _, ok := c.Processors[pr]; !ok {
				t.Errorf("pipeline %s: processor %s undefined", name, pr)
			}
		}
		for _, e := range p.Exporters {
			if _, ok := c.Exporters[e]; !ok {
				t.Errorf("pipeline %s: exporter %s undefined", name, e)
			}
		}
	}
}

// TestRun runs the example: webhooks are accepted, /metrics serves the
// dashboard's core metrics, and cancel stops it.
func TestRun(t *testing.T) {
	for _, k := range []string{"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LKWEBHOOK_ADMIN_TOKEN", "OTEL_EXPORTER_OTLP_ENDPOINT", "BELUGA_OTEL_STDOUT"} {
		t.Setenv(k, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--finalize-grace", "100ms", "--admin-token", "tok"}, &out)
	}()
	re := regexp.MustCompile(`listening on (http://\S+)`)
	var base string
	waitFor(t, 15*time.Second, "listening line", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, out.String())
		default:
		}
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	})
	url := base + "/voice/livekit/webhooks"
	t0 := time.Now().Unix()
	room := &livekit.Room{Sid: "RM_run", Name: "run", CreationTime: t0}
	for _, ev := range []*livekit.WebhookEvent{
		{Id: "EV_r1", Event: "room_started", CreatedAt: t0, Room: room},
		{Id: "EV_r2", Event: "room_finished", CreatedAt: t0 + 5, Room: room},
	} {
		if code := postSigned(t, url, "devkey", "secret", ev); code != http.StatusOK {
			t.Fatalf("%s: %d", ev.Event, code)
		}
	}
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without the admin token: %d, want 401", res.StatusCode)
	}
	want := []string{"livekitwebhook_requests_total", "livekitwebhook_accept_duration_seconds", "livekitwebhook_reports_total",
		"livekitwebhook_session_duration_seconds", "livekitwebhook_process_duration_seconds"}
	waitFor(t, 15*time.Second, "core metrics", func() bool {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer tok")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		fams := parseFamilies(t, res.Body)
		for _, w := range want {
			if _, ok := fams[w]; !ok {
				return false
			}
		}
		return true
	})
	res, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// listedRooms stands in for LiveKit's room list: the naming test needs the
// reconciler's instruments recorded, not a LiveKit server (the e2e suite
// runs the reconciler against a real one).
type listedRooms []*livekit.Room

func (l listedRooms) ListRooms(context.Context) ([]*livekit.Room, error) { return l, nil }

// alertRules is the part of a Prometheus rule file the test reads.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules: alerts.yaml parses, queries only series the receiver
// exports, and holds the documented delivery-lag alert (p95 above 20 s
// for 2 minutes).
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf alertRules
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	known := map[string]bool{}
	for _, in := range parseInstruments(t) {
		for _, s := range in.series() {
			known[s] = true
		}
	}
	found := false
	// The alerts on what the reports tell: the metric and status each
	// must query.
	reportAlerts := map[string]string{
		"LiveKitWebhookRecordingFailed":  `livekitwebhook_recordings_total{status="EGRESS_FAILED"}`,
		"LiveKitWebhookAgentJobsFailing": `livekitwebhook_agent_jobs_total{status="JS_FAILED"}`,
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if want, ok := reportAlerts[r.Alert]; ok {
				if !strings.Contains(r.Expr, want) {
					t.Errorf("alert %s: expr %q does not query %s", r.Alert, r.Expr, want)
				}
				delete(reportAlerts, r.Alert)
			}
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: rule without alert name or expr: %+v", g.Name, r)
			}
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				if !known[m] {
					t.Errorf("alert %s queries %q, which no instrument in telemetry.go exports", r.Alert, m)
				}
			}
			if r.Alert != "LiveKitWebhookDeliveryLagHigh" {
				continue
			}
			found = true
			expr := strings.Join(strings.Fields(r.Expr), " ")
			for _, want := range []string{"histogram_quantile(0.95,", "livekitwebhook_delivery_lag_seconds_bucket", ") > 20"} {
				if !strings.Contains(expr, want) {
					t.Errorf("lag alert expr %q lacks %q", expr, want)
				}
			}
			if r.For != "2m" {
				t.Errorf("lag alert for: %q, want 2m", r.For)
			}
		}
	}
	if !found {
		t.Error("alerts.yaml has no LiveKitWebhookDeliveryLagHigh rule")
	}
	for name := range reportAlerts {
		t.Errorf("alerts.yaml has no %s rule", name)
	}
}

// TestDashboardReportPanels: the panels of what the reports tell break
// down by the labels the receiver sets, and the dispositions of unanswered
// calls are shown.
func TestDashboardReportPanels(t *testing.T) {
	var exprs []string
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, strings.Join(strings.Fields(tg.Expr), " "))
		}
	}
	for _, want := range []string{
		"sum by (direction, outcome) (increase(livekitwebhook_sip_calls_total",
		"livekitwebhook_sip_talk_seconds_bucket",
		"sum by (status) (increase(livekitwebhook_recordings_total",
		"sum by (status) (increase(livekitwebhook_agent_jobs_total",
		"sum by (code) (increase(livekitwebhook_report_anomalies_total",
		`disposition=~"no_answer|rejected|failed`,
	} {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("no dashboard query contains %q", want)
		}
	}
}
