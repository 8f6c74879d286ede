package lifecycle

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/livekit/protocol/livekit"
)

// fxRoom is a room event of the fixtures' room at t0+sec.
func fxRoom(id, name string, sec int64) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{Id: id, Event: name, CreatedAt: t0 + sec,
		Room: &livekit.Room{Sid: fxRoomSID, Name: fxRoomName, CreationTime: t0, CreationTimeMs: t0 * 1000}}
}

func fxPart(id, name string, sec int64, psid string) *livekit.WebhookEvent {
	ev := fxRoom(id, name, sec)
	ev.Room = &livekit.Room{Sid: fxRoomSID, Name: fxRoomName}
	ev.Participant = &livekit.ParticipantInfo{Sid: psid, Identity: psid, JoinedAt: t0 + 1}
	return ev
}

// The recordings the fixtures give.
var (
	recComplete = Recording{
		EgressID: fxEgressID, Status: "EGRESS_COMPLETE",
		StartedAt: tp(atMs(5120)), EndedAt: tp(atMs(67800)), DurationSeconds: 62.68,
		Files: []RecordingFile{{Filename: "recordings/call-7.mp4",
			Location: "https://rec-bucket.s3.amazonaws.com/recordings/call-7.mp4", Size: 4_812_345, DurationSeconds: 57.56}},
	}
	// Still running: the last status seen, no end, the file without results yet.
	recActive = Recording{
		EgressID: fxEgressID, Status: "EGRESS_ACTIVE", StartedAt: tp(atMs(5120)),
		Files: []RecordingFile{{Filename: "recordings/call-7.mp4"}},
	}
	recFileOnly = Recording{
		EgressID: "EG_lG4cY8nQ1sHb", Status: "EGRESS_COMPLETE",
		StartedAt: tp(atMs(9900)), EndedAt: tp(atMs(41200)), DurationSeconds: 31.3,
		Files: []RecordingFile{{Filename: "recordings/call-7-legacy.ogg",
			Location: "gs://rec-bucket/recordings/call-7-legacy.ogg", Size: 960_000, DurationSeconds: 30.5}},
	}
	recAborted = Recording{
		EgressID: "EG_aB9dE4gH7jKm", Status: "EGRESS_ABORTED",
		StartedAt: tp(atMs(18000)), EndedAt: tp(atMs(20000)), DurationSeconds: 2,
		Error: "Stop called before pipeline could start", Files: []RecordingFile{},
	}
	recLimit = Recording{
		EgressID: "EG_mL5wQ3rJ8yCe", Status: "EGRESS_LIMIT_REACHED",
		StartedAt: tp(atMs(11000)), EndedAt: tp(atMs(3_611_000)), DurationSeconds: 3600,
		Error: "Session limit reached", Files: []RecordingFile{},
	}
	recFailed = Recording{
		EgressID: "EG_xF7pB2kV6tNd", Status: "EGRESS_FAILED",
		StartedAt: tp(atMs(11500)), EndedAt: tp(atMs(30250)), DurationSeconds: 18.75,
		Error: "upload failed: AccessDenied", Files: []RecordingFile{{Filename: "recordings/call-7-track.ogg"}},
	}
)

type egressCase struct {
	name string
	evs  []any // *livekit.WebhookEvent, or a fixture file name
	// want: the live (Session) and final (Report) recordings and anomalies.
	recordings      []Recording
	anomalies       []Anomaly
	reportAnomalies []Anomaly
	pending         int
}

func egressCases() []egressCase {
	started := fxRoom("EV_rmStarted001", EventRoomStarted, 0)
	return []egressCase{
		{
			name: "egress ends before room_finished",
			evs: []any{started, "01-egress_started.json", "02-egress_updated-active.json",
				"03-egress_updated-ending.json", "04-egress_ended-complete.json", fxRoom("EV_rmFinish001", EventRoomFinished, 90)},
			recordings: []Recording{recComplete},
		},
		{
			name: "egress ends after room_finished",
			evs: []any{started, "01-egress_started.json", "02-egress_updated-active.json",
				fxRoom("EV_rmFinish001", EventRoomFinished, 60), "03-egress_updated-ending.json", "04-egress_ended-complete.json"},
			recordings: []Recording{recComplete},
		},
		{
			name: "egress still running when the report is made",
			evs: []any{started, "01-egress_started.json", "02-egress_updated-active.json",
				fxRoom("EV_rmFinish001", EventRoomFinished, 60)},
			recordings:      []Recording{recActive},
			reportAnomalies: []Anomaly{{Code: AnomalyEgressNeverEnded, Count: 1}},
			pending:         1,
		},
		{
			name: "ENDING is not terminal",
			evs: []any{started, "01-egress_started.json", "03-egress_updated-ending.json",
				fxRoom("EV_rmFinish001", EventRoomFinished, 70)},
			recordings: []Recording{{EgressID: fxEgressID, Status: "EGRESS_ENDING", StartedAt: tp(atMs(5120)),
				Files: []RecordingFile{{Filename: "recordings/call-7.mp4"}}}},
			reportAnomalies: []Anomaly{{Code: AnomalyEgressNeverEnded, Count: 1}},
			pending:         1,
		},
		{
			name: "terminal status not replaced by late non-terminal updates",
			evs: []any{fxRoom("EV_rmFinish001", EventRoomFinished, 90), "04-egress_ended-complete.json",
				"03-egress_updated-ending.json", "02-egress_updated-active.json", "01-egress_started.json", started},
			recordings: []Recording{recComplete},
		},
		{
			// A late ACTIVE stamped after the COMPLETE (another node's
			// clock): the terminal status still wins.
			name: "terminal status wins over a later-stamped non-terminal update",
			evs: []any{started, "04-egress_ended-complete.json", func() *livekit.WebhookEvent {
				ev := fxWebhook("EV_eg09Skewed00", EventEgressUpdated, 70, fxComposite(livekit.EgressStatus_EGRESS_ACTIVE))
				ev.EgressInfo.UpdatedAt = ns(70, 0)
				return ev
			}(), fxRoom("EV_rmFinish001", EventRoomFinished, 90)},
			recordings: []Recording{recComplete},
		},
		{
			name:       "deprecated file result when file_results is empty",
			evs:        []any{started, "05-egress_ended-file-only.json", fxRoom("EV_rmFinish001", EventRoomFinished, 90)},
			recordings: []Recording{recFileOnly},
		},
		{
			name: "failed, limit reached and aborted, sorted by egress id",
			evs: []any{"06-egress_ended-failed.json", "07-egress_ended-limit_reached.json",
				"08-egress_ended-aborted.json", fxRoom("EV_rmFinish001", EventRoomFinished, 90)},
			recordings: []Recording{recAborted, recLimit, recFailed},
		},
		{
			name: "participant never left",
			evs: []any{started,
				fxPart("EV_pj1", EventParticipantJoined, 1, "PA_stays"),
				fxPart("EV_pj2", EventParticipantJoined, 1, "PA_leaves"),
				fxPart("EV_pl2", EventParticipantLeft, 20, "PA_leaves"),
				fxPart("EV_pa3", EventParticipantConnectionAborted, 2, "PA_aborts"),
				fxRoom("EV_rmFinish001", EventRoomFinished, 30)},
			anomalies:       []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}},
			reportAnomalies: []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}},
		},
		{
			// By createdAt, whatever the order of arrival: the one at 40 is
			// after room_finished (30); the one at 30 (same second) is not.
			name: "room_started after room_finished, by createdAt",
			evs: []any{fxRoom("EV_rs40", EventRoomStarted, 40), fxRoom("EV_rs30", EventRoomStarted, 30), started,
				fxRoom("EV_rmFinish001", EventRoomFinished, 30)},
			anomalies:       []Anomaly{{Code: AnomalyRoomStartedAfterFinished, Count: 1}},
			reportAnomalies: []Anomaly{{Code: AnomalyRoomStartedAfterFinished, Count: 1}},
		},
		{
			name: "anomalies sorted by code",
			evs: []any{started, "02-egress_updated-active.json", fxPart("EV_pj1", EventParticipantJoined, 1, "PA_stays"),
				fxRoom("EV_rmFinish001", EventRoomFinished, 30), fxRoom("EV_rs40", EventRoomStarted, 40)},
			recordings: []Recording{recActive},
			anomalies: []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1},
				{Code: AnomalyRoomStartedAfterFinished, Count: 1}},
			reportAnomalies: []Anomaly{{Code: AnomalyEgressNeverEnded, Count: 1},
				{Code: AnomalyParticipantNeverLeft, Count: 1}, {Code: AnomalyRoomStartedAfterFinished, Count: 1}},
			pending: 1,
		},
	}
}

func (c egressCase) fold(t *testing.T) State {
	t.Helper()
	s := NewState(fxRoomSID, fxRoomName)
	for _, e := range c.evs {
		ev, ok := e.(*livekit.WebhookEvent)
		if !ok {
			ev = loadEgressFixture(t, e.(string))
		}
		next, applied := Apply(s, ev)
		if !applied {
			t.Fatalf("%s not applied", ev.Id)
		}
		if again, ok := Apply(next, ev); ok || !reflect.DeepEqual(again, next) {
			t.Fatalf("%s: not idempotent", ev.Id)
		}
		s = next
	}
	checkRoundTrip(t, s)
	return s
}

func TestRecordingsAndAnomalies(t *testing.T) {
	for _, c := range egressCases() {
		t.Run(c.name, func(t *testing.T) {
			s := c.fold(t)
			live, report := s.Session(), s.Report()
			check := func(what string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					w, _ := json.MarshalIndent(want, "", "  ")
					t.Errorf("%s\n got: %s\nwant: %s", what, g, w)
				}
			}
			check("session recordings", live.Recordings, c.recordings)
			check("report recordings", report.Recordings, c.recordings)
			check("session anomalies", live.Anomalies, c.anomalies)
			check("report anomalies", report.Anomalies, c.reportAnomalies)
			if got := s.EgressPending(); got != c.pending {
				t.Errorf("EgressPending = %d, want %d", got, c.pending)
			}
			checkSessionInvariants(t, live)
			checkSessionInvariants(t, report)
		})
	}
}

// TestRecordingOrderIndependent: every order of the four events of one
// egress (and room_finished anywhere among them) gives the same state.
func TestRecordingOrderIndependent(t *testing.T) {
	names := []any{"01-egress_started.json", "02-egress_updated-active.json", "03-egress_updated-ending.json",
		"04-egress_ended-complete.json", fxRoom("EV_rmFinish001", EventRoomFinished, 60)}
	want := egressCase{evs: names}.fold(t)
	n := 0
	permute(names, 0, func(order []any) {
		n++
		if got := (egressCase{evs: order}).fold(t); !reflect.DeepEqual(got.Egress, want.Egress) ||
			!reflect.DeepEqual(got.Session(), want.Session()) {
			t.Fatalf("order %d differs", n)
		}
	})
	if n != 120 || !reflect.DeepEqual(want.Session().Recordings, []Recording{recComplete}) {
		t.Fatalf("%d orders, recordings %+v", n, want.Session().Recordings)
	}
}

func permute(a []any, k int, f func([]any)) {
	if k == len(a) {
		f(append([]any(nil), a...))
		return
	}
	for i := k; i < len(a); i++ {
		a[k], a[i] = a[i], a[k]
		permute(a, k+1, f)
		a[k], a[i] = a[i], a[k]
	}
}

// TestAmendLateRecording: a report fixed while the egress ran, then its
// egress_ended (and other late events, some twice): the amended report has
// the final recording, no egress_never_ended, and events_after_report
// counting distinct late events; nothing else changes.
func TestAmendLateRecording(t *testing.T) {
	s := egressCase{evs: []any{fxRoom("EV_rmStarted001", EventRoomStarted, 0),
		fxPart("EV_pj1", EventParticipantJoined, 1, "PA_a"),
		"01-egress_started.json", "02-egress_updated-active.json",
		fxRoom("EV_rmFinish001", EventRoomFinished, 60)}}.fold(t)
	report := s.Report()
	if !reflect.DeepEqual(report.Anomalies, []Anomaly{{Code: AnomalyEgressNeverEnded, Count: 1},
		{Code: AnomalyParticipantNeverLeft, Count: 1}}) {
		t.Fatalf("report anomalies %+v", report.Anomalies)
	}

	late := []*livekit.WebhookEvent{
		loadEgressFixture(t, "03-egress_updated-ending.json"),
		loadEgressFixture(t, "04-egress_ended-complete.json"),
		loadEgressFixture(t, "04-egress_ended-complete.json"), // a duplicate
		fxPart("EV_pl1", EventParticipantLeft, 61, "PA_a"),
	}
	for _, ev := range late {
		s, _ = Apply(s, ev)
	}
	got := Amend(report, s)
	want := report
	want.Recordings = []Recording{recComplete}
	want.Anomalies = []Anomaly{{Code: AnomalyEventsAfterReport, Count: 3}, {Code: AnomalyParticipantNeverLeft, Count: 1}}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("amended\n got: %s\nwant: %s", g, w)
	}
	// Amending again with the same state changes nothing.
	if again := Amend(got, s); !reflect.DeepEqual(again, got) {
		t.Fatal("Amend is not idempotent")
	}
}

// TestEgressStateStaysSmall: the stored state keeps what the report shows,
// not the EgressInfo (request, outputs, details).
func TestEgressStateStaysSmall(t *testing.T) {
	s := egressCase{evs: []any{"04-egress_ended-complete.json"}}.fold(t)
	b, _ := json.Marshal(s.Egress)
	for _, leak := range []string{"speaker", "end reason", "roomComposite", "fileOutputs"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("stored egress state holds %q: %s", leak, b)
		}
	}
	if len(b) > 400 {
		t.Errorf("stored egress state is %d bytes: %s", len(b), b)
	}
}
