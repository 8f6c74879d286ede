package livekitwebhook

import (
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Session is the receiver's view of one LiveKit room session (one room sid)
// at one moment: what event hooks get after each event, what SessionByID,
// ActiveSessions, Transport.Session and the sessions API return. While the
// room is open EndedAt is nil and the figures run to the latest event. Once
// room_finished is applied (or the session expired) EndedAt and Disposition
// are set, and a Report follows after Config.FinalizeGrace; a reported
// session is shown as its Report.
//
// Its JSON is a stable contract: snake_case names, RFC 3339 UTC times.
type Session struct {
	// SessionID is the backend session id the Correlator gave the room,
	// else the room name (Unmapped).
	SessionID string `json:"session_id"`
	// RoomName is the LiveKit room name.
	RoomName string `json:"room_name"`
	// RoomSID is the LiveKit room sid.
	RoomSID string `json:"room_sid"`
	// BelugaSessionID is the Beluga runtime.Session of the room, with
	// WithSessionService.
	BelugaSessionID string `json:"beluga_session_id,omitempty"`
	// Unmapped is true when the Correlator did not map the room.
	Unmapped bool `json:"unmapped,omitempty"`
	// APIKey is the API key (its id, never the secret) that signed the
	// room's events, and Project its project (Config.Projects, else the
	// key). Empty for sessions stored before projects, and for legacy
	// signatures.
	APIKey  string `json:"api_key,omitempty"`
	Project string `json:"project,omitempty"`
	// StartedAt is the room's creation time, else its earliest event time.
	StartedAt time.Time `json:"started_at"`
	// EndedAt is set once the session ended (room_finished or expiry).
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// DurationSeconds is EndedAt (or the latest event time) minus StartedAt.
	DurationSeconds float64 `json:"duration_seconds"`
	// ParticipantSeconds is the sum of the participants' Seconds.
	ParticipantSeconds float64 `json:"participant_seconds"`
	// ParticipantSecondsByKind sums the participants' Seconds by Kind.
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	// EndReason is LiveKit's RoomEndReason name of room_finished, or ""
	// when the server sent none.
	EndReason string `json:"end_reason"`
	// Disposition is set once the session ended: one of the Disposition*
	// constants.
	Disposition string `json:"disposition,omitempty"`
	// Participants are sorted by JoinedAt, then SID.
	Participants []Participant `json:"participants"`
	// EventsApplied counts the distinct events applied to the session.
	EventsApplied int `json:"events_applied"`
	// ExpireReason says why an expired session was closed without
	// room_finished (Config.MaxSessionAge, or the reconciler).
	ExpireReason string `json:"expire_reason,omitempty"`
	// AgentJobs are the room's agent jobs (agent_job_* events), if any.
	AgentJobs []AgentJob `json:"agent_jobs,omitempty"`
	// Recordings are the room's egresses, sorted by egress id.
	Recordings []Recording `json:"recordings,omitempty"`
	// Anomalies are sorted by Code; absent when there is none.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
}

// Report is the final account of one room sid, fixed once after
// room_finished plus Config.FinalizeGrace, or when the session expires. It
// is what OnSessionEnded gets, what is published on
// lkwh.reports.<session_id>, written into the Beluga session's
// State[StateKeyReport] and returned by EndedSessions. Unlike a Session it
// is fixed once, and EndedAt and Disposition are always set; only events
// that arrive after it was fixed amend the stored copy (EndedSessions,
// SessionByID, the sessions API): Recordings, and the Anomalies
// egress_never_ended and events_after_report. What was published and
// handed to OnSessionEnded is not sent again. Its fields mean
// what they mean in Session, and its JSON is that of the ended Session.
type Report struct {
	SessionID                string             `json:"session_id"`
	RoomName                 string             `json:"room_name"`
	RoomSID                  string             `json:"room_sid"`
	BelugaSessionID          string             `json:"beluga_session_id,omitempty"`
	Unmapped                 bool               `json:"unmapped,omitempty"`
	APIKey                   string             `json:"api_key,omitempty"`
	Project                  string             `json:"project,omitempty"`
	StartedAt                time.Time          `json:"started_at"`
	EndedAt                  time.Time          `json:"ended_at"`
	DurationSeconds          float64            `json:"duration_seconds"`
	ParticipantSeconds       float64            `json:"participant_seconds"`
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	EndReason                string             `json:"end_reason"`
	// Disposition is one of the Disposition* constants.
	Disposition   string        `json:"disposition"`
	Participants  []Participant `json:"participants"`
	EventsApplied int           `json:"events_applied"`
	ExpireReason  string        `json:"expire_reason,omitempty"`
	AgentJobs     []AgentJob    `json:"agent_jobs,omitempty"`
	// Recordings may change after the report was published: see Recording.
	Recordings []Recording `json:"recordings,omitempty"`
	// Anomalies: see Anomaly. egress_never_ended and events_after_report
	// may change in the stored report after it was published.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
}

// Participant is one participant session (one participant sid) in a Session
// or Report. A participant who rejoins gets a new sid, so a new entry.
type Participant struct {
	// SID is the participant sid.
	SID string `json:"sid"`
	// Identity is the participant identity.
	Identity string `json:"identity"`
	// Kind is LiveKit's participant kind, lower case: "standard", "agent",
	// "sip", "ingress", "egress", "connector", "bridge" or "unknown".
	Kind string `json:"kind"`
	// State is "active", "left" or "aborted" (the connection never came up).
	State string `json:"state"`
	// JoinedAt is the participant's join time.
	JoinedAt time.Time `json:"joined_at"`
	// LeftAt is set once the participant left (or the session ended).
	LeftAt *time.Time `json:"left_at,omitempty"`
	// Seconds is LeftAt (or the latest event time) minus JoinedAt; 0 for
	// aborted.
	Seconds float64 `json:"seconds"`
	// DisconnectReason is LiveKit's DisconnectReason name, or "".
	DisconnectReason string `json:"disconnect_reason,omitempty"`
	// Sip is set for a participant of kind "sip" that carries LiveKit SIP
	// attributes (sip.*, lk.sip.*): the phone call it stands for. Seconds
	// of such a participant is its talk time (from the answer), not the
	// time it was in the room.
	Sip *SIPCall `json:"sip,omitempty"`
}

// SIPCall is the phone call of a SIP participant, from the attributes
// LiveKit SIP sets on it (names in livekit/protocol's livekit/attrs.go).
// Attribute values LiveKit may add later are passed through as they are.
type SIPCall struct {
	// CallID is LiveKit's SIP call id (sip.callID).
	CallID string `json:"call_id"`
	// TrunkID is the SIP trunk of the call (sip.trunkID).
	TrunkID string `json:"trunk_id"`
	// RuleID is the dispatch rule of an inbound call (sip.ruleID), else "".
	RuleID string `json:"rule_id"`
	// PhoneNumber is the far end: the caller of an inbound call, the callee
	// of an outbound one (sip.phoneNumber; "" when the number is hidden).
	PhoneNumber string `json:"phone_number"`
	// TrunkPhoneNumber is the trunk's own number (sip.trunkPhoneNumber).
	TrunkPhoneNumber string `json:"trunk_phone_number"`
	// Direction is "inbound" when a dispatch rule id is present, else
	// "outbound".
	Direction string `json:"direction"`
	// CallStatus is the sip.callStatus of the participant event with the
	// latest createdAt that carried one: "dialing", "ringing",
	// "automation", "active", "hangup", or whatever LiveKit sends.
	CallStatus string `json:"call_status"`
	// Outcome is one of the SIPOutcome* constants; "" while an unanswered
	// call still rings in a live view.
	Outcome string `json:"outcome"`
	// AnsweredAt is when the call was answered: lk.sip.answerTime, else
	// for an inbound call its JoinedAt, else the createdAt of the first
	// event that showed call status "active". Absent when never answered.
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	// TalkSeconds is LeftAt (or the latest event time) minus AnsweredAt;
	// 0 when not answered.
	TalkSeconds float64 `json:"talk_seconds"`
}

// Outcomes of a SIP call (SIPCall.Outcome).
const (
	// SIPOutcomeAnswered: the call was answered (AnsweredAt is set).
	SIPOutcomeAnswered = lifecycle.SIPAnswered
	// SIPOutcomeNoAnswer: the callee did not pick up or was unreachable
	// (disconnect reason USER_UNAVAILABLE).
	SIPOutcomeNoAnswer = lifecycle.SIPNoAnswer
	// SIPOutcomeRejected: the callee declined or was busy (USER_REJECTED).
	SIPOutcomeRejected = lifecycle.SIPRejected
	// SIPOutcomeFailed: the trunk, media or join failed (SIP_TRUNK_FAILURE,
	// MEDIA_FAILURE, JOIN_FAILURE, CONNECTION_TIMEOUT, or an aborted join).
	SIPOutcomeFailed = lifecycle.SIPFailed
	// SIPOutcomeCancelled: hung up from our side while it rang, or the
	// room ended before it was answered.
	SIPOutcomeCancelled = lifecycle.SIPCancelled
)

// AgentJob is one LiveKit agent job of the room, from the agent_job_pending,
// agent_job_started and agent_job_ended events (sent by LiveKit deployments
// that dispatch agents, such as LiveKit Cloud).
type AgentJob struct {
	// JobID is LiveKit's job id.
	JobID string `json:"job_id"`
	// AgentName is the dispatched agent's name ("" for the default agent).
	AgentName string `json:"agent_name"`
	// Status is LiveKit's JobStatus name: JS_PENDING, JS_RUNNING,
	// JS_SUCCESS, JS_FAILED or JS_CANCELLED. A final status is never
	// replaced by an earlier one that arrives late.
	Status string `json:"status"`
	// StartedAt is when a worker took the job, if known.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// EndedAt is when the job ended, if known.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// Error is the error the agent reported (with JS_FAILED), else "".
	Error string `json:"error"`
}

// Dispositions of a Report (and of an ended Session).
const (
	// DispositionCompleted: the room finished and a participant other than
	// an agent, egress or ingress took part (was not aborted).
	DispositionCompleted = "completed"
	// DispositionNoShow: the room finished and no such participant came.
	DispositionNoShow = "no_show"
	// DispositionConnectionFailed: the room finished and every such
	// participant's connection was aborted.
	DispositionConnectionFailed = "connection_failed"
	// DispositionExpired: closed without room_finished (Config.MaxSessionAge,
	// or the reconciler found the room gone); see ExpireReason.
	DispositionExpired = "expired"
	// DispositionNoAnswer: the room finished, its only callers were SIP
	// calls never answered, and the one that ended last got no answer.
	DispositionNoAnswer = "no_answer"
	// DispositionRejected: as DispositionNoAnswer, but the last call was
	// rejected (declined, busy).
	DispositionRejected = "rejected"
	// DispositionFailed: as DispositionNoAnswer, but the last call failed
	// (trunk, media or join failure). A last call cancelled while ringing
	// gives DispositionNoShow.
	DispositionFailed = "failed"
)

// sessionOf is the public view of the state machine's session.
func sessionOf(s lifecycle.Session) Session {
	return Session{
		SessionID:                s.SessionID,
		RoomName:                 s.RoomName,
		RoomSID:                  s.RoomSID,
		BelugaSessionID:          s.BelugaSessionID,
		Unmapped:                 s.Unmapped,
		APIKey:                   s.APIKey,
		Project:                  s.Project,
		StartedAt:                s.StartedAt,
		EndedAt:                  s.EndedAt,
		DurationSeconds:          s.DurationSeconds,
		ParticipantSeconds:       s.ParticipantSeconds,
		ParticipantSecondsByKind: s.ParticipantSecondsByKind,
		EndReason:                s.EndReason,
		Disposition:              s.Disposition,
		Participants:             participantsOf(s.Participants),
		EventsApplied:            s.EventsApplied,
		ExpireReason:             s.ExpireReason,
		AgentJobs:                agentJobsOf(s.AgentJobs),
		Recordings:               recordingsOf(s.Recordings),
		Anomalies:                anomaliesOf(s.Anomalies),
	}
}

// reportOf is the Report of an ended session (EndedAt set).
func reportOf(s lifecycle.Session) Report {
	r := Report{
		SessionID:                s.SessionID,
		RoomName:                 s.RoomName,
		RoomSID:                  s.RoomSID,
		BelugaSessionID:          s.BelugaSessionID,
		Unmapped:                 s.Unmapped,
		APIKey:                   s.APIKey,
		Project:                  s.Project,
		StartedAt:                s.StartedAt,
		DurationSeconds:          s.DurationSeconds,
		ParticipantSeconds:       s.ParticipantSeconds,
		ParticipantSecondsByKind: s.ParticipantSecondsByKind,
		EndReason:                s.EndReason,
		Disposition:              s.Disposition,
		Participants:             participantsOf(s.Participants),
		EventsApplied:            s.EventsApplied,
		ExpireReason:             s.ExpireReason,
		AgentJobs:                agentJobsOf(s.AgentJobs),
		Recordings:               recordingsOf(s.Recordings),
		Anomalies:                anomaliesOf(s.Anomalies),
	}
	if s.EndedAt != nil {
		r.EndedAt = *s.EndedAt
	}
	return r
}

// mapAll converts a slice of the state machine's view into the public one;
// nil stays nil (null in JSON).
func mapAll[From, To any](xs []From, f func(From) To) []To {
	if xs == nil {
		return nil
	}
	out := make([]To, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func participantsOf(ps []lifecycle.Participant) []Participant {
	return mapAll(ps, func(p lifecycle.Participant) Participant {
		out := Participant{SID: p.SID, Identity: p.Identity, Kind: p.Kind, State: p.State,
			JoinedAt: p.JoinedAt, LeftAt: p.LeftAt, Seconds: p.Seconds, DisconnectReason: p.DisconnectReason}
		if p.Sip != nil {
			c := SIPCall(*p.Sip) // same fields: a field added there fails to compile here
			out.Sip = &c
		}
		return out
	})
}

// Same fields: a field added on either side fails to compile here.
func agentJobsOf(js []lifecycle.AgentJob) []AgentJob {
	return mapAll(js, func(j lifecycle.AgentJob) AgentJob { return AgentJob(j) })
}
