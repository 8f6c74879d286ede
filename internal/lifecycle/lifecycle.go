package lifecycle

import (
	"sort"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
)

// Webhook event names handled by Apply. Any other name is accepted and
// recorded as applied.
const (
	EventRoomStarted                  = "room_started"
	EventRoomFinished                 = "room_finished"
	EventParticipantJoined            = "participant_joined"
	EventParticipantLeft              = "participant_left"
	EventParticipantConnectionAborted = "participant_connection_aborted"
	EventTrackPublished               = "track_published"
	EventTrackUnpublished             = "track_unpublished"
	EventEgressStarted                = "egress_started"
	EventEgressUpdated                = "egress_updated"
	EventEgressEnded                  = "egress_ended"
	EventIngressStarted               = "ingress_started"
	EventIngressEnded                 = "ingress_ended"
)

// Participant states in the Session view.
const (
	ParticipantActive  = "active"
	ParticipantLeft    = "left"
	ParticipantAborted = "aborted"
)

// Session dispositions, set on ended views only.
const (
	DispositionCompleted        = "completed"
	DispositionNoShow           = "no_show"
	DispositionConnectionFailed = "connection_failed"
	DispositionExpired          = "expired"
)

// KindUnknown is the kind name used for participant kinds this version of
// livekit/protocol does not know.
const KindUnknown = "unknown"

// State is the folded state of one room SID. It is a plain value stored as
// JSON; build it with NewState and change it only with Apply and Expire (the
// correlation fields SessionID, BelugaSessionID and Unmapped are set by the
// caller). Every field is combined order-independently, see the package
// documentation.
type State struct {
	// RoomSID is the LiveKit room SID this state belongs to.
	RoomSID string `json:"sid"`
	// RoomName is the LiveKit room name.
	RoomName string `json:"name,omitempty"`
	// SessionID is the receiver's session id, set by the caller.
	SessionID string `json:"ses,omitempty"`
	// BelugaSessionID is the correlated Beluga session id, set by the caller.
	BelugaSessionID string `json:"bses,omitempty"`
	// Unmapped is set by the caller when the room could not be correlated.
	Unmapped bool `json:"unm,omitempty"`
	// APIKey (the key id, never its secret) and Project are set by the
	// caller: the signing key of the room's events and its project.
	APIKey  string `json:"key,omitempty"`
	Project string `json:"proj,omitempty"`

	// CreatedMs is the earliest room creationTimeMs seen (0: none).
	CreatedMs int64 `json:"cms,omitempty"`
	// CreatedSec is the earliest room creationTime (seconds) seen on events
	// that carried no creationTimeMs (0: none).
	CreatedSec int64 `json:"cs,omitempty"`
	// FirstEventSec is the earliest event createdAt seen (0: none).
	FirstEventSec int64 `json:"fe,omitempty"`
	// LastEventSec is the latest event createdAt seen (0: none).
	LastEventSec int64 `json:"le,omitempty"`

	// RoomFinished is true once a room_finished event was applied.
	RoomFinished bool `json:"fin,omitempty"`
	// FinishedSec is the earliest createdAt of room_finished (0: none or unknown).
	FinishedSec int64 `json:"fins,omitempty"`
	// EndReason is the livekit.RoomEndReason of room_finished (highest if several).
	EndReason int32 `json:"er,omitempty"`
	// RoomStartedSecs are the createdAt of every room_started applied, sorted.
	RoomStartedSecs []int64 `json:"rss,omitempty"`

	// Expired is true once Expire closed the session.
	Expired bool `json:"exp,omitempty"`
	// ExpiredMs is the end time given to Expire, unix milliseconds.
	ExpiredMs int64 `json:"expms,omitempty"`
	// ExpireReason is the reason given to Expire.
	ExpireReason string `json:"expr,omitempty"`

	// Participants holds one entry per participant SID, sorted by SID.
	Participants []ParticipantState `json:"p,omitempty"`
	// Egress holds one entry per egress id seen, sorted by id.
	Egress []EgressState `json:"eg,omitempty"`
	// Ingress holds one entry per ingress id seen, sorted by id.
	Ingress []IngressState `json:"ing,omitempty"`
	// Jobs holds one entry per agent job id seen, sorted by id.
	Jobs []JobState `json:"job,omitempty"`

	// AppliedIDs is the sorted set of applied event ids (idempotency memory).
	AppliedIDs []string `json:"ids,omitempty"`
	// EventsApplied counts applied events, including events without an id.
	EventsApplied int `json:"n,omitempty"`
}

// ParticipantState is the folded state of one participant SID.
type ParticipantState struct {
	// SID is the participant SID.
	SID string `json:"sid"`
	// Identity is the participant identity (smallest non-empty one seen).
	Identity string `json:"idn,omitempty"`
	// Kind is the livekit.ParticipantInfo_Kind (highest seen).
	Kind int32 `json:"k,omitempty"`
	// JoinMs is the earliest joinedAtMs seen (0: none).
	JoinMs int64 `json:"jms,omitempty"`
	// JoinSec is the earliest joinedAt (seconds) seen on events without
	// joinedAtMs (0: none).
	JoinSec int64 `json:"js,omitempty"`
	// FirstSec is the earliest createdAt of an event about this participant.
	FirstSec int64 `json:"fs,omitempty"`
	// Left is true once participant_left was seen.
	Left bool `json:"l,omitempty"`
	// LeftSec is the earliest createdAt of participant_left (0: none or unknown).
	LeftSec int64 `json:"ls,omitempty"`
	// LeftReason is the livekit.DisconnectReason of participant_left.
	LeftReason int32 `json:"lr,omitempty"`
	// Aborted is true once participant_connection_aborted was seen.
	Aborted bool `json:"a,omitempty"`
	// AbortReason is the livekit.DisconnectReason of participant_connection_aborted.
	AbortReason int32 `json:"ar,omitempty"`
	// Tracks is the sorted set of track SIDs published by the participant.
	Tracks []string `json:"tr,omitempty"`
	// SIP is the folded SIP attributes (zero: none seen).
	SIP SIPState `json:"sip,omitzero"`
}

// EgressState records one egress of the room.
type EgressState struct {
	// ID is the egress id.
	ID string `json:"id"`
	// Started is true once egress_started was seen.
	Started bool `json:"s,omitempty"`
	// Ended is true once egress_ended was seen.
	Ended bool `json:"e,omitempty"`
	// StartedNs is the earliest EgressInfo.startedAt seen (unix ns).
	StartedNs int64 `json:"sn,omitempty"`
	// The fields below are those of the greatest snapshot of the egress's
	// events (see compareSnapshots), the zero snapshot included.
	//
	// Final: the snapshot has a terminal status or came with egress_ended.
	Final bool `json:"f,omitempty"`
	// UpdatedNs is EgressInfo.updatedAt (unix ns).
	UpdatedNs int64 `json:"un,omitempty"`
	// EventSec is the createdAt of the snapshot's event.
	EventSec int64 `json:"es,omitempty"`
	// Status is the livekit.EgressStatus.
	Status int32 `json:"st,omitempty"`
	// EndedNs is EgressInfo.endedAt (unix ns).
	EndedNs int64 `json:"en,omitempty"`
	// Error is EgressInfo.error.
	Error string `json:"err,omitempty"`
	// Files are file_results, else the deprecated file result.
	Files []EgressFile `json:"fl,omitempty"`
}

// IngressState records one ingress of the room.
type IngressState struct {
	// ID is the ingress id.
	ID string `json:"id"`
	// Started is true once ingress_started was seen.
	Started bool `json:"s,omitempty"`
	// Ended is true once ingress_ended was seen.
	Ended bool `json:"e,omitempty"`
}

// Session is the API and report view of a State. Its JSON field names are a
// public contract.
type Session struct {
	// SessionID is the receiver's session id.
	SessionID string `json:"session_id"`
	// RoomName is the LiveKit room name.
	RoomName string `json:"room_name"`
	// RoomSID is the LiveKit room SID.
	RoomSID string `json:"room_sid"`
	// BelugaSessionID is the correlated Beluga session id, if any.
	BelugaSessionID string `json:"beluga_session_id,omitempty"`
	// Unmapped is true when the room could not be correlated.
	Unmapped bool `json:"unmapped,omitempty"`
	// APIKey is the API key that signed the room's events; Project its
	// project name (both empty for sessions stored before projects).
	APIKey  string `json:"api_key,omitempty"`
	Project string `json:"project,omitempty"`
	// StartedAt is the room creation time, else the earliest event time.
	StartedAt time.Time `json:"started_at"`
	// EndedAt is set on ended views only.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// DurationSeconds is EndedAt (or the last event time) minus StartedAt.
	DurationSeconds float64 `json:"duration_seconds"`
	// ParticipantSeconds is the sum of the participants' seconds.
	ParticipantSeconds float64 `json:"participant_seconds"`
	// ParticipantSecondsByKind sums participants' seconds by kind name.
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	// EndReason is the LiveKit RoomEndReason name, or "".
	EndReason string `json:"end_reason"`
	// Disposition is completed, no_show, connection_failed or expired (ended views only).
	Disposition string `json:"disposition,omitempty"`
	// Participants are sorted by JoinedAt, then SID.
	Participants []Participant `json:"participants"`
	// EventsApplied is the number of distinct events applied.
	EventsApplied int `json:"events_applied"`
	// ExpireReason says why an expired session was closed without
	// room_finished (max age, or the reconciler); empty otherwise.
	ExpireReason string `json:"expire_reason,omitempty"`
	// AgentJobs are the room's agent jobs, if any.
	AgentJobs []AgentJob `json:"agent_jobs,omitempty"`
	// Recordings are the room's egresses, sorted by egress id.
	Recordings []Recording `json:"recordings,omitempty"`
	// Anomalies are sorted by code; see the Anomaly* constants.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
}

// Participant is one participant session (one participant SID) in a Session.
type Participant struct {
	// SID is the participant SID.
	SID string `json:"sid"`
	// Identity is the participant identity.
	Identity string `json:"identity"`
	// Kind is the lower-case LiveKit participant kind name.
	Kind string `json:"kind"`
	// State is active, left or aborted.
	State string `json:"state"`
	// JoinedAt is the participant's join time.
	JoinedAt time.Time `json:"joined_at"`
	// LeftAt is the participant's leave time (or the room end), if closed.
	LeftAt *time.Time `json:"left_at,omitempty"`
	// Seconds is LeftAt (or the last event time) minus JoinedAt; 0 for aborted.
	Seconds float64 `json:"seconds"`
	// DisconnectReason is the LiveKit DisconnectReason name, or "".
	DisconnectReason string `json:"disconnect_reason,omitempty"`
	// Sip is the SIP call of a sip participant that carried SIP attributes.
	Sip *SIP `json:"sip,omitempty"`
}

// NewState returns the empty state of a room.
func NewState(roomSID, roomName string) State {
	return State{RoomSID: roomSID, RoomName: roomName}
}

// Finished reports whether room_finished was applied.
func (s State) Finished() bool { return s.RoomFinished }

// Closed reports whether the session is ended, by room_finished or by Expire.
func (s State) Closed() bool { return s.RoomFinished || s.Expired }

// Applied reports whether the event id was already applied. The empty id is
// never applied.
func (s State) Applied(eventID string) bool {
	if eventID == "" {
		return false
	}
	i := sort.SearchStrings(s.AppliedIDs, eventID)
	return i < len(s.AppliedIDs) && s.AppliedIDs[i] == eventID
}

// LastEventTime returns the latest event createdAt seen, or the zero time.
func (s State) LastEventTime() time.Time { return secTime(s.LastEventSec) }

// EventTime returns the event's createdAt as a UTC time, or the zero time when
// the event is nil or carries no createdAt.
func EventTime(ev *livekit.WebhookEvent) time.Time {
	return secTime(ev.GetCreatedAt())
}

// RoomSID returns the room SID an event belongs to: ev.Room.Sid, else
// ev.EgressInfo.RoomId, else ev.Job.Room.Sid (agent job events), else ""
// (ingress events carry no room SID: route them by RoomName).
func RoomSID(ev *livekit.WebhookEvent) string {
	if sid := ev.GetRoom().GetSid(); sid != "" {
		return sid
	}
	if sid := ev.GetEgressInfo().GetRoomId(); sid != "" {
		return sid
	}
	return ev.GetJob().GetRoom().GetSid()
}

// RoomName returns the room name an event belongs to: ev.Room.Name, else
// ev.EgressInfo.RoomName, else ev.IngressInfo.RoomName, else
// ev.Job.Room.Name, else "".
func RoomName(ev *livekit.WebhookEvent) string {
	if n := ev.GetRoom().GetName(); n != "" {
		return n
	}
	if n := ev.GetEgressInfo().GetRoomName(); n != "" {
		return n
	}
	if n := ev.GetIngressInfo().GetRoomName(); n != "" {
		return n
	}
	return ev.GetJob().GetRoom().GetName()
}

// Kind returns the lower-case LiveKit kind name of a participant ("standard",
// "agent", "sip", "ingress", "egress", ...), or "unknown" for a kind number this
// version of livekit/protocol does not know. A nil participant is "unknown".
func Kind(p *livekit.ParticipantInfo) string {
	if p == nil {
		return KindUnknown
	}
	return kindName(int32(p.GetKind()))
}

func kindName(k int32) string {
	if n, ok := livekit.ParticipantInfo_Kind_name[k]; ok {
		return strings.ToLower(n)
	}
	return KindUnknown
}

func endReasonName(r int32) string {
	if r == 0 {
		return ""
	}
	return livekit.RoomEndReason_name[r]
}

func disconnectReasonName(r int32) string {
	if r == 0 {
		return ""
	}
	return livekit.DisconnectReason_name[r]
}

// Apply folds one event into the state and returns the next state. It is
// idempotent by ev.Id: an event whose id was already applied returns s
// unchanged and applied=false. An event with an empty id is treated as never
// seen (applied, and counted, each time). A nil event returns s, false.
//
// Every other event is recorded as applied and counted in EventsApplied,
// including unknown event names and events whose room SID differs from
// s.RoomSID; the payload of the latter is ignored. Apply never modifies s.
func Apply(s State, ev *livekit.WebhookEvent) (next State, applied bool) {
	if ev == nil {
		return s, false
	}
	if s.Applied(ev.GetId()) {
		return s, false
	}
	next = s
	if id := ev.GetId(); id != "" {
		next.AppliedIDs = insertString(s.AppliedIDs, id)
	}
	next.EventsApplied++

	sid := RoomSID(ev)
	if next.RoomSID == "" {
		next.RoomSID = sid
	} else if sid != "" && sid != next.RoomSID {
		return next, true // another room's event: record it, fold nothing
	}
	next.RoomName = minNonEmpty(next.RoomName, RoomName(ev))

	at := ev.GetCreatedAt()
	next.FirstEventSec = minPos(next.FirstEventSec, at)
	next.LastEventSec = max(next.LastEventSec, max(at, 0))
	if r := ev.GetRoom(); r != nil {
		if ms := r.GetCreationTimeMs(); ms > 0 {
			next.CreatedMs = minPos(next.CreatedMs, ms)
		} else {
			next.CreatedSec = minPos(next.CreatedSec, r.GetCreationTime())
		}
	}

	switch ev.GetEvent() {
	case EventRoomStarted:
		next.foldRoomStarted(at)
	case EventRoomFinished:
		next.RoomFinished = true
		next.FinishedSec = minPos(next.FinishedSec, at)
		next.EndReason = max(next.EndReason, int32(ev.GetRoomEndReason()))
	case EventParticipantJoined, EventTrackUnpublished:
		next.foldParticipant(ev.GetParticipant(), at, nil)
	case EventTrackPublished:
		next.foldParticipant(ev.GetParticipant(), at, func(p *ParticipantState) {
			if tsid := ev.GetTrack().GetSid(); tsid != "" {
				p.Tracks = insertString(p.Tracks, tsid)
			}
		})
	case EventParticipantLeft:
		next.foldParticipant(ev.GetParticipant(), at, func(p *ParticipantState) {
			p.Left = true
			p.LeftSec = minPos(p.LeftSec, at)
			p.LeftReason = max(p.LeftReason, int32(ev.GetParticipant().GetDisconnectReason()))
		})
	case EventParticipantConnectionAborted:
		next.foldParticipant(ev.GetParticipant(), at, func(p *ParticipantState) {
			p.Aborted = true
			p.AbortReason = max(p.AbortReason, int32(ev.GetParticipant().GetDisconnectReason()))
		})
	case EventEgressStarted, EventEgressUpdated, EventEgressEnded:
		if ev.GetEgressInfo().GetEgressId() != "" {
			next.Egress = foldEgressEvent(next.Egress, ev)
		}
	case EventIngressStarted, EventIngressEnded:
		if id := ev.GetIngressInfo().GetIngressId(); id != "" {
			next.Ingress = foldIngress(next.Ingress, id, ev.GetEvent() == EventIngressStarted, ev.GetEvent() == EventIngressEnded)
		}
	case EventAgentJobPending, EventAgentJobStarted, EventAgentJobEnded:
		if ev.GetJob().GetId() != "" {
			next.Jobs = foldJob(next.Jobs, ev.GetJob(), at)
		}
	}
	return next, true
}

// foldParticipant merges the participant info of an event into the entry of
// its SID (created if missing) and then runs extra on it. It copies the
// Participants slice first, so the state Apply was given is never modified.
func (s *State) foldParticipant(info *livekit.ParticipantInfo, at int64, extra func(*ParticipantState)) {
	psid := info.GetSid()
	if psid == "" {
		return
	}
	ps, i, _ := upsert(s.Participants, psid, func(p *ParticipantState) string { return p.SID },
		func() ParticipantState { return ParticipantState{SID: psid} })
	p := &ps[i]
	p.Identity = minNonEmpty(p.Identity, info.GetIdentity())
	p.Kind = max(p.Kind, int32(info.GetKind()))
	if ms := info.GetJoinedAtMs(); ms > 0 {
		p.JoinMs = minPos(p.JoinMs, ms)
	} else {
		p.JoinSec = minPos(p.JoinSec, info.GetJoinedAt())
	}
	p.FirstSec = minPos(p.FirstSec, at)
	p.SIP.fold(info.GetAttributes(), at)
	if extra != nil {
		extra(p)
	}
	s.Participants = ps
}

func foldIngress(list []IngressState, id string, started, ended bool) []IngressState {
	out, i, _ := upsert(list, id, func(g *IngressState) string { return g.ID },
		func() IngressState { return IngressState{ID: id} })
	out[i].Started = out[i].Started || started
	out[i].Ended = out[i].Ended || ended
	return out
}

// Expire closes a session that never got room_finished, with disposition
// "expired". endedAt is chosen by the caller (the last event time, see
// LastEventTime, or its own clock); a zero endedAt means the last event time.
// A later call replaces the end time and reason of an earlier one. A state
// that already saw room_finished is returned unchanged, and a room_finished
// applied after Expire takes precedence over the expiry.
func Expire(s State, endedAt time.Time, reason string) State {
	if s.RoomFinished {
		return s
	}
	ms := endedAt.UnixMilli()
	if endedAt.IsZero() {
		ms = s.LastEventSec * 1000
	}
	s.Expired = true
	s.ExpiredMs = ms
	s.ExpireReason = reason
	return s
}

// startedMs is the room start in unix milliseconds (0: unknown).
func (s State) startedMs() int64 {
	switch {
	case s.CreatedMs > 0:
		return s.CreatedMs
	case s.CreatedSec > 0:
		return s.CreatedSec * 1000
	default:
		return s.FirstEventSec * 1000
	}
}

// joinedMs is the participant's join time in unix milliseconds.
func (p ParticipantState) joinedMs(roomStartMs int64) int64 {
	switch {
	case p.JoinMs > 0:
		return p.JoinMs
	case p.JoinSec > 0:
		return p.JoinSec * 1000
	case p.FirstSec > 0:
		return p.FirstSec * 1000
	default:
		return roomStartMs
	}
}

// humanKind reports whether a participant kind counts for the disposition:
// every kind but agent, egress and ingress.
func humanKind(k int32) bool {
	switch livekit.ParticipantInfo_Kind(k) {
	case livekit.ParticipantInfo_AGENT, livekit.ParticipantInfo_EGRESS, livekit.ParticipantInfo_INGRESS:
		return false
	}
	return true
}

// Session builds the API/report view of the state: an ended view (EndedAt and
// Disposition set) when room_finished was applied or the session was expired,
// an active view otherwise. See the package documentation for the definitions.
func (s State) Session() Session {
	startMs := s.startedMs()
	lastMs := s.LastEventSec * 1000
	if lastMs == 0 {
		lastMs = startMs
	}
	ended := s.RoomFinished || s.Expired
	refMs := lastMs
	switch {
	case s.RoomFinished:
		if s.FinishedSec > 0 {
			refMs = s.FinishedSec * 1000
		}
	case s.Expired:
		refMs = s.ExpiredMs
	}
	// Event times are whole seconds while the creation time has
	// milliseconds: the end is never before the start.
	refMs = max(refMs, startMs)

	out := Session{
		SessionID:                s.SessionID,
		RoomName:                 s.RoomName,
		RoomSID:                  s.RoomSID,
		BelugaSessionID:          s.BelugaSessionID,
		Unmapped:                 s.Unmapped,
		StartedAt:                msTime(startMs),
		DurationSeconds:          msSeconds(refMs - startMs),
		ParticipantSecondsByKind: map[string]float64{},
		Participants:             make([]Participant, 0, len(s.Participants)),
		EventsApplied:            s.EventsApplied,
	}
	out.APIKey, out.Project = s.APIKey, s.Project
	if s.Expired && !s.RoomFinished {
		out.ExpireReason = s.ExpireReason
	}
	if ended {
		t := msTime(refMs)
		out.EndedAt = &t
	}
	if s.RoomFinished {
		out.EndReason = endReasonName(s.EndReason)
	}
	out.Recordings = s.recordings()
	out.Anomalies = s.anomalies(ended)

	var totalMs int64
	byKindMs := map[string]int64{}
	humans, humansJoined, humansAborted := 0, 0, 0
	var lastCall unansweredCall
	for _, p := range s.Participants {
		joined := p.joinedMs(startMs)
		vp := Participant{
			SID:      p.SID,
			Identity: p.Identity,
			Kind:     kindName(p.Kind),
			JoinedAt: msTime(joined),
		}
		var ms, endMs int64 // endMs: where its time runs to (0: aborted)
		switch {
		case p.Left:
			left := refMs
			if p.LeftSec > 0 {
				left = p.LeftSec * 1000
			}
			// Leave times are whole seconds, joins have milliseconds: a
			// participant never leaves before it joined.
			left = max(left, joined)
			t := msTime(left)
			vp.State, vp.LeftAt = ParticipantLeft, &t
			vp.DisconnectReason = disconnectReasonName(p.LeftReason)
			ms, endMs = left-joined, left
		case p.Aborted:
			vp.State = ParticipantAborted
			vp.DisconnectReason = disconnectReasonName(p.AbortReason)
		case ended:
			left := max(refMs, joined)
			t := msTime(left)
			vp.State, vp.LeftAt = ParticipantLeft, &t
			ms, endMs = left-joined, left
		default:
			vp.State = ParticipantActive
			ms, endMs = refMs-joined, refMs
		}
		if call, talkMs, ok := p.sipCall(joined, endMs, ended); ok {
			// A SIP call counts from its answer, not from its ringing.
			vp.Sip, ms = call, talkMs
		}
		ms = max(ms, 0)
		vp.Seconds = msSeconds(ms)
		totalMs += ms
		byKindMs[vp.Kind] += ms
		if humanKind(p.Kind) {
			humans++
			switch {
			case vp.Sip != nil && vp.Sip.Outcome != SIPAnswered:
				lastCall = lastCall.later(vp, joined)
			case vp.Sip != nil || vp.State != ParticipantAborted:
				humansJoined++
			default:
				humansAborted++
			}
		}
		out.Participants = append(out.Participants, vp)
	}
	out.ParticipantSeconds = msSeconds(totalMs)
	out.AgentJobs = agentJobs(s.Jobs)
	for k, ms := range byKindMs {
		out.ParticipantSecondsByKind[k] = msSeconds(ms)
	}
	sort.Slice(out.Participants, func(i, j int) bool {
		a, b := out.Participants[i], out.Participants[j]
		if !a.JoinedAt.Equal(b.JoinedAt) {
			return a.JoinedAt.Before(b.JoinedAt)
		}
		return a.SID < b.SID
	})

	switch {
	case s.RoomFinished && humansJoined > 0:
		out.Disposition = DispositionCompleted
	case s.RoomFinished && lastCall.sid != "" && humansAborted == 0:
		// Only SIP calls, none answered: how the last one ended.
		out.Disposition = sipDisposition(lastCall.outcome)
	case s.RoomFinished && humans > 0:
		out.Disposition = DispositionConnectionFailed
	case s.RoomFinished:
		out.Disposition = DispositionNoShow
	case s.Expired:
		out.Disposition = DispositionExpired
	}
	return out
}

// upsert returns a copy of list (sorted by id) holding an entry for id,
// made by fresh when missing, and that entry's index: the copy-on-write
// step of every per-id fold, so the state Apply was given is never
// modified.
func upsert[T any](list []T, id string, idOf func(*T) string, fresh func() T) (out []T, i int, created bool) {
	i = sort.Search(len(list), func(i int) bool { return idOf(&list[i]) >= id })
	created = i == len(list) || idOf(&list[i]) != id
	out = make([]T, 0, len(list)+1)
	out = append(out, list[:i]...)
	if created {
		out = append(out, fresh())
	}
	return append(out, list[i:]...), i, created
}

// insertString returns a new sorted slice with v added (or a copy-free s when
// v is already present). It never writes into s's backing array.
func insertString(s []string, v string) []string {
	i := sort.SearchStrings(s, v)
	if i < len(s) && s[i] == v {
		return s
	}
	out := make([]string, 0, len(s)+1)
	out = append(out, s[:i]...)
	out = append(out, v)
	return append(out, s[i:]...)
}

// minPos is the minimum of the positive values among a and b (0 if none).
func minPos(a, b int64) int64 {
	switch {
	case b <= 0:
		return a
	case a <= 0:
		return b
	default:
		return min(a, b)
	}
}

// minNonEmpty is the smallest non-empty string among a and b ("" if none).
func minNonEmpty(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	default:
		return min(a, b)
	}
}

func secTime(sec int64) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func msSeconds(ms int64) float64 {
	if ms <= 0 {
		return 0
	}
	return float64(ms) / 1000
}

// ActiveParticipants counts participants the Session view shows as active,
// without building the view (the processor calls it on every event).
func (s State) ActiveParticipants() int {
	if s.RoomFinished || s.Expired {
		return 0
	}
	n := 0
	for _, p := range s.Participants {
		if !p.Left && !p.Aborted {
			n++
		}
	}
	return n
}
