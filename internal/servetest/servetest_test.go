package servetest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// serve without -race: these tests check the harness, not serve.
func TestMain(m *testing.M) { servetest.Main(m, servetest.Build{}) }

func roomEvent(name, id, sid string, at time.Time) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{
		Event:     name,
		Id:        id,
		CreatedAt: at.Unix(),
		Room:      &livekit.Room{Sid: sid, Name: "helper-room", CreationTime: at.Unix(), CreationTimeMs: at.UnixMilli()},
	}
}

// TestServeKillRestart: events posted as LiveKit signs them are accepted, a
// SIGKILL loses nothing that was answered 200 (the session and the event-id
// dedupe survive on the data directory), Restart keeps the address, and the
// sessions API and /metrics read what happened.
func TestServeKillRestart(t *testing.T) {
	sv := servetest.Start(t, servetest.Options{Args: []string{"--finalize-grace", "500ms"}})
	const sid = "RM_helperTest01"
	now := time.Now()
	url := sv.WebhookURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, servetest.WebhookPath) || strings.HasSuffix(sv.Addr(), ":0") {
		t.Fatalf("webhook URL %q", url)
	}

	if code, outcome := sv.Post(t, roomEvent("room_started", "EV_helperStart1", sid, now)); code != 200 || outcome != "accepted" {
		t.Fatalf("room_started: %d %q, want 200 accepted", code, outcome)
	}
	sv.WaitActive(t, 10*time.Second, sid, servetest.ByRoomSID(sid))
	// The kill must not land between the room record and its index.
	deadline := time.Now().Add(10 * time.Second)
	for _, ok, _ := sv.TrySession("helper-room"); !ok; _, ok, _ = sv.TrySession("helper-room") {
		if time.Now().After(deadline) {
			t.Fatal("GET sessions/helper-room: not found within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	sv.Kill()
	if sv.Running() || sv.Healthy() {
		t.Fatal("serve still running after Kill")
	}
	sv.Restart()
	if !sv.Healthy() || sv.WebhookURL() != url {
		t.Fatalf("after Restart: healthy %v, webhook URL %q, want %q", sv.Healthy(), sv.WebhookURL(), url)
	}
	// The restarted process has not seen the id itself, so it answers
	// "accepted"; the events stream (rebuilt from disk) drops it as a
	// duplicate, and says so in the metrics.
	if code, outcome := sv.Post(t, roomEvent("room_started", "EV_helperStart1", sid, now)); code != 200 || outcome != "accepted" {
		t.Errorf("room_started again after a crash: %d %q, want 200 accepted", code, outcome)
	}
	deadline = time.Now().Add(10 * time.Second)
	for sv.Metrics(t).Sum("livekitwebhook_duplicates_total", map[string]string{"stage": "store"}) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the resent event was not counted as a duplicate by the events stream")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if active, _ := sv.Sessions(t); len(active) != 1 || active[0].RoomSID != sid || active[0].EventsApplied != 1 {
		t.Errorf("active after restart = %+v, want the one session with events_applied 1", active)
	}

	if code, outcome := sv.Post(t, roomEvent("room_finished", "EV_helperFinish", sid, now.Add(time.Second))); code != 200 || outcome != "accepted" {
		t.Fatalf("room_finished: %d %q, want 200 accepted", code, outcome)
	}
	rep := sv.WaitEnded(t, 15*time.Second, sid, servetest.ByRoomSID(sid))
	if rep.EventsApplied != 2 || rep.Disposition != "no_show" || rep.SessionID != "helper-room" {
		t.Errorf("report = %+v, want events_applied 2, no_show, session helper-room", rep)
	}
	m := sv.Metrics(t)
	if got := m.Sum("livekitwebhook_requests_total", map[string]string{"outcome": "accepted"}); got != 2 {
		t.Errorf("accepted requests since the restart: %v, want 2", got)
	}
	if got := m.Sum("livekitwebhook_reports_total", map[string]string{"disposition": "no_show"}); got != 1 {
		t.Errorf("no_show reports: %v, want 1", got)
	}

	sv.Stop()
	if sv.Running() || sv.ExitErr() != nil {
		t.Errorf("after Stop: running %v, exit %v (want a clean exit)", sv.Running(), sv.ExitErr())
	}
	sv.Restart()
	active, ended := sv.Sessions(t)
	if len(active) != 0 || len(ended) != 1 || ended[0].RoomSID != sid {
		t.Errorf("after a graceful restart: active %+v, ended %+v; want the one ended session", active, ended)
	}
	if s, ok := sv.Session(t, "helper-room"); !ok || s.Disposition != "no_show" {
		t.Errorf("GET sessions/helper-room = %v %+v", ok, s)
	}
	if _, ok := sv.Session(t, "no-such-session"); ok {
		t.Error("GET sessions/no-such-session found something")
	}
	if n := strings.Count(sv.Log(), "listening on http://"+sv.Addr()); n != 3 {
		t.Errorf("serve said it listens on %s %d times, want 3 (one per run)", sv.Addr(), n)
	}
}

// TestServeAdminTokenAndPath: the API helpers send the admin token serve
// was given, and Post follows --path.
func TestServeAdminTokenAndPath(t *testing.T) {
	sv := servetest.Start(t, servetest.Options{AdminToken: "an-admin-token-for-the-test", Args: []string{"--path", "/hooks/lk"}})
	if !strings.HasSuffix(sv.WebhookURL(), "/hooks/lk") {
		t.Fatalf("webhook URL %q", sv.WebhookURL())
	}
	if code, outcome := sv.Post(t, roomEvent("room_started", "EV_helperToken1", "RM_helperToken1", time.Now())); code != 200 || outcome != "accepted" {
		t.Fatalf("post to --path: %d %q", code, outcome)
	}
	sv.WaitActive(t, 10*time.Second, "RM_helperToken1", servetest.ByRoomSID("RM_helperToken1"))
	if sv.Metrics(t).Sum("livekitwebhook_requests_total", nil) != 1 {
		t.Error("/metrics with the token: requests_total is not 1")
	}
	resp, err := http.Get(sv.URL() + servetest.SessionsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sessions without the token: %d, want 401", resp.StatusCode)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP livekitwebhook_requests_total Webhook requests by event and outcome.
# TYPE livekitwebhook_requests_total counter
livekitwebhook_requests_total{event="room_started",otel_scope_name="x",outcome="accepted"} 2
livekitwebhook_requests_total{event="room_finished",otel_scope_name="a \"q\", b\\c",outcome="accepted"} 1
livekitwebhook_requests_total{event="room_finished",outcome="duplicate"} 1 1700000000000
# TYPE livekitwebhook_backlog gauge
livekitwebhook_backlog 7
# TYPE livekitwebhook_accept_duration_seconds histogram
livekitwebhook_accept_duration_seconds_bucket{le="0.1"} 3
livekitwebhook_accept_duration_seconds_bucket{le="+Inf"} 4
livekitwebhook_accept_duration_seconds_sum 0.5
livekitwebhook_accept_duration_seconds_count 4
up 1
`
	m, err := servetest.ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"livekitwebhook_requests_total", nil, 4},
		{"livekitwebhook_requests_total", map[string]string{"outcome": "accepted"}, 3},
		{"livekitwebhook_requests_total", map[string]string{"event": "room_finished"}, 2},
		{"livekitwebhook_requests_total", map[string]string{"event": "room_finished", "outcome": "duplicate"}, 1},
		{"livekitwebhook_requests_total", map[string]string{"otel_scope_name": `a "q", b\c`}, 1},
		{"livekitwebhook_requests_total", map[string]string{"otel_scope_name": ""}, 1}, // absent = empty
		{"livekitwebhook_requests_total", map[string]string{"outcome": "refused"}, 0},
		{"livekitwebhook_backlog", nil, 7},
		{"livekitwebhook_accept_duration_seconds", nil, 4}, // a histogram's count
		{"up", nil, 1},
		{"absent", nil, 0},
	} {
		if got := m.Sum(c.name, c.labels); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, err := servetest.ParseMetrics(strings.NewReader("x{a=\"b} 1\n")); err == nil {
		t.Error("unterminated label value parsed")
	}
}

// TestProc: a restart runs the arguments as SetArg left them, Output is the
// last run's alone, and Stop ends a run by SIGTERM.
func TestProc(t *testing.T) {
	p := servetest.NewProc(t, "sh", "/bin/sh", []string{"-c", `echo "run $0"; exec sleep 60`, "one"}, servetest.Env())
	waitOutput := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(p.Output(), want) {
			if time.Now().After(deadline) || !p.Running() {
				t.Fatalf("no %q in the output:\n%s", want, p.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	p.Start()
	waitOutput("run one")
	p.Stop()
	if p.Running() || p.ExitErr() == nil {
		t.Fatalf("after Stop: running %v, exit %v (want killed by SIGTERM)", p.Running(), p.ExitErr())
	}
	p.SetArg("-c", `echo "again $0"; exec sleep 60`)
	p.Start()
	waitOutput("again one")
	if out := p.Output(); strings.Contains(out, "run one") {
		t.Errorf("Output holds an earlier run:\n%s", out)
	}
	if log := p.Log(); !strings.Contains(log, "run one") || !strings.Contains(log, "again one") {
		t.Errorf("Log lacks a run:\n%s", log)
	}
	p.Kill()
	if p.Running() {
		t.Error("running after Kill")
	}
}

// TestServeEndOfTest: when its test ends, serve is stopped gracefully (a
// clean exit), or killed with KillAtEnd.
func TestServeEndOfTest(t *testing.T) {
	for _, kill := range []bool{false, true} {
		var sv *servetest.Serve
		t.Run(map[bool]string{false: "stop", true: "kill"}[kill], func(t *testing.T) {
			sv = servetest.Start(t, servetest.Options{KillAtEnd: kill})
		})
		if sv.Running() {
			t.Fatal("serve outlived its test")
		}
		if err := sv.ExitErr(); (err != nil) != kill {
			t.Errorf("KillAtEnd %v: exit %v", kill, err)
		}
	}
}
