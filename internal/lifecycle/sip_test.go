package lifecycle

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

// SIP attribute sets as livekit-sip sets them (livekit/protocol rpc/sip.go
// for outbound, sip/sip.go EvaluateDispatchRule for inbound; sip.callStatus
// from livekit/sip pkg/sip: outbound joins "dialing", then "ringing" on a
// 18x, "active" once answered, "hangup" when it hangs up; an inbound call
// joins "ringing" and turns "active" when the SIP service answers).
func outAttrs(status string, extra ...string) map[string]string {
	m := map[string]string{
		livekit.AttrSIPCallID:      "SCL_out1",
		livekit.AttrSIPTrunkID:     "ST_out",
		livekit.AttrSIPPhoneNumber: "+15550100",
		livekit.AttrSIPHostName:    "sip.example.com",
		livekit.AttrSIPTrunkNumber: "+15550199",
		livekit.AttrSIPCallStatus:  status,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func inAttrs(status string) map[string]string {
	return map[string]string{
		livekit.AttrSIPCallID:         "SCL_in1",
		livekit.AttrSIPTrunkID:        "ST_in",
		livekit.AttrSIPDispatchRuleID: "SDR_1",
		livekit.AttrSIPPhoneNumber:    "+15550123",
		livekit.AttrSIPHostName:       "carrier.example.net",
		livekit.AttrSIPTrunkNumber:    "+15550999",
		livekit.AttrSIPCallStatus:     status,
		livekit.AttrSIPInviteTime:     strconv.FormatInt(t0*1000+4_200, 10),
	}
}

// withAttrs sets the participant's attributes (after part).
func withAttrs(a map[string]string) evOpt {
	return func(ev *livekit.WebhookEvent) { ev.Participant.Attributes = a }
}

// answerAt is the lk.sip.answerTime attribute for t0 (ms) + ms.
func answerAt(ms int64) string { return strconv.FormatInt(t0*1000+ms, 10) }

// jobEv makes the event an agent job event as LiveKit sends it: no room of
// its own, the room in job.room.
func jobEv(id, agentName string, st *livekit.JobState) evOpt {
	return func(ev *livekit.WebhookEvent) {
		ev.Room = nil
		ev.Job = &livekit.Job{Id: id, AgentName: agentName, Type: livekit.JobType_JT_ROOM,
			Room: &livekit.Room{Sid: roomSID, Name: roomName}, State: st}
	}
}

func jobNs(ms int64) int64 { return (t0*1000 + ms) * int64(time.Millisecond) }

// Shared events: the agent of the room and the room's life.
var (
	sStarted  = mk("EV_s_start", EventRoomStarted, 0, created(0))
	sAgentIn  = mk("EV_s_agin", EventParticipantJoined, 1, part("PA_agent", "agent-1", agent, 1_000))
	sAgentOut = mk("EV_s_agout", EventParticipantLeft, 41, part("PA_agent", "agent-1", agent, 1_000), reason(livekit.DisconnectReason_CLIENT_INITIATED))
	sFinished = mk("EV_s_fin", EventRoomFinished, 45)
)

func sipJoined(attrs map[string]string) *livekit.WebhookEvent {
	return mk("EV_s_pj", EventParticipantJoined, 2, part("PA_sip", "sip_+15550100", sip, 2_000), withAttrs(attrs))
}

func sipTrack(id string, sec int64, attrs map[string]string) *livekit.WebhookEvent {
	return mk(id, EventTrackPublished, sec, part("PA_sip", "sip_+15550100", sip, 2_000), withAttrs(attrs), track("TR_sip"))
}

func sipLeft(sec int64, r livekit.DisconnectReason, attrs map[string]string) *livekit.WebhookEvent {
	return mk("EV_s_pl", EventParticipantLeft, sec, part("PA_sip", "sip_+15550100", sip, 2_000), withAttrs(attrs), reason(r))
}

func agentView() Participant {
	return pv("PA_agent", "agent-1", "agent", ParticipantLeft, atMs(1_000), tp(at(41)), 40, "CLIENT_INITIATED")
}

// sipSession is the expected ended session of the agent plus one outbound
// call that left at leftSec.
func sipSession(disp string, sipSecs float64, leftSec int64, dr string, call SIP, n int) Session {
	p := pv("PA_sip", "sip_+15550100", "sip", ParticipantLeft, atMs(2_000), tp(at(leftSec)), sipSecs, dr)
	p.Sip = &call
	return Session{
		SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
		StartedAt: atMs(0), EndedAt: tp(at(45)), DurationSeconds: 45,
		ParticipantSeconds:       40 + sipSecs,
		ParticipantSecondsByKind: map[string]float64{"agent": 40, "sip": sipSecs},
		Disposition:              disp,
		Participants:             []Participant{agentView(), p},
		EventsApplied:            n,
	}
}

func outCall(status, outcome string, answered *time.Time, talk float64) SIP {
	return SIP{CallID: "SCL_out1", TrunkID: "ST_out", PhoneNumber: "+15550100", TrunkPhoneNumber: "+15550199",
		Direction: SIPOutbound, CallStatus: status, Outcome: outcome, AnsweredAt: answered, TalkSeconds: talk}
}

func sipCases() []tableCase {
	return []tableCase{
		{
			// Talk time runs from lk.sip.answerTime (12.5 s), not from the
			// join while it was dialing (2 s): 40 - 12.5.
			name: "outbound answered, lk.sip.answerTime",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipTrack("EV_s_tp", 2, outAttrs("dialing")),
				sipLeft(40, livekit.DisconnectReason_CLIENT_INITIATED, outAttrs("hangup", livekit.AttrSIPAnswerTime, answerAt(12_500))),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionCompleted, 27.5, 40, "CLIENT_INITIATED",
				outCall("hangup", SIPAnswered, tp(atMs(12_500)), 27.5), 7),
		},
		{
			// No answerTime: the first event showing "active" (12 s) is the
			// answer; a later one (30 s) does not move it.
			name: "outbound answered, callStatus active",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipTrack("EV_s_tp", 12, outAttrs("active")),
				mk("EV_s_tu", EventTrackUnpublished, 30, part("PA_sip", "sip_+15550100", sip, 2_000), withAttrs(outAttrs("active")), track("TR_sip")),
				sipLeft(40, livekit.DisconnectReason_CLIENT_INITIATED, outAttrs("hangup")),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionCompleted, 28, 40, "CLIENT_INITIATED",
				outCall("hangup", SIPAnswered, tp(at(12)), 28), 8),
		},
		{
			// livekit-sip sets no call status for an unavailable callee: it
			// leaves "ringing" with USER_UNAVAILABLE. It rang 30 s, talked 0.
			name: "outbound no answer",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipTrack("EV_s_tp", 2, outAttrs("dialing")),
				sipLeft(32, livekit.DisconnectReason_USER_UNAVAILABLE, outAttrs("ringing")),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionNoAnswer, 0, 32, "USER_UNAVAILABLE",
				outCall("ringing", SIPNoAnswer, nil, 0), 7),
		},
		{
			name: "outbound rejected",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipLeft(8, livekit.DisconnectReason_USER_REJECTED, outAttrs("ringing")),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionRejected, 0, 8, "USER_REJECTED",
				outCall("ringing", SIPRejected, nil, 0), 6),
		},
		{
			name: "outbound trunk failure",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipLeft(3, livekit.DisconnectReason_SIP_TRUNK_FAILURE, outAttrs("dialing")),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionFailed, 0, 3, "SIP_TRUNK_FAILURE",
				outCall("dialing", SIPFailed, nil, 0), 6),
		},
		{
			// We hung up (CLIENT_INITIATED, "hangup") before the callee
			// answered: cancelled, and the room had nobody: no_show.
			name: "outbound cancelled while ringing",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipTrack("EV_s_tp", 2, outAttrs("dialing")),
				sipLeft(20, livekit.DisconnectReason_CLIENT_INITIATED, outAttrs("hangup")),
				sAgentOut, sFinished,
			},
			want: sipSession(DispositionNoShow, 0, 20, "CLIENT_INITIATED",
				outCall("hangup", SIPCancelled, nil, 0), 7),
		},
		{
			// The room closed while it rang: no leave, closed at room end.
			name: "outbound still ringing at room end",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipTrack("EV_s_tp", 5, outAttrs("ringing")),
				sAgentOut, sFinished,
			},
			want: func() Session {
				s := sipSession(DispositionNoShow, 0, 45, "", outCall("ringing", SIPCancelled, nil, 0), 6)
				s.Anomalies = []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}}
				return s
			}(),
		},
		{
			// An aborted join of a call: failed.
			name: "outbound aborted join",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn,
				mk("EV_s_pa", EventParticipantConnectionAborted, 4, part("PA_sip", "sip_+15550100", sip, 2_000), withAttrs(outAttrs("dialing"))),
				sAgentOut, sFinished,
			},
			want: func() Session {
				s := sipSession(DispositionFailed, 0, 0, "", outCall("dialing", SIPFailed, nil, 0), 5)
				s.Participants[1].State, s.Participants[1].LeftAt = ParticipantAborted, nil
				return s
			}(),
		},
		{
			// Inbound: answered when it joined the room (answerTime absent).
			name: "inbound answered",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn,
				mk("EV_s_ij", EventParticipantJoined, 5, part("PA_in", "sip_+15550123", sip, 5_300), withAttrs(inAttrs("ringing"))),
				mk("EV_s_il", EventParticipantLeft, 35, part("PA_in", "sip_+15550123", sip, 5_300), withAttrs(inAttrs("hangup")),
					reason(livekit.DisconnectReason_CLIENT_INITIATED)),
				sAgentOut, sFinished,
			},
			want: func() Session {
				p := pv("PA_in", "sip_+15550123", "sip", ParticipantLeft, atMs(5_300), tp(at(35)), 29.7, "CLIENT_INITIATED")
				p.Sip = &SIP{CallID: "SCL_in1", TrunkID: "ST_in", RuleID: "SDR_1", PhoneNumber: "+15550123",
					TrunkPhoneNumber: "+15550999", Direction: SIPInbound, CallStatus: "hangup", Outcome: SIPAnswered,
					AnsweredAt: tp(atMs(5_300)), TalkSeconds: 29.7}
				return Session{
					SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
					StartedAt: atMs(0), EndedAt: tp(at(45)), DurationSeconds: 45,
					ParticipantSeconds: 69.7, ParticipantSecondsByKind: map[string]float64{"agent": 40, "sip": 29.7},
					Disposition: DispositionCompleted, Participants: []Participant{agentView(), p}, EventsApplied: 6,
				}
			}(),
		},
		{
			// A sip participant without SIP attributes counts as today.
			name: "sip participant without attributes",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn,
				mk("EV_s_pj", EventParticipantJoined, 2, part("PA_sip", "sip_+15550100", sip, 2_000)),
				mk("EV_s_pl", EventParticipantLeft, 40, part("PA_sip", "sip_+15550100", sip, 2_000), reason(livekit.DisconnectReason_USER_UNAVAILABLE)),
				sAgentOut, sFinished,
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(0), EndedAt: tp(at(45)), DurationSeconds: 45,
				ParticipantSeconds: 78, ParticipantSecondsByKind: map[string]float64{"agent": 40, "sip": 38},
				Disposition: DispositionCompleted,
				Participants: []Participant{agentView(),
					pv("PA_sip", "sip_+15550100", "sip", ParticipantLeft, atMs(2_000), tp(at(40)), 38, "USER_UNAVAILABLE")},
				EventsApplied: 6,
			},
		},
		{
			// Two unanswered calls: the one that ended last decides.
			name: "two unanswered calls, the last decides",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")),
				sipLeft(32, livekit.DisconnectReason_USER_UNAVAILABLE, outAttrs("ringing")),
				mk("EV_s_2j", EventParticipantJoined, 3, part("PA_sip2", "sip_2", sip, 3_000), withAttrs(outAttrs("dialing"))),
				mk("EV_s_2l", EventParticipantLeft, 10, part("PA_sip2", "sip_2", sip, 3_000), withAttrs(outAttrs("ringing")),
					reason(livekit.DisconnectReason_USER_REJECTED)),
				sAgentOut, sFinished,
			},
			want: func() Session {
				s := sipSession(DispositionNoAnswer, 0, 32, "USER_UNAVAILABLE", outCall("ringing", SIPNoAnswer, nil, 0), 8)
				p := pv("PA_sip2", "sip_2", "sip", ParticipantLeft, atMs(3_000), tp(at(10)), 0, "USER_REJECTED")
				c := outCall("ringing", SIPRejected, nil, 0)
				p.Sip = &c
				s.Participants = append(s.Participants, p)
				return s
			}(),
		},
		{
			// Live view: the call still rings (no outcome yet, no seconds).
			name: "outbound ringing, active view",
			evs: []*livekit.WebhookEvent{
				sStarted, sAgentIn, sipJoined(outAttrs("dialing")), sipTrack("EV_s_tp", 6, outAttrs("ringing")),
			},
			want: func() Session {
				p := pv("PA_sip", "sip_+15550100", "sip", ParticipantActive, atMs(2_000), nil, 0, "")
				c := outCall("ringing", "", nil, 0)
				p.Sip = &c
				return Session{
					SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
					StartedAt: atMs(0), DurationSeconds: 6,
					ParticipantSeconds: 5, ParticipantSecondsByKind: map[string]float64{"agent": 5, "sip": 0},
					Participants: []Participant{
						pv("PA_agent", "agent-1", "agent", ParticipantActive, atMs(1_000), nil, 5, ""), p},
					EventsApplied: 4,
				}
			}(),
		},
		{
			// The job failed; a late pending event does not hide it, and the
			// events (only job.room, no room) fold into the room.
			name: "agent job failed",
			evs: []*livekit.WebhookEvent{
				mk("EV_s_ended", EventAgentJobEnded, 9, jobEv("AJ_1", "voice-agent", &livekit.JobState{
					Status: livekit.JobStatus_JS_FAILED, Error: "entrypoint: boom",
					StartedAt: jobNs(1_500), EndedAt: jobNs(8_250), UpdatedAt: jobNs(8_250)})),
				sStarted,
				mk("EV_s_pend", EventAgentJobPending, 1, jobEv("AJ_1", "voice-agent", &livekit.JobState{
					Status: livekit.JobStatus_JS_PENDING, UpdatedAt: jobNs(900)})),
				mk("EV_s_run", EventAgentJobStarted, 2, jobEv("AJ_1", "voice-agent", &livekit.JobState{
					Status: livekit.JobStatus_JS_RUNNING, StartedAt: jobNs(1_500), UpdatedAt: jobNs(1_500)})),
				mk("EV_s_fin", EventRoomFinished, 20),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(0), EndedAt: tp(at(20)), DurationSeconds: 20,
				ParticipantSecondsByKind: map[string]float64{}, Participants: []Participant{},
				Disposition: DispositionNoShow, EventsApplied: 5,
				AgentJobs: []AgentJob{{JobID: "AJ_1", AgentName: "voice-agent", Status: "JS_FAILED",
					StartedAt: tp(atMs(1_500)), EndedAt: tp(atMs(8_250)), Error: "entrypoint: boom"}},
			},
		},
		{
			// Only job events, the room named by job.room alone; two jobs
			// sorted by start, one still running.
			name: "job events with only job.room",
			evs: []*livekit.WebhookEvent{
				mk("EV_s_j2", EventAgentJobStarted, 3, jobEv("AJ_b", "", &livekit.JobState{
					Status: livekit.JobStatus_JS_RUNNING, StartedAt: jobNs(2_000)})),
				mk("EV_s_j1", EventAgentJobEnded, 7, jobEv("AJ_z", "helper", &livekit.JobState{
					Status: livekit.JobStatus_JS_SUCCESS, StartedAt: jobNs(1_000), EndedAt: jobNs(7_000)})),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: at(3), DurationSeconds: 4,
				ParticipantSecondsByKind: map[string]float64{}, Participants: []Participant{},
				EventsApplied: 2,
				AgentJobs: []AgentJob{
					{JobID: "AJ_z", AgentName: "helper", Status: "JS_SUCCESS", StartedAt: tp(atMs(1_000)), EndedAt: tp(atMs(7_000))},
					{JobID: "AJ_b", Status: "JS_RUNNING", StartedAt: tp(atMs(2_000))},
				},
			},
		},
	}
}

// TestSIPAndJobsTable folds each case in order and reversed: the same
// Session either way.
func TestSIPAndJobsTable(t *testing.T) {
	for _, tc := range sipCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, rev := range []bool{false, true} {
				evs := slices.Clone(tc.evs)
				if rev {
					slices.Reverse(evs)
				}
				s := NewState("", "")
				for _, ev := range evs {
					if routeSID(ev, map[string]string{roomName: roomSID}) != roomSID {
						t.Fatalf("%s does not route to the room", ev.Id)
					}
					s, _ = Apply(s, ev)
				}
				s.SessionID = "ses_1"
				checkRoundTrip(t, s)
				got := s.Session()
				if !reflect.DeepEqual(got, tc.want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					w, _ := json.MarshalIndent(tc.want, "", "  ")
					t.Fatalf("reversed=%v: session mismatch\n got: %s\nwant: %s", rev, g, w)
				}
				checkSessionInvariants(t, got)
			}
		})
	}
}

// TestSIPStatusTies: events of the same second with different call
// statuses give the later call stage in any order; unknown values are kept.
func TestSIPStatusTies(t *testing.T) {
	for _, order := range [][]string{{"ringing", "active", "x-new"}, {"x-new", "active", "ringing"}, {"active", "x-new", "ringing"}} {
		var s SIPState
		for _, st := range order {
			s.fold(map[string]string{livekit.AttrSIPCallStatus: st}, t0)
		}
		if s.Status != "active" || s.ActiveSec != t0 {
			t.Fatalf("%v: %+v", order, s)
		}
	}
	var s SIPState
	s.fold(map[string]string{livekit.AttrSIPCallStatus: "x-new", livekit.AttrSIPAnswerTime: "soon"}, t0+1)
	s.fold(map[string]string{livekit.AttrSIPCallStatus: "active"}, t0)
	if s.Status != "x-new" || s.AnswerMs != 0 || !s.On {
		t.Fatalf("unknown values: %+v", s)
	}
	// A header attribute alone makes it a SIP participant; an unrelated
	// attribute does not.
	var h, none SIPState
	h.fold(map[string]string{livekit.AttrSIPHeaderPrefix + "x-foo": "1"}, t0)
	none.fold(map[string]string{"app.role": "caller"}, t0)
	if !h.On || none.On {
		t.Fatalf("header %+v, unrelated %+v", h, none)
	}
}

// checkSIPInvariants checks what must hold for a participant's SIP call.
func checkSIPInvariants(t *testing.T, p Participant, ended bool) {
	t.Helper()
	c := p.Sip
	if c == nil {
		return
	}
	if p.Kind != "sip" {
		t.Fatalf("participant %s of kind %s has a SIP call", p.SID, p.Kind)
	}
	if c.TalkSeconds != p.Seconds {
		t.Fatalf("participant %s: talk %v != seconds %v", p.SID, c.TalkSeconds, p.Seconds)
	}
	if (c.AnsweredAt != nil) != (c.Outcome == SIPAnswered) {
		t.Fatalf("participant %s: answered_at %v with outcome %q", p.SID, c.AnsweredAt, c.Outcome)
	}
	if c.AnsweredAt == nil && c.TalkSeconds != 0 {
		t.Fatalf("participant %s: talk without answer", p.SID)
	}
	if (c.RuleID != "") != (c.Direction == SIPInbound) {
		t.Fatalf("participant %s: direction %q with rule %q", p.SID, c.Direction, c.RuleID)
	}
	if ended && c.Outcome == "" {
		t.Fatalf("participant %s: no outcome in an ended view", p.SID)
	}
	if c.AnsweredAt != nil && c.AnsweredAt.Location() != time.UTC {
		t.Fatalf("participant %s: non-UTC answered_at", p.SID)
	}
}

// TestJobRouting: an agent job event without a room of its own belongs to
// job.room; one that names no room at all belongs to none.
func TestJobRouting(t *testing.T) {
	full := &livekit.WebhookEvent{Event: EventAgentJobStarted, Job: &livekit.Job{Id: "AJ_1", Room: &livekit.Room{Sid: "RM_j", Name: "job-room"}}}
	byName := &livekit.WebhookEvent{Event: EventAgentJobEnded, Job: &livekit.Job{Id: "AJ_1", Room: &livekit.Room{Name: "job-room"}}}
	bare := &livekit.WebhookEvent{Event: EventAgentJobPending, Job: &livekit.Job{Id: "AJ_1"}}
	own := &livekit.WebhookEvent{Event: EventAgentJobEnded, Room: &livekit.Room{Sid: "RM_own", Name: "own"},
		Job: &livekit.Job{Id: "AJ_1", Room: &livekit.Room{Sid: "RM_j", Name: "job-room"}}}
	for _, c := range []struct {
		ev        *livekit.WebhookEvent
		sid, name string
	}{{full, "RM_j", "job-room"}, {byName, "", "job-room"}, {bare, "", ""}, {own, "RM_own", "own"}} {
		if RoomSID(c.ev) != c.sid || RoomName(c.ev) != c.name {
			t.Errorf("%s: routed to %q/%q, want %q/%q", c.ev.Event, RoomSID(c.ev), RoomName(c.ev), c.sid, c.name)
		}
	}
	// A job of another room is recorded but not folded.
	s, _ := Apply(NewState("RM_other", "other"), full)
	if len(s.Jobs) != 0 || s.EventsApplied != 1 {
		t.Fatalf("job of another room folded: %+v", s)
	}
	// A job event without a job id folds no job.
	s, _ = Apply(NewState("", ""), &livekit.WebhookEvent{Event: EventAgentJobEnded, Job: &livekit.Job{Room: &livekit.Room{Sid: "RM_j"}}})
	if len(s.Jobs) != 0 || s.RoomSID != "RM_j" {
		t.Fatalf("job without id: %+v", s)
	}
}
