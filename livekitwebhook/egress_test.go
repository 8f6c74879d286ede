package livekitwebhook

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// egressHooks records OnEgressEnded calls (with the session they got) and
// reports.
type egressHooks struct {
	mu      sync.Mutex
	ended   map[string][]Session // by event id
	left    int
	reports []Report
}

func (h *egressHooks) hooks() Hooks {
	return Hooks{
		OnEgressEnded: func(_ context.Context, ev *livekit.WebhookEvent, s Session) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.ended == nil {
				h.ended = map[string][]Session{}
			}
			h.ended[ev.Id] = append(h.ended[ev.Id], s)
			return nil
		},
		OnParticipantLeft: func(context.Context, *livekit.WebhookEvent, Session) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.left++
			return nil
		},
		OnSessionEnded: func(_ context.Context, r Report) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reports = append(h.reports, r)
			return nil
		},
	}
}

func (h *egressHooks) endedCalls(id string) []Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Session(nil), h.ended[id]...)
}

func (h *egressHooks) got() []Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Report(nil), h.reports...)
}

// egressScenario is one room composite egress to a file, filled as
// livekit/egress fills EgressInfo (see testdata/egress).
type egressScenario struct {
	sid, name, egressID string
	t0                  time.Time
}

func (e egressScenario) ns(d time.Duration) int64 { return e.t0.Add(d).UnixNano() }

func (e egressScenario) event(id, event string, status livekit.EgressStatus, at time.Duration) *livekit.WebhookEvent {
	file := &livekit.FileInfo{Filename: "recordings/" + e.name + ".mp4"}
	info := &livekit.EgressInfo{
		EgressId: e.egressID, RoomId: e.sid, RoomName: e.name, Status: status,
		StartedAt: e.ns(time.Second), UpdatedAt: e.ns(at),
		FileResults: []*livekit.FileInfo{file}, Result: &livekit.EgressInfo_File{File: file},
	}
	if status >= livekit.EgressStatus_EGRESS_ACTIVE {
		file.StartedAt = e.ns(2 * time.Second)
	}
	if lifecycleTerminal(status) {
		info.EndedAt = e.ns(at)
		file.EndedAt = e.ns(at - time.Second)
		file.Duration = file.EndedAt - file.StartedAt
		file.Size, file.Location = 1_234_567, "https://bucket.example/recordings/"+e.name+".mp4"
	}
	ev := livekitwebhooktest.EgressEvent(event, info)
	ev.Id, ev.CreatedAt = id, e.t0.Add(at).Unix()
	return ev
}

func lifecycleTerminal(s livekit.EgressStatus) bool { return s >= livekit.EgressStatus_EGRESS_COMPLETE }

// room events of the scenario's room at t0 + at.
func (e egressScenario) room(id, event string, at time.Duration) *livekit.WebhookEvent {
	ev := roomEvent(id, event, e.name, e.sid, e.t0.Add(at).Unix())
	ev.Room.CreationTime = e.t0.Unix()
	return ev
}

// complete is the Recording of the scenario's egress ended at t0 + at.
func (e egressScenario) complete(at time.Duration) Recording {
	start, end := time.Unix(0, e.ns(time.Second)).UTC(), time.Unix(0, e.ns(at)).UTC()
	return Recording{EgressID: e.egressID, Status: "EGRESS_COMPLETE", StartedAt: &start, EndedAt: &end,
		DurationSeconds: (at - time.Second).Seconds(), Files: []RecordingFile{{
			Filename: "recordings/" + e.name + ".mp4", Location: "https://bucket.example/recordings/" + e.name + ".mp4",
			Size: 1_234_567, DurationSeconds: (at - 3*time.Second).Seconds()}}}
}

func (e egressScenario) active() Recording {
	start := time.Unix(0, e.ns(time.Second)).UTC()
	return Recording{EgressID: e.egressID, Status: "EGRESS_ACTIVE", StartedAt: &start,
		Files: []RecordingFile{{Filename: "recordings/" + e.name + ".mp4"}}}
}

func mustPost(t *testing.T, url string, evs ...*livekit.WebhookEvent) {
	t.Helper()
	for _, ev := range evs {
		if code, resp := postEvent(t, url, ev); code != 200 {
			t.Fatalf("%s: %d %s", ev.Event, code, resp)
		}
	}
}

func sameRecordings(t *testing.T, what string, got, want []Recording) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s recordings\n got: %+v\nwant: %+v", what, got, want)
	}
}

func sameAnomalies(t *testing.T, what string, got, want []Anomaly) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s anomalies: got %+v, want %+v", what, got, want)
	}
}

// TestReportWaitsForRecording: an egress still running at room_finished
// holds the report past the grace period; its egress_ended releases it
// at once (long before egress_wait), with the recording complete.
// OnEgressEnded gets that egress_ended once.
func TestReportWaitsForRecording(t *testing.T) {
	cfg := testConfig(t)
	cfg.FinalizeGrace, cfg.EgressWait = "50ms", "1m"
	var h egressHooks
	tr := startReceiver(t, cfg, WithHooks(h.hooks()))
	e := egressScenario{sid: "RM_wait", name: "rec-wait", egressID: "EG_wait", t0: time.Now().Add(-time.Minute).Truncate(time.Second)}
	mustPost(t, tr.url,
		e.room("EV_wait_rs", "room_started", 0),
		e.event("EV_wait_e1", "egress_started", livekit.EgressStatus_EGRESS_STARTING, time.Second),
		e.event("EV_wait_e2", "egress_updated", livekit.EgressStatus_EGRESS_ACTIVE, 2*time.Second),
		e.room("EV_wait_rf", "room_finished", 30*time.Second),
	)
	ctx := context.Background()
	var live Session
	eventually(t, 10*time.Second, "room_finished applied", func() bool {
		s, ok, err := tr.SessionByRoomSID(ctx, "RM_wait")
		live = s
		return err == nil && ok && s.EndedAt != nil
	})
	// The live view of the finished room: the recording as it stands, and
	// no egress_never_ended (the report is still waiting for it).
	sameRecordings(t, "live", live.Recordings, []Recording{e.active()})
	sameAnomalies(t, "live", live.Anomalies, nil)
	// A room finished at the same time without an egress is reported
	// after the grace period; this one still waits.
	mustPost(t, tr.url, roomEvent("EV_wait_c1", "room_started", "ctrl", "RM_ctrl", e.t0.Unix()),
		roomEvent("EV_wait_c2", "room_finished", "ctrl", "RM_ctrl", e.t0.Unix()+30))
	eventually(t, 20*time.Second, "the other room's report", func() bool { return len(h.got()) == 1 })
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r := h.got(); len(r) != 1 || r[0].RoomSID != "RM_ctrl" {
			t.Fatalf("report made while the egress was running: %+v", r)
		}
	}
	ended := e.event("EV_wait_e3", "egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, 40*time.Second)
	mustPost(t, tr.url, ended)
	eventually(t, 20*time.Second, "report after the egress ended", func() bool { return len(h.got()) == 2 })
	rep := h.got()[1]
	sameRecordings(t, "report", rep.Recordings, []Recording{e.complete(40 * time.Second)})
	sameAnomalies(t, "report", rep.Anomalies, nil)
	if calls := h.endedCalls("EV_wait_e3"); len(calls) != 1 || calls[0].Recordings[0].Status != "EGRESS_COMPLETE" {
		t.Fatalf("OnEgressEnded calls %+v", calls)
	}
}

// TestRecordingEndedBeforeRoomFinished: nothing to wait for: the report
// follows the grace period with the complete recording.
func TestRecordingEndedBeforeRoomFinished(t *testing.T) {
	cfg := testConfig(t)
	cfg.FinalizeGrace, cfg.EgressWait = "50ms", "1m"
	var h egressHooks
	tr := startReceiver(t, cfg, WithHooks(h.hooks()))
	e := egressScenario{sid: "RM_before", name: "rec-before", egressID: "EG_before", t0: time.Now().Add(-time.Minute).Truncate(time.Second)}
	mustPost(t, tr.url,
		e.room("EV_bef_rs", "room_started", 0),
		e.event("EV_bef_e1", "egress_started", livekit.EgressStatus_EGRESS_STARTING, time.Second),
		e.event("EV_bef_e3", "egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, 20*time.Second),
		e.event("EV_bef_e2", "egress_updated", livekit.EgressStatus_EGRESS_ACTIVE, 2*time.Second), // late, not terminal
		e.room("EV_bef_rf", "room_finished", 30*time.Second),
	)
	eventually(t, 20*time.Second, "report", func() bool { return len(h.got()) == 1 })
	rep := h.got()[0]
	sameRecordings(t, "report", rep.Recordings, []Recording{e.complete(20 * time.Second)})
	sameAnomalies(t, "report", rep.Anomalies, nil)
	if n := len(h.endedCalls("EV_bef_e3")); n != 1 {
		t.Fatalf("OnEgressEnded called %d times", n)
	}
}

// TestLateRecordingAmendsStoredReport: an egress still running when
// egress_wait runs out is reported with its last status and the anomaly
// egress_never_ended. Its egress_ended, arriving after the report (twice),
// reaches OnEgressEnded once and updates the stored report (sessions API,
// SessionByID, EndedSessions): recording complete, events_after_report 1.
// The report on lkwh.reports.* stays one, and OnSessionEnded is not called
// again.
func TestLateRecordingAmendsStoredReport(t *testing.T) {
	cfg := testConfig(t)
	cfg.FinalizeGrace, cfg.EgressWait = "50ms", "300ms"
	var h egressHooks
	tr := startReceiver(t, cfg, WithHooks(h.hooks()))
	e := egressScenario{sid: "RM_late", name: "rec-late", egressID: "EG_late", t0: time.Now().Add(-time.Minute).Truncate(time.Second)}
	mustPost(t, tr.url,
		e.room("EV_late_rs", "room_started", 0),
		e.event("EV_late_e1", "egress_started", livekit.EgressStatus_EGRESS_STARTING, time.Second),
		e.event("EV_late_e2", "egress_updated", livekit.EgressStatus_EGRESS_ACTIVE, 2*time.Second),
		e.room("EV_late_rf", "room_finished", 30*time.Second),
	)
	eventually(t, 20*time.Second, "report at the egress deadline", func() bool { return len(h.got()) == 1 })
	rep := h.got()[0]
	sameRecordings(t, "report", rep.Recordings, []Recording{e.active()})
	sameAnomalies(t, "report", rep.Anomalies, []Anomaly{{Code: AnomalyEgressNeverEnded, Count: 1}})

	ended := e.event("EV_late_e3", "egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, 90*time.Second)
	mustPost(t, tr.url, ended, ended) // a duplicate delivery
	ctx := context.Background()
	wantRec := []Recording{e.complete(90 * time.Second)}
	wantAnom := []Anomaly{{Code: AnomalyEventsAfterReport, Count: 1}}
	eventually(t, 20*time.Second, "stored report amended", func() bool {
		s, ok, err := tr.SessionByID(ctx, "rec-late")
		return err == nil && ok && reflect.DeepEqual(s.Recordings, wantRec) && reflect.DeepEqual(s.Anomalies, wantAnom)
	})
	eventually(t, 10*time.Second, "events applied", func() bool {
		_, n, err := tr.Backlog(ctx)
		return err == nil && n == 0
	})
	calls := h.endedCalls("EV_late_e3")
	if len(calls) != 1 {
		t.Fatalf("OnEgressEnded called %d times", len(calls))
	}
	sameRecordings(t, "OnEgressEnded session", calls[0].Recordings, wantRec)
	sameAnomalies(t, "OnEgressEnded session", calls[0].Anomalies, wantAnom)

	var one Session
	if code := getJSON(t, tr.base+"/voice/livekit/sessions/rec-late", &one); code != 200 {
		t.Fatalf("sessions API: %d", code)
	}
	sameRecordings(t, "sessions API", one.Recordings, wantRec)
	sameAnomalies(t, "sessions API", one.Anomalies, wantAnom)
	list, err := tr.EndedSessions(ctx, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("EndedSessions: %v %d", err, len(list))
	}
	sameRecordings(t, "EndedSessions", list[0].Recordings, wantRec)
	sameAnomalies(t, "EndedSessions", list[0].Anomalies, wantAnom)
	if list[0].EventsApplied != rep.EventsApplied || list[0].Disposition != rep.Disposition {
		t.Fatalf("amended report changed fixed fields: %+v vs %+v", list[0], rep)
	}

	info, err := testStream(t, tr.engine(), engine.StreamReports).Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("reports stream: %v %+v", err, info.State)
	}
	if n := len(h.got()); n != 1 {
		t.Fatalf("OnSessionEnded called %d times", n)
	}
}

// TestEventsAfterReportCounted: a non-egress event after the report is
// not folded into it and runs no hook, but the stored report counts it.
func TestEventsAfterReportCounted(t *testing.T) {
	cfg := testConfig(t)
	cfg.FinalizeGrace = "50ms"
	var h egressHooks
	tr := startReceiver(t, cfg, WithHooks(h.hooks()))
	t0 := time.Now().Add(-time.Minute).Unix()
	mustPost(t, tr.url,
		roomEvent("EV_ear_rs", "room_started", "ear", "RM_ear", t0),
		participantEvent("EV_ear_pj", "participant_joined", "ear", "RM_ear", "PA_1", "alice", livekit.ParticipantInfo_STANDARD, t0+1, t0+1),
		roomEvent("EV_ear_rf", "room_finished", "ear", "RM_ear", t0+30),
	)
	eventually(t, 20*time.Second, "report", func() bool { return len(h.got()) == 1 })
	sameAnomalies(t, "report", h.got()[0].Anomalies, []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}})
	late := participantEvent("EV_ear_pl", "participant_left", "ear", "RM_ear", "PA_1", "alice", livekit.ParticipantInfo_STANDARD, t0+31, t0+1)
	mustPost(t, tr.url, late, late)
	ctx := context.Background()
	want := []Anomaly{{Code: AnomalyEventsAfterReport, Count: 1}, {Code: AnomalyParticipantNeverLeft, Count: 1}}
	eventually(t, 20*time.Second, "stored report counts the late event", func() bool {
		s, ok, err := tr.SessionByID(ctx, "ear")
		return err == nil && ok && reflect.DeepEqual(s.Anomalies, want)
	})
	eventually(t, 10*time.Second, "events applied", func() bool {
		_, n, err := tr.Backlog(ctx)
		return err == nil && n == 0
	})
	s, _, _ := tr.SessionByID(ctx, "ear")
	h.mu.Lock()
	left := h.left
	h.mu.Unlock()
	if !reflect.DeepEqual(s.Anomalies, want) || s.Participants[0].State != "left" || left != 0 {
		t.Fatalf("after a duplicate: anomalies %+v, participant %+v, OnParticipantLeft %d", s.Anomalies, s.Participants[0], left)
	}
}

func TestEgressWaitConfig(t *testing.T) {
	if c := DefaultConfig(); c.EgressWait != "5m" {
		t.Fatalf("default egress_wait %q", c.EgressWait)
	}
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_EGRESS_WAIT", "90s")
	c, err := LoadConfigFromEnv()
	if err != nil || c.EgressWait != "90s" {
		t.Fatalf("from env: %q %v", c.EgressWait, err)
	}
	c.APIKey, c.APISecret = testKey, testSecret
	if r, err := New(c); err != nil || r.d.egressWait != 90*time.Second {
		t.Fatalf("New: %v", err)
	}
	for _, bad := range []string{"-1s", "soon"} {
		c.EgressWait = bad
		if _, err := New(c); err == nil {
			t.Errorf("egress_wait %q accepted", bad)
		}
	}
	c.EgressWait = "0s"
	if r, err := New(c); err != nil || r.d.egressWait != 0 {
		t.Fatalf("egress_wait 0s: %v", err)
	}
}
