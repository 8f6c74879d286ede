package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// Metric names of `lkwebhook serve` (OpenTelemetry instruments exported by
// the otel Prometheus exporter: dots become underscores, counters get
// _total).
const (
	metricRequests   = "livekitwebhook_requests_total"
	metricRefusals   = "livekitwebhook_refusals_total"
	metricDuplicates = "livekitwebhook_duplicates_total"
	metricReports    = "livekitwebhook_reports_total"
)

// stepTimeout bounds the wait for one webhook or one session change.
const stepTimeout = 30 * time.Second

// e2eEnv is a livekit-server whose webhooks go both to `lkwebhook serve` and
// to a recorder in the test (livekit-server keeps one queue per URL, so the
// recorder sees exactly the events serve was sent).
type e2eEnv struct {
	serve *servetest.Serve
	lk    *lkserver.Server
	rec   *recorder
	rs    interface {
		CreateRoom(context.Context, *livekit.CreateRoomRequest) (*livekit.Room, error)
		DeleteRoom(context.Context, *livekit.DeleteRoomRequest) (*livekit.DeleteRoomResponse, error)
	}
}

func startEnv(t *testing.T, serveOpts servetest.Options, lkOpts lkserver.Options) *e2eEnv {
	t.Helper()
	lkserver.Binary(t) // skip (or fail) before building anything
	sv := servetest.Start(t, serveOpts)
	rec := &recorder{t: t, start: time.Now(), provider: auth.NewSimpleKeyProvider(sv.APIKey, sv.APISecret)}
	hook := httptest.NewServer(rec)
	t.Cleanup(hook.Close)
	lkOpts.APIKey, lkOpts.APISecret = sv.APIKey, sv.APISecret
	lkOpts.WebhookURLs = []string{sv.WebhookURL(), hook.URL + webhookPath}
	srv := lkserver.Start(t, lkOpts)
	return &e2eEnv{serve: sv, lk: srv, rec: rec, rs: srv.RoomService()}
}

// sent returns the distinct events (by id) the server sent for a room sid,
// in arrival order, and fails the test if the recorder saw a bad request or
// the same id twice (LiveKit retries only on errors; the recorder answers
// 200 at once).
func (e *e2eEnv) sent(t *testing.T, roomSID string) []*livekit.WebhookEvent {
	t.Helper()
	seen := map[string]bool{}
	var out []*livekit.WebhookEvent
	for _, c := range e.rec.snapshot() {
		if c.DecodeErr != nil || c.VerifyErr != nil {
			t.Errorf("recorder: request does not decode or verify: %v %v", c.DecodeErr, c.VerifyErr)
			continue
		}
		if c.Event.GetRoom().GetSid() != roomSID {
			continue
		}
		if seen[c.Event.GetId()] {
			t.Errorf("recorder: event %s (%s) delivered twice", c.Event.GetId(), c.Event.GetEvent())
			continue
		}
		seen[c.Event.GetId()] = true
		out = append(out, c.Event)
	}
	return out
}

// allSent is the number of distinct event ids the recorder saw.
func (e *e2eEnv) allSent() int {
	ids := map[string]bool{}
	for _, c := range e.rec.snapshot() {
		if c.Event != nil {
			ids[c.Event.GetId()] = true
		}
	}
	return len(ids)
}

func eventNames(evs []*livekit.WebhookEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetEvent()
		if p := ev.GetParticipant(); p != nil {
			out[i] += "(" + p.GetIdentity() + ")"
		}
	}
	return out
}

func countEvents(evs []*livekit.WebhookEvent) map[string]int {
	m := map[string]int{}
	for _, ev := range evs {
		m[ev.GetEvent()]++
	}
	return m
}

// checkIntakeMetrics asserts that serve answered every event the server sent
// as "accepted", once: accepted == sent per event name, no duplicate, no
// refusal, no other outcome.
func checkIntakeMetrics(t *testing.T, sv *servetest.Serve, sent map[string]int) {
	t.Helper()
	m := sv.Metrics(t)
	total := 0
	for name, n := range sent {
		total += n
		got := m.Sum(metricRequests, map[string]string{"event": name, "outcome": "accepted"})
		if int(got) != n {
			t.Errorf("%s{event=%q,outcome=\"accepted\"} = %v, want %d (events sent)", metricRequests, name, got, n)
		}
	}
	if got := m.Sum(metricRequests, map[string]string{"outcome": "accepted"}); int(got) != total {
		t.Errorf("%s{outcome=\"accepted\"} = %v, want %d", metricRequests, got, total)
	}
	if got := m.Sum(metricRequests, nil); int(got) != total {
		var other []string
		for _, x := range m[metricRequests].GetMetric() {
			l := map[string]string{}
			for _, p := range x.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["outcome"] != "accepted" {
				other = append(other, l["event"]+"/"+l["outcome"])
			}
		}
		t.Errorf("%s (all outcomes) = %v, want %d; other outcomes: %v", metricRequests, got, total, other)
	}
	for _, name := range []string{metricRefusals, metricDuplicates} {
		if got := m.Sum(name, nil); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	if m[metricRequests] == nil {
		t.Errorf("no %s in /metrics", metricRequests)
	}
}

func countIn(list []servetest.Session, roomSID string) int {
	n := 0
	for _, s := range list {
		if s.RoomSID == roomSID {
			n++
		}
	}
	return n
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestSmokeCreateDeleteRoom: a room created and deleted through RoomService
// (no participants) makes livekit-server send room_started and room_finished.
// Both must be accepted by serve exactly once (200, stored, no duplicate, no
// refusal), which shows in the sessions API (the session appears, then ends
// with events_applied = 2) and in serve's Prometheus counters.
func TestSmokeCreateDeleteRoom(t *testing.T) {
	e := startEnv(t, servetest.Options{Args: []string{"--finalize-grace", "1s"}}, lkserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const room = "smoke-room"
	created, err := e.rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 60})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	e.rec.wait(t, stepTimeout, "room_started", isEvent(webhook.EventRoomStarted, room, ""))
	active := e.serve.WaitActive(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))
	if active.SessionID != room || active.RoomName != room || active.EndedAt != nil || active.Disposition != "" {
		t.Errorf("active session = %s\nwant session_id=room_name=%q, no ended_at, no disposition", dump(active), room)
	}

	if _, err := e.rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	e.rec.wait(t, stepTimeout, "room_finished", isEvent(webhook.EventRoomFinished, room, ""))
	ended := e.serve.WaitEnded(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))

	sent := e.sent(t, created.Sid)
	if got := countEvents(sent); got[webhook.EventRoomStarted] != 1 || got[webhook.EventRoomFinished] != 1 || len(sent) != 2 {
		t.Fatalf("livekit-server sent %v, want exactly room_started and room_finished", eventNames(sent))
	}
	if ended.EventsApplied != len(sent) {
		t.Errorf("events_applied = %d, want %d (distinct events sent)", ended.EventsApplied, len(sent))
	}
	if ended.Disposition != "no_show" || ended.EndedAt == nil || len(ended.Participants) != 0 || ended.ParticipantSeconds != 0 {
		t.Errorf("ended session = %s\nwant disposition no_show, ended_at set, no participants", dump(ended))
	}

	act, end := e.serve.Sessions(t)
	if n := countIn(act, created.Sid); n != 0 {
		t.Errorf("room still listed %d time(s) as active after its report", n)
	}
	if n := countIn(end, created.Sid); n != 1 {
		t.Errorf("room listed %d times as ended, want 1", n)
	}
	if s, ok := e.serve.Session(t, room); !ok || s.RoomSID != created.Sid || s.Disposition != "no_show" {
		t.Errorf("GET sessions/%s = %v %s", room, ok, dump(s))
	}

	checkIntakeMetrics(t, e.serve, countEvents(sent))
	if got := e.serve.Metrics(t).Sum(metricReports, map[string]string{"disposition": "no_show"}); got != 1 {
		t.Errorf("%s{disposition=\"no_show\"} = %v, want 1", metricReports, got)
	}
}

// TestRealCallReport drives a real call: an agent (kind AGENT) and a caller
// (STANDARD, publishing Opus audio) join over WebRTC, the caller hangs up,
// the room is deleted through the API. The final report of serve must match
// what happened: disposition completed, both participants with their kinds,
// the caller's seconds close to the wall-clock time it was connected, the
// agent closed at room end, end_reason "" (v1.13.5 sends none),
// participant_seconds the sum, and events_applied the number of distinct
// events livekit-server sent for the room. A second room nobody joins closes
// on its 3 s empty timeout and is reported as no_show.
func TestRealCallReport(t *testing.T) {
	suffix := randomHex(t, 4)
	var (
		callRoom    = "call-" + suffix
		callSession = "sess-" + suffix
		idleRoom    = "idle-" + suffix
		idleSession = "sess-idle-" + suffix
	)
	e := startEnv(t, servetest.Options{
		Args: []string{"--finalize-grace", "1s"},
		Env:  []string{"BELUGA_LIVEKIT_WEBHOOK_CORRELATION=metadata:session_id"},
	}, lkserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The idle room first, so that its empty timeout runs during the call.
	idleCreatedAt := time.Now()
	idle, err := e.rs.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name: idleRoom, Metadata: `{"session_id":"` + idleSession + `"}`, EmptyTimeout: 3,
	})
	if err != nil {
		t.Fatalf("CreateRoom %s: %v", idleRoom, err)
	}

	createdAt := time.Now()
	call, err := e.rs.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name: callRoom, Metadata: `{"session_id":"` + callSession + `"}`, EmptyTimeout: 60, DepartureTimeout: 20,
	})
	if err != nil {
		t.Fatalf("CreateRoom %s: %v", callRoom, err)
	}
	e.rec.wait(t, stepTimeout, "room_started "+callRoom, isEvent(webhook.EventRoomStarted, callRoom, ""))

	a := lkserver.Join(t, e.lk, callRoom, "agent-A", livekit.ParticipantInfo_AGENT, false)
	aJoined := time.Now()
	bStart := time.Now()
	b := lkserver.Join(t, e.lk, callRoom, "caller-B", livekit.ParticipantInfo_STANDARD, true)
	bJoined := time.Now()
	t.Logf("agent-A joined at +%.2fs; caller-B Join took %.2fs (connect and publish)",
		aJoined.Sub(createdAt).Seconds(), bJoined.Sub(bStart).Seconds())
	e.rec.wait(t, stepTimeout, "participant_joined caller-B", isEvent(webhook.EventParticipantJoined, callRoom, "caller-B"))
	e.rec.wait(t, stepTimeout, "track_published caller-B", isEvent(webhook.EventTrackPublished, callRoom, "caller-B"))

	// While the call runs the session is active, with both participants.
	mid := e.serve.WaitActive(t, stepTimeout, callSession, func(s servetest.Session) bool {
		return s.SessionID == callSession && len(s.Participants) == 2
	})
	if mid.Unmapped || mid.RoomSID != call.Sid || mid.EndedAt != nil {
		t.Errorf("active session = %s", dump(mid))
	}

	time.Sleep(2500 * time.Millisecond) // talk
	bLeft := time.Now()
	b.Disconnect()
	bGone := time.Now()
	connected := bLeft.Sub(bJoined).Seconds()
	t.Logf("caller-B connected %.2fs (join returned -> Disconnect called); Disconnect took %.2fs",
		connected, bGone.Sub(bLeft).Seconds())
	e.rec.wait(t, stepTimeout, "participant_left caller-B", isEvent(webhook.EventParticipantLeft, callRoom, "caller-B"))

	deletedAt := time.Now()
	if _, err := e.rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: callRoom}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	a.Disconnect() // already removed by the server
	e.rec.wait(t, stepTimeout, "room_finished "+callRoom, isEvent(webhook.EventRoomFinished, callRoom, ""))
	rep := e.serve.WaitEnded(t, stepTimeout, callSession, servetest.BySessionID(callSession))
	t.Logf("report of %s:\n%s", callRoom, dump(rep))

	sent := e.sent(t, call.Sid)
	t.Logf("livekit-server sent for %s: %v", callRoom, eventNames(sent))
	counts := countEvents(sent)
	for name, min := range map[string]int{
		webhook.EventRoomStarted: 1, webhook.EventParticipantJoined: 2, webhook.EventTrackPublished: 1,
		webhook.EventParticipantLeft: 2, webhook.EventRoomFinished: 1,
	} {
		if counts[name] < min {
			t.Errorf("livekit-server sent %d %s, want at least %d (scenario did not run as planned)", counts[name], name, min)
		}
	}
	var finished *livekit.WebhookEvent
	for _, ev := range sent {
		if ev.GetEvent() == webhook.EventRoomFinished {
			finished = ev
		}
	}

	// The report.
	if rep.SessionID != callSession || rep.Unmapped || rep.RoomName != callRoom || rep.RoomSID != call.Sid {
		t.Errorf("identity: session_id=%q unmapped=%v room=%q/%q, want %q false %q/%q",
			rep.SessionID, rep.Unmapped, rep.RoomName, rep.RoomSID, callSession, callRoom, call.Sid)
	}
	if rep.Disposition != "completed" {
		t.Errorf("disposition = %q, want completed", rep.Disposition)
	}
	wantEndReason := ""
	if r := finished.GetRoomEndReason(); r != livekit.RoomEndReason_ROOM_END_UNKNOWN {
		wantEndReason = r.String() // newer servers
	}
	if rep.EndReason != wantEndReason {
		t.Errorf("end_reason = %q, want %q (room_finished carried %v)", rep.EndReason, wantEndReason, finished.GetRoomEndReason())
	}
	if rep.EventsApplied != len(sent) {
		t.Errorf("events_applied = %d, want %d (distinct events livekit-server sent for the room)", rep.EventsApplied, len(sent))
	}
	if rep.EndedAt == nil {
		t.Fatalf("report has no ended_at")
	}
	// Times come from the events: creationTimeMs (ms) and createdAt (s).
	if d := rep.StartedAt.Sub(createdAt).Seconds(); d < -1.5 || d > 1.5 {
		t.Errorf("started_at %v is %.2fs from CreateRoom", rep.StartedAt, d)
	}
	if d := rep.EndedAt.Sub(deletedAt).Seconds(); d < -1.5 || d > 1.5 {
		t.Errorf("ended_at %v is %.2fs from DeleteRoom", rep.EndedAt, d)
	}
	if want := rep.EndedAt.Sub(rep.StartedAt).Seconds(); !near(rep.DurationSeconds, want, 0.002) {
		t.Errorf("duration_seconds = %v, want ended_at - started_at = %v", rep.DurationSeconds, want)
	}

	if len(rep.Participants) != 2 {
		t.Fatalf("participants = %s, want agent-A and caller-B", dump(rep.Participants))
	}
	pa, pb := rep.Participant("agent-A"), rep.Participant("caller-B")
	if pa == nil || pb == nil {
		t.Fatalf("participants = %s, want agent-A and caller-B", dump(rep.Participants))
	}
	if pa.Kind != "agent" || pb.Kind != "standard" {
		t.Errorf("kinds: agent-A %q, caller-B %q; want agent, standard", pa.Kind, pb.Kind)
	}
	if pb.State != "left" || pb.LeftAt == nil || pb.DisconnectReason != "CLIENT_INITIATED" {
		t.Errorf("caller-B = %s, want state left, left_at, CLIENT_INITIATED", dump(pb))
	}
	if !near(pb.Seconds, connected, 1.5) {
		t.Errorf("caller-B seconds = %.3f, observed connected %.3fs (tolerance 1.5s)", pb.Seconds, connected)
	}
	if pa.State != "left" || pa.LeftAt == nil {
		t.Errorf("agent-A = %s, want left at room end", dump(pa))
	} else {
		if d := rep.EndedAt.Sub(*pa.LeftAt); d < -time.Second || d > time.Second {
			t.Errorf("agent-A left_at %v, room ended_at %v: want agent-A closed at room end", pa.LeftAt, rep.EndedAt)
		}
		if pa.DisconnectReason != "ROOM_DELETED" {
			t.Errorf("agent-A disconnect_reason = %q, want ROOM_DELETED", pa.DisconnectReason)
		}
		if want := deletedAt.Sub(aJoined).Seconds(); !near(pa.Seconds, want, 1.5) {
			t.Errorf("agent-A seconds = %.3f, observed %.3fs (tolerance 1.5s)", pa.Seconds, want)
		}
	}
	if want := pa.Seconds + pb.Seconds; !near(rep.ParticipantSeconds, want, 0.002) {
		t.Errorf("participant_seconds = %v, want the sum %v", rep.ParticipantSeconds, want)
	}
	if k := rep.ParticipantSecondsByKind; !near(k["agent"], pa.Seconds, 0.002) || !near(k["standard"], pb.Seconds, 0.002) || len(k) != 2 {
		t.Errorf("participant_seconds_by_kind = %v, want agent %v, standard %v", k, pa.Seconds, pb.Seconds)
	}
	if !sort.SliceIsSorted(rep.Participants, func(i, j int) bool {
		return rep.Participants[i].JoinedAt.Before(rep.Participants[j].JoinedAt)
	}) {
		t.Errorf("participants not sorted by joined_at: %s", dump(rep.Participants))
	}

	// The same report by id, and its wire format.
	if byID, ok := e.serve.Session(t, callSession); !ok || dump(byID) != dump(rep) {
		t.Errorf("GET sessions/%s = %v\n%s\nwant the ended report\n%s", callSession, ok, dump(byID), dump(rep))
	}
	raw := e.serve.SessionJSON(t, callSession)
	for _, k := range []string{"session_id", "room_name", "room_sid", "started_at", "ended_at", "duration_seconds",
		"participant_seconds", "participant_seconds_by_kind", "end_reason", "disposition", "participants", "events_applied"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report JSON has no %q: %v", k, raw)
		}
	}

	// The idle room: closed by the server on its empty timeout.
	irep := e.serve.WaitEnded(t, stepTimeout, idleSession, servetest.BySessionID(idleSession))
	fin := e.rec.find(isEvent(webhook.EventRoomFinished, idleRoom, ""))
	if fin != nil {
		t.Logf("room_finished of %s came %.2fs after CreateRoom (empty_timeout 3 s)", idleRoom, fin.Arrived.Sub(idleCreatedAt).Seconds())
	}
	isent := e.sent(t, idle.Sid)
	if irep.Disposition != "no_show" || len(irep.Participants) != 0 || irep.ParticipantSeconds != 0 ||
		irep.EndReason != "" || irep.RoomSID != idle.Sid || irep.EventsApplied != len(isent) || len(isent) != 2 {
		t.Errorf("idle report = %s\nwant no_show, no participants, events_applied = %d (sent %v)",
			dump(irep), len(isent), eventNames(isent))
	}

	// Issue 15 on a real server: the sessions carry the key that signed
	// them (project: the key, no projects configured); a call without SIP,
	// egress or agent dispatch has no sip object, recordings, agent jobs
	// or anomalies (both participants left), and nothing in the report
	// metrics.
	for _, s := range []servetest.Session{rep, irep} {
		if s.APIKey != e.serve.APIKey || s.Project != e.serve.APIKey {
			t.Errorf("%s: api_key %q project %q, want %q", s.RoomName, s.APIKey, s.Project, e.serve.APIKey)
		}
		if len(s.Recordings) != 0 || len(s.AgentJobs) != 0 || len(s.Anomalies) != 0 {
			t.Errorf("%s: recordings/agent_jobs/anomalies on a plain call: %s", s.RoomName, dump(s))
		}
		for _, p := range s.Participants {
			if p.Sip != nil {
				t.Errorf("%s: %s has a sip object %+v", s.RoomName, p.Identity, p.Sip)
			}
		}
	}

	// Intake: every event of both rooms accepted once.
	all := countEvents(append(append([]*livekit.WebhookEvent(nil), sent...), isent...))
	if n := e.allSent(); n != len(sent)+len(isent) {
		t.Errorf("recorder saw %d distinct events, %d of them for the two rooms", n, len(sent)+len(isent))
	}
	checkIntakeMetrics(t, e.serve, all)
	m := e.serve.Metrics(t)
	for disp, want := range map[string]float64{"completed": 1, "no_show": 1} {
		if got := m.Sum(metricReports, map[string]string{"disposition": disp}); got != want {
			t.Errorf("%s{disposition=%q} = %v, want %v", metricReports, disp, got, want)
		}
	}
	for _, name := range []string{"livekitwebhook_sip_calls_total", "livekitwebhook_recordings_total",
		"livekitwebhook_agent_jobs_total", "livekitwebhook_report_anomalies_total"} {
		if got := m.Sum(name, nil); got != 0 {
			t.Errorf("%s = %v, want 0 (no SIP, egress, agent job or anomaly)", name, got)
		}
	}
	if log := e.serve.Log(); strings.Contains(log, `"level":"ERROR"`) {
		t.Errorf("serve logged errors:\n%s", e.serve.LogTail(40))
	}
}

// TestServeCrashDuringCall: serve is killed (SIGKILL) while a call is in
// progress and restarted a moment later on the same data directory.
// livekit-server retries the webhooks it could not deliver (1, 2, 4, 8 s),
// so nothing is lost: the report counts every event the server sent, once,
// and both participants.
func TestServeCrashDuringCall(t *testing.T) {
	e := startEnv(t, servetest.Options{Args: []string{"--finalize-grace", "1s"}}, lkserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const room = "crash-call"
	created, err := e.rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 60, DepartureTimeout: 20})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	a := lkserver.Join(t, e.lk, room, "agent-A", livekit.ParticipantInfo_AGENT, false)
	e.serve.WaitActive(t, stepTimeout, room, func(s servetest.Session) bool {
		return s.RoomSID == created.Sid && len(s.Participants) == 1
	})

	e.serve.Kill()
	killedAt := time.Now()
	b := lkserver.Join(t, e.lk, room, "caller-B", livekit.ParticipantInfo_STANDARD, true)
	e.rec.wait(t, stepTimeout, "track_published caller-B", isEvent(webhook.EventTrackPublished, room, "caller-B"))
	// Down for about a second: livekit-server's first attempts fail.
	if d := time.Second - time.Since(killedAt); d > 0 {
		time.Sleep(d)
	}
	e.serve.Restart()
	t.Logf("serve was down %.2fs", time.Since(killedAt).Seconds())

	time.Sleep(time.Second)
	b.Disconnect()
	e.rec.wait(t, stepTimeout, "participant_left caller-B", isEvent(webhook.EventParticipantLeft, room, "caller-B"))
	if _, err := e.rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	a.Disconnect()
	e.rec.wait(t, stepTimeout, "room_finished", isEvent(webhook.EventRoomFinished, room, ""))
	rep := e.serve.WaitEnded(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))

	sent := e.sent(t, created.Sid)
	t.Logf("livekit-server sent: %v", eventNames(sent))
	if rep.EventsApplied != len(sent) {
		t.Errorf("events_applied = %d, want %d (distinct events sent): %s", rep.EventsApplied, len(sent), dump(rep))
	}
	// The premise: some webhook to serve was in flight across the outage
	// (livekit-server logs each delivery with its total send duration,
	// retries included).
	var retried []string
	for ev, d := range sendDurations(t, e.lk, e.serve.WebhookURL()) {
		if d >= 500*time.Millisecond {
			retried = append(retried, fmt.Sprintf("%s %v", ev, d.Round(time.Millisecond)))
		}
	}
	if len(retried) == 0 {
		t.Errorf("no webhook to serve took 500ms or more to deliver: the outage was not seen by livekit-server")
	}
	t.Logf("delivered to serve across the outage: %v", retried)
	pa, pb := rep.Participant("agent-A"), rep.Participant("caller-B")
	if rep.Disposition != "completed" || len(rep.Participants) != 2 || pa == nil || pb == nil ||
		pa.Kind != "agent" || pb.Kind != "standard" || pb.DisconnectReason != "CLIENT_INITIATED" {
		t.Errorf("report = %s\nwant completed with agent-A (agent) and caller-B (standard, CLIENT_INITIATED)", dump(rep))
	}
	_, ended := e.serve.Sessions(t)
	if n := countIn(ended, created.Sid); n != 1 {
		t.Errorf("room listed %d times as ended, want 1", n)
	}
	// The counters restarted with the process; the second run refused nothing.
	if got := e.serve.Metrics(t).Sum(metricRefusals, nil); got != 0 {
		t.Errorf("%s = %v after restart, want 0", metricRefusals, got)
	}
}

// sendDurations reads livekit-server's "sent webhook" log lines for url and
// returns, per event ("name/id"), the logged sendDuration (all attempts).
func sendDurations(t *testing.T, lk *lkserver.Server, url string) map[string]time.Duration {
	t.Helper()
	data, err := os.ReadFile(lk.LogPath)
	if err != nil {
		t.Fatalf("livekit-server log: %v", err)
	}
	out := map[string]time.Duration{}
	for _, line := range strings.Split(string(data), "\n") {
		i := strings.IndexByte(line, '{')
		if !strings.Contains(line, "sent webhook") || i < 0 {
			continue
		}
		var f struct {
			Event        string `json:"event"`
			ID           string `json:"id"`
			URL          string `json:"url"`
			SendDuration string `json:"sendDuration"`
		}
		if json.Unmarshal([]byte(line[i:]), &f) != nil || f.URL != url {
			continue
		}
		if d, err := time.ParseDuration(f.SendDuration); err == nil {
			out[f.Event+"/"+f.ID] = d
		}
	}
	return out
}
