package livekitwebhook

import (
	"html"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/console"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// phoneCall is an outbound phone call room as LiveKit sends it: an agent
// joins, dials a number that rings out unanswered (USER_UNAVAILABLE),
// dials a second number that answers (lk.sip.answerTime) and hangs up;
// the room is recorded to a file (room composite egress, completed); a
// second agent dispatched for a summary fails (JS_FAILED); the agent never
// leaves before room_finished (an anomaly). Attributes as livekit-sip sets
// them (see testdata/constructed/README.md).
type phoneCall struct {
	name, sid string
	t0        time.Time
}

const (
	pcNoAnswer = "+15105550100"
	pcAnswered = "+15105550142"
	pcTrunk    = "+15105550199"
	pcEgress   = "EG_callback4711"
	pcJob      = "AJ_summary4711"
	pcJobError = "entrypoint raised: OPENAI_API_KEY is not set"
	pcFile     = "recordings/callback-4711.ogg"
	pcLocation = "https://bucket.example/recordings/callback-4711.ogg"
)

func (c phoneCall) at(d time.Duration) time.Time { return c.t0.Add(d) }

func (c phoneCall) room() *livekit.Room {
	return &livekit.Room{Sid: c.sid, Name: c.name, EmptyTimeout: 300, DepartureTimeout: 20,
		CreationTime: c.t0.Unix(), CreationTimeMs: c.t0.UnixMilli()}
}

func (c phoneCall) event(id, event string, at time.Duration) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{Id: "EV_" + c.name + "_" + id, Event: event, CreatedAt: c.at(at).Unix(), Room: c.room()}
}

// sipAttrs are an outbound call's attributes (protocol rpc/sip.go) with
// sip.callStatus and extra pairs.
func sipAttrs(callID, number, status string, extra ...string) map[string]string {
	m := map[string]string{
		livekit.AttrSIPCallID: callID, livekit.AttrSIPTrunkID: "ST_9vLxQw3Hn8cD",
		livekit.AttrSIPPhoneNumber: number, livekit.AttrSIPTrunkNumber: pcTrunk,
		livekit.AttrSIPHostName: "example.pstn.twilio.com", livekit.AttrSIPCallStatus: status,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// dial is a SIP participant's join (dialing) at join and its leave at left
// with reason and attrs.
func (c phoneCall) dial(tag, identity, callID, number string, join, left time.Duration, reason livekit.DisconnectReason, leaveAttrs map[string]string) []*livekit.WebhookEvent {
	sid := "PA_" + tag + "_" + c.name
	joinedAt := c.at(join)
	p := func(st livekit.ParticipantInfo_State, attrs map[string]string) *livekit.ParticipantInfo {
		return &livekit.ParticipantInfo{Sid: sid, Identity: identity, Name: identity, Kind: livekit.ParticipantInfo_SIP,
			State: st, JoinedAt: joinedAt.Unix(), JoinedAtMs: joinedAt.UnixMilli(), Attributes: attrs, Version: 1}
	}
	j := c.event(tag+"_pj", "participant_joined", join)
	j.Participant = p(livekit.ParticipantInfo_JOINED, sipAttrs(callID, number, "dialing"))
	l := c.event(tag+"_pl", "participant_left", left)
	l.Participant = p(livekit.ParticipantInfo_DISCONNECTED, leaveAttrs)
	l.Participant.DisconnectReason = reason
	return []*livekit.WebhookEvent{j, l}
}

func (c phoneCall) egress(id, event string, status livekit.EgressStatus, at time.Duration) *livekit.WebhookEvent {
	ns := func(d time.Duration) int64 { return c.at(d).UnixNano() }
	info := &livekit.EgressInfo{EgressId: pcEgress, RoomId: c.sid, RoomName: c.name, Status: status,
		StartedAt: ns(2 * time.Second), UpdatedAt: ns(at),
		Request: &livekit.EgressInfo_RoomComposite{RoomComposite: &livekit.RoomCompositeEgressRequest{RoomName: c.name, AudioOnly: true}}}
	if status == livekit.EgressStatus_EGRESS_COMPLETE {
		info.EndedAt = ns(at)
		info.FileResults = []*livekit.FileInfo{{Filename: pcFile, Location: pcLocation, Size: 1_843_200,
			StartedAt: ns(2 * time.Second), EndedAt: ns(at), Duration: int64(at - 2*time.Second)}}
	}
	ev := livekitwebhooktest.EgressEvent(event, info)
	ev.Id, ev.CreatedAt = "EV_"+c.name+"_"+id, c.at(at).Unix()
	return ev
}

func (c phoneCall) job(id, event string, status livekit.JobStatus, at time.Duration) *livekit.WebhookEvent {
	ns := func(d time.Duration) int64 { return c.at(d).UnixNano() }
	st := &livekit.JobState{Status: status, UpdatedAt: ns(at)}
	if status != livekit.JobStatus_JS_PENDING {
		st.StartedAt = ns(1500 * time.Millisecond)
	}
	if status == livekit.JobStatus_JS_FAILED {
		st.EndedAt, st.Error = ns(at), pcJobError
	}
	return &livekit.WebhookEvent{Id: "EV_" + c.name + "_" + id, Event: event, CreatedAt: c.at(at).Unix(),
		Job: &livekit.Job{Id: pcJob, Type: livekit.JobType_JT_ROOM, Room: c.room(), AgentName: "call-summary", State: st}}
}

// events: the whole room, in the order the notifier sends it.
func (c phoneCall) events() []*livekit.WebhookEvent {
	agent := c.event("aj", "participant_joined", time.Second)
	agent.Participant = &livekit.ParticipantInfo{Sid: "PA_agent_" + c.name, Identity: "agent-ava", Name: "agent-ava",
		Kind: livekit.ParticipantInfo_AGENT, State: livekit.ParticipantInfo_ACTIVE,
		JoinedAt: c.at(time.Second).Unix(), JoinedAtMs: c.at(time.Second).UnixMilli(), Version: 1}
	answer := strconv.FormatInt(c.at(40*time.Second+400*time.Millisecond).UnixMilli(), 10)
	noAnswer := c.dial("na", "sip-"+pcNoAnswer, "SCL_noanswer4711", pcNoAnswer, 2*time.Second, 33*time.Second,
		livekit.DisconnectReason_USER_UNAVAILABLE, sipAttrs("SCL_noanswer4711", pcNoAnswer, "ringing"))
	answered := c.dial("ok", "sip-"+pcAnswered, "SCL_answered4711", pcAnswered, 34*time.Second, 104*time.Second,
		livekit.DisconnectReason_CLIENT_INITIATED, sipAttrs("SCL_answered4711", pcAnswered, "hangup", livekit.AttrSIPAnswerTime, answer))
	finished := c.event("rf", "room_finished", 110*time.Second)
	finished.RoomEndReason = livekit.RoomEndReason_ROOM_END_API_DELETE
	evs := []*livekit.WebhookEvent{c.event("rs", "room_started", 0), c.job("jp", "agent_job_pending", livekit.JobStatus_JS_PENDING, time.Second), agent,
		c.egress("es", "egress_started", livekit.EgressStatus_EGRESS_STARTING, 2*time.Second)}
	evs = append(evs, noAnswer...)
	evs = append(evs, c.job("je", "agent_job_ended", livekit.JobStatus_JS_FAILED, 5*time.Second))
	evs = append(evs, answered...)
	return append(evs, c.egress("ee", "egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, 106*time.Second), finished)
}

// TestConsoleShowsPhoneCall sends a phone call room (two SIP calls, one
// answered, a recording, a failed agent job, an anomaly) through the real
// receiver and checks that its call page shows what the sessions API
// reports: each call's outcome, direction, number, answer time and talk
// time; the recording's status and file; the job's status and error; the
// anomaly; the project and signing key. The calls list shows the
// disposition of an unanswered call's room, and filters by project when
// several projects post.
func TestConsoleShowsPhoneCall(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keys = globexKey + ": " + globexSecret
	cfg.Projects = "devkey: acme"
	tr := startReceiver(t, cfg)
	c := phoneCall{name: "callback-4711", sid: "RM_callback4711", t0: time.Now().Add(-10 * time.Minute).Truncate(time.Second)}
	evs := c.events()
	mustPost(t, tr.url, evs...)
	// Another project's room whose only call was not answered.
	other := phoneCall{name: "outreach-88", sid: "RM_outreach88", t0: c.t0}
	ring := other.dial("na", "sip-"+pcNoAnswer, "SCL_ring88", pcNoAnswer, 2*time.Second, 33*time.Second,
		livekit.DisconnectReason_USER_UNAVAILABLE, sipAttrs("SCL_ring88", pcNoAnswer, "ringing"))
	for _, ev := range append(append([]*livekit.WebhookEvent{other.event("rs", "room_started", 0)}, ring...), other.event("rf", "room_finished", 35*time.Second)) {
		postAs(t, tr.url, globexKey, globexSecret, ev)
	}

	raw, s := endedSession(t, tr, c.name, len(evs))
	if s.Disposition != DispositionCompleted || s.Project != "acme" || s.APIKey != testKey || len(s.Recordings) != 1 || len(s.AgentJobs) != 1 || len(s.Anomalies) != 1 {
		t.Fatalf("session %s", mustJSON(t, raw))
	}
	_, rs := endedSession(t, tr, other.name+"?project="+globexKey, 4)
	if rs.Disposition != DispositionNoAnswer {
		t.Fatalf("the unanswered room: %+v", rs)
	}

	code, page, _ := consoleGet(t, tr, "/call?sid="+c.sid, nil)
	if code != http.StatusOK {
		t.Fatalf("call page: %d", code)
	}
	text := pageText(page)
	byNumber := map[string]*SIPCall{}
	for _, p := range s.Participants {
		if p.Sip != nil {
			byNumber[p.Sip.PhoneNumber] = p.Sip
		}
	}
	ok, na := byNumber[pcAnswered], byNumber[pcNoAnswer]
	if ok == nil || na == nil || ok.AnsweredAt == nil || ok.TalkSeconds != 63.6 || na.Outcome != SIPOutcomeNoAnswer {
		t.Fatalf("sip calls in the report: %s", mustJSON(t, raw["participants"]))
	}
	rec, job := s.Recordings[0], s.AgentJobs[0]
	for _, want := range []string{
		// The SIP calls: outcome, direction, number, answer and talk time.
		// (number, outcome, direction, call status, joined, answered, talk
		// time, left, disconnect reason, trunk)
		pcAnswered + " sip-" + pcAnswered + " · SCL_answered4711 answered outbound hangup " + clock(c.at(34*time.Second)) + " " +
			clock(*ok.AnsweredAt) + " 1m4s " + clock(c.at(104*time.Second)) + " CLIENT_INITIATED " + pcTrunk,
		pcNoAnswer + " sip-" + pcNoAnswer + " · SCL_noanswer4711 no_answer outbound ringing " + clock(c.at(2*time.Second)) + " — — " +
			clock(c.at(33*time.Second)) + " USER_UNAVAILABLE " + pcTrunk,
		// The recording.
		pcEgress, "EGRESS_COMPLETE", pcFile, pcLocation, "1.8 MB", rec.EndedAt.UTC().Format("2006-01-02 15:04:05Z"),
		// The failed agent job.
		pcJob, "call-summary", "JS_FAILED", pcJobError,
		// The anomaly, the project and the key.
		"participant_never_left × 1", "Project acme", "Signing key devkey",
		"Disposition completed", "End reason ROOM_END_API_DELETE",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("call page lacks %q", want)
		}
	}
	if job.Status != "JS_FAILED" || rec.Files[0].Filename != pcFile {
		t.Fatalf("report: job %+v recording %+v", job, rec)
	}
	// The timeline names the job and the call status of SIP events.
	for _, want := range []string{"job " + pcJob + " call-summary JS_FAILED", "sip-" + pcNoAnswer + " (sip) ringing", "egress " + pcEgress + " EGRESS_COMPLETE"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}

	// The list: both rooms, their dispositions, the callee of each call
	// with its outcome, and each room's project.
	_, list, _ := consoleGet(t, tr, "/", nil)
	lt := pageText(list)
	for _, want := range []string{"outreach-88", "no_answer", "callback-4711", "completed", pcAnswered + " callee answered", pcNoAnswer + " callee no_answer", "project acme", "project " + globexKey} {
		if !strings.Contains(lt, want) {
			t.Errorf("calls list lacks %q", want)
		}
	}
	if !strings.Contains(list, `<select id="f-project" name="project">`) {
		t.Errorf("no project filter with two projects")
	}
	for q, want := range map[string][2]bool{"acme": {true, false}, testKey: {true, false}, globexKey: {false, true}} {
		_, l, _ := consoleGet(t, tr, "/?project="+url.QueryEscape(q), nil)
		if got := [2]bool{strings.Contains(l, `data-sid="`+c.sid+`"`), strings.Contains(l, `data-sid="`+other.sid+`"`)}; got != want {
			t.Errorf("?project=%s: rooms shown %v, want %v", q, got, want)
		}
	}
	_, l, _ := consoleGet(t, tr, "/?disposition=no_answer", nil)
	if strings.Contains(l, `data-sid="`+c.sid+`"`) || !strings.Contains(l, `data-sid="`+other.sid+`"`) {
		t.Errorf("?disposition=no_answer shows the wrong rooms")
	}

	// One project: no project filter.
	single := startReceiver(t, testConfig(t))
	if _, l, _ := consoleGet(t, single, "/", nil); strings.Contains(l, `id="f-project"`) {
		t.Errorf("a project filter with one project")
	}
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05Z") }

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// pageText is a page's text as a reader sees it: tags removed, entities
// decoded, white space folded ("<dt>Project</dt><dd>acme</dd>" reads
// "Project acme").
func pageText(page string) string {
	return strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(tagRE.ReplaceAllString(page, " ")), " "))
}

// TestConsoleViewCoversReport: every JSON field of the public Session (and
// of what it holds: participants, SIP calls, recordings and their files,
// agent jobs, anomalies) has a field of the same name in the console's
// view, so that nothing the report says is silently dropped from the page.
// A field added to the public types fails here until the console knows it.
func TestConsoleViewCoversReport(t *testing.T) {
	var check func(pub, view reflect.Type, path string)
	check = func(pub, view reflect.Type, path string) {
		for pub.Kind() == reflect.Pointer || pub.Kind() == reflect.Slice {
			pub = pub.Elem()
		}
		for view.Kind() == reflect.Pointer || view.Kind() == reflect.Slice {
			view = view.Elem()
		}
		if pub.Kind() != reflect.Struct || pub == reflect.TypeOf(time.Time{}) {
			return
		}
		fields := map[string]reflect.StructField{}
		for i := range view.NumField() {
			f := view.Field(i)
			fields[jsonName(f)] = f
		}
		for i := range pub.NumField() {
			f := pub.Field(i)
			name := jsonName(f)
			vf, ok := fields[name]
			if !ok {
				t.Errorf("%s%s: no field in the console's view (internal/console/view.go)", path, name)
				continue
			}
			check(f.Type, vf.Type, path+name+".")
		}
	}
	check(reflect.TypeOf(Session{}), reflect.TypeOf(console.Report{}), "")
	check(reflect.TypeOf(Report{}), reflect.TypeOf(console.Report{}), "")
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}
