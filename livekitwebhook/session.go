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
)

// sessionOf is the public view of the state machine's session.
func sessionOf(s lifecycle.Session) Session {
	return Session{
		SessionID:                s.SessionID,
		RoomName:                 s.RoomName,
		RoomSID:                  s.RoomSID,
		BelugaSessionID:          s.BelugaSessionID,
		Unmapped:                 s.Unmapped,
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
		StartedAt:                s.StartedAt,
		DurationSeconds:          s.DurationSeconds,
		ParticipantSeconds:       s.ParticipantSeconds,
		ParticipantSecondsByKind: s.ParticipantSecondsByKind,
		EndReason:                s.EndReason,
		Disposition:              s.Disposition,
		Participants:             participantsOf(s.Participants),
		EventsApplied:            s.EventsApplied,
		ExpireReason:             s.ExpireReason,
		Recordings:               recordingsOf(s.Recordings),
		Anomalies:                anomaliesOf(s.Anomalies),
	}
	if s.EndedAt != nil {
		r.EndedAt = *s.EndedAt
	}
	return r
}

func participantsOf(ps []lifecycle.Participant) []Participant {
	if ps == nil {
		return nil // null stays null in JSON
	}
	out := make([]Participant, len(ps))
	for i, p := range ps {
		out[i] = Participant(p) // same fields: a field added there fails to compile here
	}
	return out
}
