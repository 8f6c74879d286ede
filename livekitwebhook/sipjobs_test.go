package livekitwebhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
	"google.golang.org/protobuf/proto"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

var updateConstructed = flag.Bool("update-constructed", false, "rewrite ../testdata/constructed from the builders")

// constructedDir holds event sequences built from livekit/protocol types as
// livekit-server and livekit-sip fill them (see its README).
const constructedDir = "../testdata/constructed"

// constructed is one fixture file: a scenario and its events, as LiveKit's
// notifier would send them (one request body each, in this order).
type constructed struct {
	Scenario string            `json:"scenario"`
	Events   []json.RawMessage `json:"events"`
}

// fxBase is the createdAt of the first event of every constructed fixture.
const fxBase = int64(1_796_000_000)

func fxRoom(sid, name string) *livekit.Room {
	return &livekit.Room{Sid: sid, Name: name, EmptyTimeout: 300, DepartureTimeout: 20,
		CreationTime: fxBase, CreationTimeMs: fxBase*1000 + 120, Version: &livekit.TimedVersion{UnixMicro: fxBase * 1e6}}
}

func fxPart(sid, identity string, kind livekit.ParticipantInfo_Kind, joinMs int64, state livekit.ParticipantInfo_State, attrs map[string]string) *livekit.ParticipantInfo {
	return &livekit.ParticipantInfo{Sid: sid, Identity: identity, Name: identity, Kind: kind, State: state,
		JoinedAt: joinMs / 1000, JoinedAtMs: joinMs, Attributes: attrs, Version: 1}
}

// fxOutAttrs are the attributes livekit-sip's outbound call carries: the
// ones CreateSIPParticipant sets (protocol rpc/sip.go: sip.callID,
// sip.trunkID, sip.phoneNumber, sip.hostname, sip.trunkPhoneNumber) and
// sip.callStatus as pkg/sip/outbound.go moves it; extra key/value pairs
// are added (lk.sip.answerTime).
func fxOutAttrs(status string, extra ...string) map[string]string {
	m := map[string]string{
		livekit.AttrSIPCallID:      "SCL_4mYtRkPqZ2aB",
		livekit.AttrSIPTrunkID:     "ST_9vLxQw3Hn8cD",
		livekit.AttrSIPPhoneNumber: "+15105550100",
		livekit.AttrSIPHostName:    "example.pstn.twilio.com",
		livekit.AttrSIPTrunkNumber: "+15105550199",
		livekit.AttrSIPCallStatus:  status,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func fxEvent(id, event string, at int64, room *livekit.Room) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{Id: id, Event: event, CreatedAt: at, Room: room}
}

// outboundCall is an agent that dials a phone number: the SIP participant
// joins "dialing" and publishes its track at once; leave says how it ended.
func outboundCall(name string, leave *livekit.WebhookEvent, finishAt int64) []*livekit.WebhookEvent {
	room := fxRoom("RM_"+name, name)
	agent := func(st livekit.ParticipantInfo_State) *livekit.ParticipantInfo {
		return fxPart("PA_agent_"+name, "agent-"+name, livekit.ParticipantInfo_AGENT, fxBase*1000+900, st, nil)
	}
	callee := fxPart("PA_sip_"+name, "sip-callee", livekit.ParticipantInfo_SIP, (fxBase+2)*1000+350,
		livekit.ParticipantInfo_JOINED, fxOutAttrs("dialing"))
	leave.Room = room
	agentLeft := agent(livekit.ParticipantInfo_DISCONNECTED)
	agentLeft.DisconnectReason = livekit.DisconnectReason_CLIENT_INITIATED
	trackEv := fxEvent("EV_"+name+"_tp", "track_published", fxBase+2, room)
	trackEv.Participant = proto.CloneOf(callee)
	trackEv.Track = &livekit.TrackInfo{Sid: "TR_" + name, Type: livekit.TrackType_AUDIO, Name: "sip-audio",
		Source: livekit.TrackSource_MICROPHONE, MimeType: "audio/opus"}
	return []*livekit.WebhookEvent{
		fxEvent("EV_"+name+"_rs", "room_started", fxBase, room),
		func() *livekit.WebhookEvent {
			ev := fxEvent("EV_"+name+"_aj", "participant_joined", fxBase+1, room)
			ev.Participant = agent(livekit.ParticipantInfo_ACTIVE)
			return ev
		}(),
		func() *livekit.WebhookEvent {
			ev := fxEvent("EV_"+name+"_pj", "participant_joined", fxBase+2, room)
			ev.Participant = callee
			return ev
		}(),
		trackEv,
		leave,
		func() *livekit.WebhookEvent {
			ev := fxEvent("EV_"+name+"_al", "participant_left", finishAt-1, room)
			ev.Participant = agentLeft
			return ev
		}(),
		func() *livekit.WebhookEvent {
			ev := fxEvent("EV_"+name+"_rf", "room_finished", finishAt, room)
			ev.RoomEndReason = livekit.RoomEndReason_ROOM_END_API_DELETE
			return ev
		}(),
	}
}

func sipLeave(name string, at int64, r livekit.DisconnectReason, attrs map[string]string) *livekit.WebhookEvent {
	ev := fxEvent("EV_"+name+"_pl", "participant_left", at, nil)
	ev.Participant = fxPart("PA_sip_"+name, "sip-callee", livekit.ParticipantInfo_SIP, (fxBase+2)*1000+350,
		livekit.ParticipantInfo_DISCONNECTED, attrs)
	ev.Participant.DisconnectReason = r
	return ev
}

// agentJobFailed is a room whose dispatched agent fails: the agent_job_*
// events carry the job, its room in job.room, and no room of their own.
func agentJobFailed() []*livekit.WebhookEvent {
	const name = "job-fail-1"
	room := fxRoom("RM_"+name, name)
	ns := func(ms int64) int64 { return (fxBase*1000 + ms) * int64(time.Millisecond) }
	job := func(st *livekit.JobState) *livekit.Job {
		return &livekit.Job{Id: "AJ_7QdRm2XkVb9s", DispatchId: "AD_3kPq8ZtYw1Lm", Type: livekit.JobType_JT_ROOM,
			Room: proto.CloneOf(room), AgentName: "voice-agent", State: st, CreatedAt: ns(150)}
	}
	jobEv := func(id, event string, at int64, st *livekit.JobState) *livekit.WebhookEvent {
		return &livekit.WebhookEvent{Id: id, Event: event, CreatedAt: at, Job: job(st)}
	}
	caller := func(st livekit.ParticipantInfo_State) *livekit.ParticipantInfo {
		return fxPart("PA_caller_"+name, "caller", livekit.ParticipantInfo_STANDARD, (fxBase+1)*1000+500, st, nil)
	}
	left := caller(livekit.ParticipantInfo_DISCONNECTED)
	left.DisconnectReason = livekit.DisconnectReason_CLIENT_INITIATED
	pj := fxEvent("EV_"+name+"_pj", "participant_joined", fxBase+1, room)
	pj.Participant = caller(livekit.ParticipantInfo_ACTIVE)
	pl := fxEvent("EV_"+name+"_pl", "participant_left", fxBase+20, room)
	pl.Participant = left
	rf := fxEvent("EV_"+name+"_rf", "room_finished", fxBase+40, room)
	rf.RoomEndReason = livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT
	return []*livekit.WebhookEvent{
		fxEvent("EV_"+name+"_rs", "room_started", fxBase, room),
		jobEv("EV_"+name+"_jp", "agent_job_pending", fxBase, &livekit.JobState{Status: livekit.JobStatus_JS_PENDING, UpdatedAt: ns(200)}),
		pj,
		jobEv("EV_"+name+"_js", "agent_job_started", fxBase+1, &livekit.JobState{Status: livekit.JobStatus_JS_RUNNING,
			StartedAt: ns(700), UpdatedAt: ns(700), WorkerId: "AW_5hTn2Qx8", AgentId: "A_voice", ParticipantIdentity: "agent-AJ_7QdRm2XkVb9s"}),
		jobEv("EV_"+name+"_je", "agent_job_ended", fxBase+4, &livekit.JobState{Status: livekit.JobStatus_JS_FAILED,
			Error: "entrypoint raised: OPENAI_API_KEY is not set", StartedAt: ns(700), EndedAt: ns(3_900), UpdatedAt: ns(3_900),
			WorkerId: "AW_5hTn2Qx8", AgentId: "A_voice", ParticipantIdentity: "agent-AJ_7QdRm2XkVb9s"}),
		pl,
		rf,
	}
}

// constructedFixtures are the fixture files and their builders.
func constructedFixtures() map[string]struct {
	scenario string
	events   []*livekit.WebhookEvent
} {
	type fx = struct {
		scenario string
		events   []*livekit.WebhookEvent
	}
	answer := strconv.FormatInt((fxBase+9)*1000+400, 10)
	return map[string]fx{
		"sip-outbound-answered.json": {
			scenario: "An agent dials +15105550100; the callee answers at +9.4 s (lk.sip.answerTime) and hangs up at +70 s (sip.callStatus hangup, CLIENT_INITIATED); the agent deletes the room.",
			events: outboundCall("sip-out-ok", sipLeave("sip-out-ok", fxBase+70, livekit.DisconnectReason_CLIENT_INITIATED,
				fxOutAttrs("hangup", livekit.AttrSIPAnswerTime, answer)), fxBase+72),
		},
		"sip-outbound-no-answer.json": {
			scenario: "An agent dials +15105550100; it rings (sip.callStatus ringing) and nobody answers: livekit-sip ends the call with USER_UNAVAILABLE after 31 s and sets no further call status; the agent deletes the room.",
			events: outboundCall("sip-out-na", sipLeave("sip-out-na", fxBase+33, livekit.DisconnectReason_USER_UNAVAILABLE,
				fxOutAttrs("ringing")), fxBase+35),
		},
		"agent-job-failed.json": {
			scenario: "A caller joins; the dispatched agent's job goes pending, running, then JS_FAILED with an error; the caller leaves and the room closes.",
			events:   agentJobFailed(),
		},
	}
}

// loadConstructed reads a fixture file, checks it is what its builder makes
// (or rewrites it with -update-constructed) and returns its request bodies.
func loadConstructed(t *testing.T, file string) [][]byte {
	t.Helper()
	fx, ok := constructedFixtures()[file]
	if !ok {
		t.Fatalf("no builder for %s", file)
	}
	path := filepath.Join(constructedDir, file)
	if *updateConstructed {
		out := constructed{Scenario: fx.scenario}
		for _, ev := range fx.events {
			b, err := protojson.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			out.Events = append(out.Events, b)
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c constructed
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(c.Events) != len(fx.events) {
		t.Fatalf("%s: %d events, the builder makes %d (go test -run TestConstructedFixtures -update-constructed)", file, len(c.Events), len(fx.events))
	}
	bodies := make([][]byte, len(c.Events))
	for i, raw := range c.Events {
		var ev livekit.WebhookEvent
		if err := protojson.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("%s event %d: %v", file, i, err)
		}
		if !proto.Equal(&ev, fx.events[i]) {
			t.Fatalf("%s event %d differs from its builder (go test -run TestConstructedFixtures -update-constructed)", file, i)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			t.Fatal(err)
		}
		bodies[i] = compact.Bytes()
	}
	return bodies
}

// postBodies signs and posts each body, as LiveKit's notifier would.
func postBodies(t *testing.T, url string, bodies [][]byte) {
	t.Helper()
	for i, b := range bodies {
		code, resp, _ := post(t, url, b, map[string]string{"Authorization": sign(t, testKey, testSecret, b, 5*time.Minute)})
		if code != http.StatusOK {
			t.Fatalf("event %d: %d %s", i, code, resp)
		}
	}
}

// endedSession polls the sessions API until the session is reported.
func endedSession(t *testing.T, tr *testReceiver, id string, events int) (map[string]any, Session) {
	t.Helper()
	var raw map[string]any
	eventually(t, 15*time.Second, "report of "+id, func() bool {
		raw = nil
		return getJSON(t, tr.base+"/voice/livekit/sessions/"+id, &raw) == 200 &&
			raw["disposition"] != nil && raw["events_applied"] == float64(events)
	})
	b, _ := json.Marshal(raw)
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return raw, s
}

func participantByKind(t *testing.T, raw map[string]any, kind string) map[string]any {
	t.Helper()
	for _, p := range raw["participants"].([]any) {
		if m := p.(map[string]any); m["kind"] == kind {
			return m
		}
	}
	t.Fatalf("no %s participant in %v", kind, raw["participants"])
	return nil
}

// TestConstructedFixturesThroughSessionsAPI sends the constructed SIP and
// agent job sequences through the real receiver and reads the sessions API:
// the JSON field names of issue 15 and the values they must hold.
func TestConstructedFixturesThroughSessionsAPI(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	for _, f := range []string{"sip-outbound-answered.json", "sip-outbound-no-answer.json", "agent-job-failed.json"} {
		postBodies(t, tr.url, loadConstructed(t, f))
	}

	t.Run("outbound answered", func(t *testing.T) {
		raw, s := endedSession(t, tr, "sip-out-ok", 7)
		sip := participantByKind(t, raw, "sip")["sip"].(map[string]any)
		want := map[string]any{
			"call_id": "SCL_4mYtRkPqZ2aB", "trunk_id": "ST_9vLxQw3Hn8cD", "rule_id": "",
			"phone_number": "+15105550100", "trunk_phone_number": "+15105550199",
			"direction": "outbound", "call_status": "hangup", "outcome": "answered",
			"answered_at": "2026-11-30T00:53:29.4Z", "talk_seconds": 60.6,
		}
		if !reflect.DeepEqual(sip, want) {
			t.Fatalf("sip = %v\nwant %v", sip, want)
		}
		// Seconds count talking (60.6), not ringing: the agent 70.1 + 60.6.
		if s.Disposition != DispositionCompleted || s.ParticipantSeconds != 130.7 ||
			s.ParticipantSecondsByKind["sip"] != 60.6 || s.EndReason != "ROOM_END_API_DELETE" {
			t.Fatalf("session %+v", s)
		}
		if _, ok := raw["agent_jobs"]; ok {
			t.Fatal("agent_jobs without jobs")
		}
	})

	t.Run("outbound no answer", func(t *testing.T) {
		raw, s := endedSession(t, tr, "sip-out-na", 7)
		p := participantByKind(t, raw, "sip")
		sip := p["sip"].(map[string]any)
		if sip["outcome"] != "no_answer" || sip["call_status"] != "ringing" || sip["talk_seconds"] != 0.0 || p["seconds"] != 0.0 {
			t.Fatalf("participant %v", p)
		}
		if _, ok := sip["answered_at"]; ok {
			t.Fatalf("answered_at on an unanswered call: %v", sip)
		}
		if s.Disposition != DispositionNoAnswer || raw["disposition"] != "no_answer" || s.ParticipantSecondsByKind["sip"] != 0 {
			t.Fatalf("session %+v", s)
		}
	})

	t.Run("agent job failed", func(t *testing.T) {
		raw, s := endedSession(t, tr, "job-fail-1", 7)
		jobs, _ := raw["agent_jobs"].([]any)
		if len(jobs) != 1 {
			t.Fatalf("agent_jobs %v", raw["agent_jobs"])
		}
		want := map[string]any{
			"job_id": "AJ_7QdRm2XkVb9s", "agent_name": "voice-agent", "status": "JS_FAILED",
			"started_at": "2026-11-30T00:53:20.7Z", "ended_at": "2026-11-30T00:53:23.9Z",
			"error": "entrypoint raised: OPENAI_API_KEY is not set",
		}
		if !reflect.DeepEqual(jobs[0], want) {
			t.Fatalf("job = %v\nwant %v", jobs[0], want)
		}
		if s.Disposition != DispositionCompleted || len(s.AgentJobs) != 1 || s.AgentJobs[0].Status != "JS_FAILED" {
			t.Fatalf("session %+v", s)
		}
		if p := participantByKind(t, raw, "standard"); p["sip"] != nil {
			t.Fatalf("standard participant with a sip object: %v", p)
		}
	})
}

// TestPublicTypesMirrorLifecycle: the public Participant, SIPCall and
// AgentJob carry exactly the fields (and JSON names) of the lifecycle
// views they are converted from.
func TestPublicTypesMirrorLifecycle(t *testing.T) {
	for _, pair := range [][2]any{
		{Participant{}, lifecycle.Participant{}},
		{SIPCall{}, lifecycle.SIP{}},
		{AgentJob{}, lifecycle.AgentJob{}},
	} {
		a, b := reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1])
		if a.NumField() != b.NumField() {
			t.Fatalf("%s has %d fields, %s %d", a, a.NumField(), b, b.NumField())
		}
		for i := range a.NumField() {
			fa, fb := a.Field(i), b.Field(i)
			if fa.Name != fb.Name || fa.Tag.Get("json") != fb.Tag.Get("json") {
				t.Errorf("%s.%s %q vs %s.%s %q", a, fa.Name, fa.Tag.Get("json"), b, fb.Name, fb.Tag.Get("json"))
			}
		}
	}
}

// TestAgentJobEventNames: the lifecycle handles the agent job events under
// the names livekit/protocol sends, and the metrics label them by name.
func TestAgentJobEventNames(t *testing.T) {
	for _, c := range [][2]string{
		{lifecycle.EventAgentJobPending, webhook.EventAgentJobPending},
		{lifecycle.EventAgentJobStarted, webhook.EventAgentJobStarted},
		{lifecycle.EventAgentJobEnded, webhook.EventAgentJobEnded},
	} {
		if c[0] != c[1] {
			t.Errorf("lifecycle %q, livekit/protocol %q", c[0], c[1])
		}
		if got := eventLabel(c[1]); got != c[1] {
			t.Errorf("eventLabel(%q) = %q", c[1], got)
		}
	}
}
