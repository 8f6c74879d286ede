package lifecycle

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// t0 is the base unix time (seconds) of the table tests.
const t0 = int64(1_700_000_000)

const (
	roomSID  = "RM_tbl"
	roomName = "room-tbl"
)

// at is t0+sec as a UTC time; atMs is t0 (in ms) + ms.
func at(sec int64) time.Time    { return time.Unix(t0+sec, 0).UTC() }
func atMs(ms int64) time.Time   { return time.UnixMilli(t0*1000 + ms).UTC() }
func tp(t time.Time) *time.Time { return &t }

type evOpt func(*livekit.WebhookEvent)

// mk builds an event of room roomSID at t0+sec carrying a bare room (sid, name).
func mk(id, name string, sec int64, opts ...evOpt) *livekit.WebhookEvent {
	ev := &livekit.WebhookEvent{
		Id:        id,
		Event:     name,
		CreatedAt: t0 + sec,
		Room:      &livekit.Room{Sid: roomSID, Name: roomName},
	}
	for _, o := range opts {
		o(ev)
	}
	return ev
}

// created sets the room creation time to t0 (ms) + ms, with both fields.
func created(ms int64) evOpt {
	return func(ev *livekit.WebhookEvent) {
		ev.Room.CreationTimeMs = t0*1000 + ms
		ev.Room.CreationTime = (t0*1000 + ms) / 1000
		ev.Room.TurnPassword = "secret"
	}
}

// createdSec sets only the room creation time in seconds.
func createdSec(sec int64) evOpt {
	return func(ev *livekit.WebhookEvent) { ev.Room.CreationTime = t0 + sec }
}

// part sets the participant; joinMs < 0 means no join time in the payload.
func part(sid, identity string, kind livekit.ParticipantInfo_Kind, joinMs int64) evOpt {
	return func(ev *livekit.WebhookEvent) {
		p := &livekit.ParticipantInfo{Sid: sid, Identity: identity, Kind: kind}
		if joinMs >= 0 {
			p.JoinedAtMs = t0*1000 + joinMs
			p.JoinedAt = (t0*1000 + joinMs) / 1000
		}
		ev.Participant = p
	}
}

// partSec sets a participant with a join time in seconds only.
func partSec(sid, identity string, kind livekit.ParticipantInfo_Kind, joinSec int64) evOpt {
	return func(ev *livekit.WebhookEvent) {
		ev.Participant = &livekit.ParticipantInfo{Sid: sid, Identity: identity, Kind: kind, JoinedAt: t0 + joinSec}
	}
}

func reason(r livekit.DisconnectReason) evOpt {
	return func(ev *livekit.WebhookEvent) { ev.Participant.DisconnectReason = r }
}

func endReason(r livekit.RoomEndReason) evOpt {
	return func(ev *livekit.WebhookEvent) { ev.RoomEndReason = r }
}

func track(sid string) evOpt {
	return func(ev *livekit.WebhookEvent) { ev.Track = &livekit.TrackInfo{Sid: sid} }
}

// egress makes the event an egress event (no room, egress info only).
func egress(id string) evOpt {
	return func(ev *livekit.WebhookEvent) {
		ev.Room = nil
		ev.EgressInfo = &livekit.EgressInfo{EgressId: id, RoomId: roomSID, RoomName: roomName}
	}
}

// ingress makes the event an ingress event (no room, ingress info only).
func ingress(id string) evOpt {
	return func(ev *livekit.WebhookEvent) {
		ev.Room = nil
		ev.IngressInfo = &livekit.IngressInfo{IngressId: id, RoomName: roomName}
	}
}

func pv(sid, identity, kind, state string, joined time.Time, left *time.Time, secs float64, dr string) Participant {
	return Participant{SID: sid, Identity: identity, Kind: kind, State: state, JoinedAt: joined, LeftAt: left, Seconds: secs, DisconnectReason: dr}
}

const (
	std   = livekit.ParticipantInfo_STANDARD
	agent = livekit.ParticipantInfo_AGENT
	sip   = livekit.ParticipantInfo_SIP
	egk   = livekit.ParticipantInfo_EGRESS
	ingk  = livekit.ParticipantInfo_INGRESS
)

// Events shared by several cases: a plain completed room.
var (
	eStarted  = mk("EV_start000001", EventRoomStarted, 0, created(250))
	eJoined   = mk("EV_join0000001", EventParticipantJoined, 1, part("PA_alice", "alice", std, 1500))
	eLeft     = mk("EV_left0000001", EventParticipantLeft, 61, part("PA_alice", "alice", std, 1500), reason(livekit.DisconnectReason_CLIENT_INITIATED))
	eFinished = mk("EV_fin00000001", EventRoomFinished, 81)
)

func basicSession() Session {
	return Session{
		SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
		StartedAt: atMs(250), EndedAt: tp(at(81)), DurationSeconds: 80.75,
		ParticipantSeconds: 59.5, ParticipantSecondsByKind: map[string]float64{"standard": 59.5},
		EndReason: "", Disposition: DispositionCompleted,
		Participants: []Participant{
			pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(at(61)), 59.5, "CLIENT_INITIATED"),
		},
		EventsApplied: 4,
	}
}

type tableCase struct {
	name  string
	setup func(State) State // optional, before events
	evs   []*livekit.WebhookEvent
	post  func(State) State // optional, after events
	want  Session
}

func tableCases() []tableCase {
	return []tableCase{
		{
			name: "completed basic",
			evs:  []*livekit.WebhookEvent{eStarted, eJoined, eLeft, eFinished},
			want: basicSession(),
		},
		{
			name: "duplicates",
			evs: []*livekit.WebhookEvent{
				eStarted, eJoined, eJoined, proto.Clone(eJoined).(*livekit.WebhookEvent),
				eLeft, eStarted, eLeft, eFinished, proto.Clone(eFinished).(*livekit.WebhookEvent), eJoined,
			},
			want: basicSession(),
		},
		{
			name: "participant_left before participant_joined",
			evs:  []*livekit.WebhookEvent{eStarted, eLeft, eJoined, eFinished},
			want: basicSession(),
		},
		{
			name: "participant_left before participant_joined, active view",
			evs:  []*livekit.WebhookEvent{eStarted, eLeft, eJoined},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), DurationSeconds: 60.75,
				ParticipantSeconds: 59.5, ParticipantSecondsByKind: map[string]float64{"standard": 59.5},
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(at(61)), 59.5, "CLIENT_INITIATED"),
				},
				EventsApplied: 3,
			},
		},
		{
			name: "fully reversed order",
			evs:  []*livekit.WebhookEvent{eFinished, eLeft, eJoined, eStarted},
			want: basicSession(),
		},
		{
			name: "room_finished before late participant and egress events",
			evs: []*livekit.WebhookEvent{
				eStarted,
				eJoined,
				mk("EV_egj0000001", EventParticipantJoined, 2, part("PA_eg", "EG_rec", egk, 2000)),
				mk("EV_egs0000001", EventEgressStarted, 2, egress("EG_rec")),
				mk("EV_fin0000001", EventRoomFinished, 50, endReason(livekit.RoomEndReason_ROOM_END_API_DELETE)),
				// late: alice was still active at room end; her left sets her left time
				mk("EV_left000001", EventParticipantLeft, 50, part("PA_alice", "alice", std, 1500), reason(livekit.DisconnectReason_ROOM_DELETED)),
				mk("EV_egl0000001", EventParticipantLeft, 52, part("PA_eg", "EG_rec", egk, 2000)),
				mk("EV_ege0000001", EventEgressEnded, 53, egress("EG_rec")),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(50)), DurationSeconds: 49.75,
				ParticipantSeconds:       98.5,
				ParticipantSecondsByKind: map[string]float64{"standard": 48.5, "egress": 50},
				EndReason:                "ROOM_END_API_DELETE", Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(at(50)), 48.5, "ROOM_DELETED"),
					pv("PA_eg", "EG_rec", "egress", ParticipantLeft, atMs(2000), tp(at(52)), 50, ""),
				},
				EventsApplied: 8,
				// egress_ended without a status: terminal by its name, ended at its createdAt
				Recordings: []Recording{{EgressID: "EG_rec", Status: "EGRESS_STARTING", EndedAt: tp(at(53)), Files: []RecordingFile{}}},
			},
		},
		{
			name: "room_started after room_finished does not unfinish",
			evs: []*livekit.WebhookEvent{
				mk("EV_join000001", EventParticipantJoined, 1, part("PA_alice", "alice", std, 1000), created(250)),
				mk("EV_left000001", EventParticipantLeft, 10, part("PA_alice", "alice", std, 1000)),
				mk("EV_fin0000001", EventRoomFinished, 30),
				mk("EV_start00001", EventRoomStarted, 31, created(250)),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(30)), DurationSeconds: 29.75,
				ParticipantSeconds: 9, ParticipantSecondsByKind: map[string]float64{"standard": 9},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1000), tp(at(10)), 9, ""),
				},
				EventsApplied: 4,
				Anomalies:     []Anomaly{{Code: AnomalyRoomStartedAfterFinished, Count: 1}},
			},
		},
		{
			name: "no room_started and no creation time: earliest createdAt, joinedAt in seconds",
			evs: []*livekit.WebhookEvent{
				mk("EV_join000001", EventParticipantJoined, 5, partSec("PA_alice", "alice", std, 4)),
				mk("EV_left000001", EventParticipantLeft, 20, partSec("PA_alice", "alice", std, 4)),
				mk("EV_fin0000001", EventRoomFinished, 40),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: at(5), EndedAt: tp(at(40)), DurationSeconds: 35,
				ParticipantSeconds: 16, ParticipantSecondsByKind: map[string]float64{"standard": 16},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, at(4), tp(at(20)), 16, ""),
				},
				EventsApplied: 3,
			},
		},
		{
			name: "no room_started, creation time (seconds) carried by participant events",
			evs: []*livekit.WebhookEvent{
				mk("EV_join000001", EventParticipantJoined, 5, part("PA_alice", "alice", std, 5000), createdSec(2)),
				mk("EV_left000001", EventParticipantLeft, 20, part("PA_alice", "alice", std, 5000), createdSec(2)),
				mk("EV_fin0000001", EventRoomFinished, 40, createdSec(2)),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: at(2), EndedAt: tp(at(40)), DurationSeconds: 38,
				ParticipantSeconds: 15, ParticipantSecondsByKind: map[string]float64{"standard": 15},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, at(5), tp(at(20)), 15, ""),
				},
				EventsApplied: 3,
			},
		},
		{
			name: "no participant_left: closed at room end",
			evs: []*livekit.WebhookEvent{
				eStarted, eJoined,
				mk("EV_agj0000001", EventParticipantJoined, 2, part("PA_agent", "agent-1", agent, 2000)),
				mk("EV_fin0000001", EventRoomFinished, 100),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(100)), DurationSeconds: 99.75,
				ParticipantSeconds:       196.5,
				ParticipantSecondsByKind: map[string]float64{"standard": 98.5, "agent": 98},
				Disposition:              DispositionCompleted,
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(at(100)), 98.5, ""),
					pv("PA_agent", "agent-1", "agent", ParticipantLeft, atMs(2000), tp(at(100)), 98, ""),
				},
				EventsApplied: 4,
				Anomalies:     []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 2}},
			},
		},
		{
			name: "connection aborted without join: connection_failed",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_abort00001", EventParticipantConnectionAborted, 5, part("PA_bob", "bob", std, 4000), reason(livekit.DisconnectReason_CONNECTION_TIMEOUT)),
				mk("EV_fin0000001", EventRoomFinished, 30),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(30)), DurationSeconds: 29.75,
				ParticipantSeconds: 0, ParticipantSecondsByKind: map[string]float64{"standard": 0},
				Disposition: DispositionConnectionFailed,
				Participants: []Participant{
					pv("PA_bob", "bob", "standard", ParticipantAborted, atMs(4000), nil, 0, "CONNECTION_TIMEOUT"),
				},
				EventsApplied: 3,
			},
		},
		{
			name: "aborted after join stays aborted; joined+aborted+left: left wins",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_bobj000001", EventParticipantJoined, 3, part("PA_bob", "bob", std, 3000)),
				mk("EV_boba000001", EventParticipantConnectionAborted, 4, part("PA_bob", "bob", std, 3000)),
				mk("EV_carj000001", EventParticipantJoined, 5, part("PA_carol", "carol", std, 5000)),
				mk("EV_cara000001", EventParticipantConnectionAborted, 6, part("PA_carol", "carol", std, 5000), reason(livekit.DisconnectReason_JOIN_FAILURE)),
				mk("EV_carl000001", EventParticipantLeft, 25, part("PA_carol", "carol", std, 5000), reason(livekit.DisconnectReason_CLIENT_INITIATED)),
				mk("EV_fin0000001", EventRoomFinished, 30),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(30)), DurationSeconds: 29.75,
				ParticipantSeconds: 20, ParticipantSecondsByKind: map[string]float64{"standard": 20},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_bob", "bob", "standard", ParticipantAborted, atMs(3000), nil, 0, ""),
					pv("PA_carol", "carol", "standard", ParticipantLeft, atMs(5000), tp(at(25)), 20, "CLIENT_INITIATED"),
				},
				EventsApplied: 7,
			},
		},
		{
			name: "reconnect with same identity and new sid; old left after new joined",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_a1j0000001", EventParticipantJoined, 1, part("PA_a1", "alice", std, 1000)),
				mk("EV_a2j0000001", EventParticipantJoined, 30, part("PA_a2", "alice", std, 30000)),
				mk("EV_a1l0000001", EventParticipantLeft, 31, part("PA_a1", "alice", std, 1000), reason(livekit.DisconnectReason_DUPLICATE_IDENTITY)),
				mk("EV_a2l0000001", EventParticipantLeft, 60, part("PA_a2", "alice", std, 30000), reason(livekit.DisconnectReason_CLIENT_INITIATED)),
				mk("EV_fin0000001", EventRoomFinished, 80),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(80)), DurationSeconds: 79.75,
				ParticipantSeconds: 60, ParticipantSecondsByKind: map[string]float64{"standard": 60},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_a1", "alice", "standard", ParticipantLeft, atMs(1000), tp(at(31)), 30, "DUPLICATE_IDENTITY"),
					pv("PA_a2", "alice", "standard", ParticipantLeft, atMs(30000), tp(at(60)), 30, "CLIENT_INITIATED"),
				},
				EventsApplied: 6,
			},
		},
		{
			name: "agents, SIP callers, egress, ingress, connector and unknown kinds",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_sipj000001", EventParticipantJoined, 1, part("PA_sip", "sip_+15550100", sip, 1000)),
				mk("EV_agj0000001", EventParticipantJoined, 2, part("PA_agent", "agent-1", agent, 2000)),
				mk("EV_egj0000001", EventParticipantJoined, 3, part("PA_eg", "EG_1", egk, 3000)),
				mk("EV_inj0000001", EventParticipantJoined, 4, part("PA_in", "IN_1", ingk, 4000)),
				mk("EV_ins0000001", EventIngressStarted, 4, ingress("IN_1")),
				mk("EV_cnj0000001", EventParticipantJoined, 5, part("PA_cn", "conn", livekit.ParticipantInfo_CONNECTOR, 5000)),
				mk("EV_unj0000001", EventParticipantJoined, 6, part("PA_un", "weird", livekit.ParticipantInfo_Kind(42), 6000)),
				mk("EV_sipl000001", EventParticipantLeft, 21, part("PA_sip", "sip_+15550100", sip, 1000), reason(livekit.DisconnectReason_USER_UNAVAILABLE)),
				mk("EV_ine0000001", EventIngressEnded, 30, ingress("IN_1")),
				mk("EV_fin0000001", EventRoomFinished, 40, endReason(livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT)),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(40)), DurationSeconds: 39.75,
				ParticipantSeconds: 20 + 38 + 37 + 36 + 35 + 34,
				ParticipantSecondsByKind: map[string]float64{
					"sip": 20, "agent": 38, "egress": 37, "ingress": 36, "connector": 35, "unknown": 34,
				},
				EndReason: "ROOM_END_IDLE_TIMEOUT", Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_sip", "sip_+15550100", "sip", ParticipantLeft, atMs(1000), tp(at(21)), 20, "USER_UNAVAILABLE"),
					pv("PA_agent", "agent-1", "agent", ParticipantLeft, atMs(2000), tp(at(40)), 38, ""),
					pv("PA_eg", "EG_1", "egress", ParticipantLeft, atMs(3000), tp(at(40)), 37, ""),
					pv("PA_in", "IN_1", "ingress", ParticipantLeft, atMs(4000), tp(at(40)), 36, ""),
					pv("PA_cn", "conn", "connector", ParticipantLeft, atMs(5000), tp(at(40)), 35, ""),
					pv("PA_un", "weird", "unknown", ParticipantLeft, atMs(6000), tp(at(40)), 34, ""),
				},
				EventsApplied: 11,
				Anomalies:     []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 5}},
			},
		},
		{
			name: "only an agent: no_show",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_agj0000001", EventParticipantJoined, 1, part("PA_agent", "agent-1", agent, 1000)),
				mk("EV_agl0000001", EventParticipantLeft, 20, part("PA_agent", "agent-1", agent, 1000)),
				mk("EV_fin0000001", EventRoomFinished, 40),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(40)), DurationSeconds: 39.75,
				ParticipantSeconds: 19, ParticipantSecondsByKind: map[string]float64{"agent": 19},
				Disposition: DispositionNoShow,
				Participants: []Participant{
					pv("PA_agent", "agent-1", "agent", ParticipantLeft, atMs(1000), tp(at(20)), 19, ""),
				},
				EventsApplied: 4,
			},
		},
		{
			name: "empty room: no_show",
			evs:  []*livekit.WebhookEvent{eStarted, mk("EV_fin0000001", EventRoomFinished, 20, endReason(livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT))},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(20)), DurationSeconds: 19.75,
				ParticipantSecondsByKind: map[string]float64{}, EndReason: "ROOM_END_IDLE_TIMEOUT",
				Disposition: DispositionNoShow, Participants: []Participant{}, EventsApplied: 2,
			},
		},
		{
			name: "only aborted standard participants (agent joined): connection_failed",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_agj0000001", EventParticipantJoined, 1, part("PA_agent", "agent-1", agent, 1000)),
				mk("EV_ab10000001", EventParticipantConnectionAborted, 3, part("PA_b1", "bob", std, -1)),
				mk("EV_ab20000001", EventParticipantConnectionAborted, 8, part("PA_b2", "bob", std, -1)),
				mk("EV_agl0000001", EventParticipantLeft, 20, part("PA_agent", "agent-1", agent, 1000)),
				mk("EV_fin0000001", EventRoomFinished, 40),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(40)), DurationSeconds: 39.75,
				ParticipantSeconds: 19, ParticipantSecondsByKind: map[string]float64{"agent": 19, "standard": 0},
				Disposition: DispositionConnectionFailed,
				Participants: []Participant{
					pv("PA_agent", "agent-1", "agent", ParticipantLeft, atMs(1000), tp(at(20)), 19, ""),
					pv("PA_b1", "bob", "standard", ParticipantAborted, at(3), nil, 0, ""),
					pv("PA_b2", "bob", "standard", ParticipantAborted, at(8), nil, 0, ""),
				},
				EventsApplied: 6,
			},
		},
		{
			name: "unknown room end reason number gives empty end_reason",
			evs:  []*livekit.WebhookEvent{eStarted, eJoined, eLeft, mk("EV_fin00000001", EventRoomFinished, 81, endReason(livekit.RoomEndReason(99)))},
			want: basicSession(),
		},
		{
			name: "active view: active participant runs to last event time; tracks and unknown events",
			setup: func(s State) State {
				s.BelugaSessionID = "bel_9"
				s.Unmapped = true
				return s
			},
			evs: []*livekit.WebhookEvent{
				eStarted, eJoined,
				mk("EV_bobj000001", EventParticipantJoined, 10, part("PA_bob", "bob", std, 10000)),
				mk("EV_bobl000001", EventParticipantLeft, 20, part("PA_bob", "bob", std, 10000)),
				mk("EV_trp0000001", EventTrackPublished, 22, part("PA_alice", "alice", std, 1500), track("TR_a")),
				mk("EV_tru0000001", EventTrackUnpublished, 24, part("PA_alice", "alice", std, 1500), track("TR_a")),
				mk("EV_unk0000001", "room_metadata_changed", 25),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				BelugaSessionID: "bel_9", Unmapped: true,
				StartedAt: atMs(250), DurationSeconds: 24.75,
				ParticipantSeconds: 33.5, ParticipantSecondsByKind: map[string]float64{"standard": 33.5},
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantActive, atMs(1500), nil, 23.5, ""),
					pv("PA_bob", "bob", "standard", ParticipantLeft, atMs(10000), tp(at(20)), 10, ""),
				},
				EventsApplied: 7,
			},
		},
		{
			name: "join time falls back to the earliest event about the participant",
			evs: []*livekit.WebhookEvent{
				eStarted,
				mk("EV_join000001", EventParticipantJoined, 8, part("PA_dan", "dan", std, -1)),
				mk("EV_trp0000001", EventTrackPublished, 7, part("PA_dan", "dan", std, -1), track("TR_d")),
				mk("EV_fin0000001", EventRoomFinished, 17),
			},
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(17)), DurationSeconds: 16.75,
				ParticipantSeconds: 10, ParticipantSecondsByKind: map[string]float64{"standard": 10},
				Disposition: DispositionCompleted,
				Participants: []Participant{
					pv("PA_dan", "dan", "standard", ParticipantLeft, at(7), tp(at(17)), 10, ""),
				},
				EventsApplied: 4,
				Anomalies:     []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}},
			},
		},
		{
			name: "expire without room_finished",
			evs:  []*livekit.WebhookEvent{eStarted, eJoined},
			post: func(s State) State { return Expire(s, at(100), "max_age") },
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(100)), DurationSeconds: 99.75,
				ParticipantSeconds: 98.5, ParticipantSecondsByKind: map[string]float64{"standard": 98.5},
				Disposition:  DispositionExpired,
				ExpireReason: "max_age",
				Participants: []Participant{
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(at(100)), 98.5, ""),
				},
				EventsApplied: 2,
				Anomalies:     []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}},
			},
		},
		{
			name: "expire with zero time uses the last event time",
			evs:  []*livekit.WebhookEvent{eStarted, eJoined},
			post: func(s State) State { return Expire(s, time.Time{}, "reconciled") },
			want: Session{
				SessionID: "ses_1", RoomName: roomName, RoomSID: roomSID,
				StartedAt: atMs(250), EndedAt: tp(at(1)), DurationSeconds: 0.75,
				ParticipantSeconds: 0, ParticipantSecondsByKind: map[string]float64{"standard": 0},
				Disposition:  DispositionExpired,
				ExpireReason: "reconciled",
				Participants: []Participant{
					// Closed at the room's end, which is before its join
					// (whole-second event times): left_at is clamped to
					// joined_at, never before it.
					pv("PA_alice", "alice", "standard", ParticipantLeft, atMs(1500), tp(atMs(1500)), 0, ""),
				},
				EventsApplied: 2,
				Anomalies:     []Anomaly{{Code: AnomalyParticipantNeverLeft, Count: 1}},
			},
		},
		{
			name: "room_finished after expire wins; expire after finish is a no-op",
			evs:  []*livekit.WebhookEvent{eStarted, eJoined, eLeft},
			post: func(s State) State {
				s = Expire(s, at(500), "max_age")
				s, _ = Apply(s, eFinished)
				return Expire(s, at(900), "again")
			},
			want: basicSession(),
		},
		{
			name: "events of another room sid and without id",
			evs: []*livekit.WebhookEvent{
				eStarted, eJoined, eLeft,
				func() *livekit.WebhookEvent {
					ev := mk("EV_other000001", EventParticipantJoined, 70, part("PA_x", "x", std, 70000))
					ev.Room.Sid = "RM_other"
					return ev
				}(),
				mk("", "room_metadata_changed", 2),
				mk("", "room_metadata_changed", 2),
				eFinished,
			},
			want: func() Session {
				s := basicSession()
				s.EventsApplied = 7
				return s
			}(),
		},
	}
}

func TestSessionTable(t *testing.T) {
	for _, tc := range tableCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(roomSID, roomName)
			s.SessionID = "ses_1"
			if tc.setup != nil {
				s = tc.setup(s)
			}
			for i, ev := range tc.evs {
				seen := s.Applied(ev.GetId())
				before, _ := json.Marshal(s)
				next, applied := Apply(s, ev)
				after, _ := json.Marshal(s)
				if string(before) != string(after) {
					t.Fatalf("event %d: Apply modified its input state", i)
				}
				if applied == seen {
					t.Fatalf("event %d (%s): applied=%v but already seen=%v", i, ev.GetId(), applied, seen)
				}
				if !applied && !reflect.DeepEqual(next, s) {
					t.Fatalf("event %d: duplicate changed the state", i)
				}
				if ev.GetId() != "" && !next.Applied(ev.GetId()) {
					t.Fatalf("event %d: not recorded as applied", i)
				}
				s = next
			}
			if tc.post != nil {
				s = tc.post(s)
			}
			checkRoundTrip(t, s)
			got := s.Session()
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Fatalf("session mismatch\n got: %s\nwant: %s", g, w)
			}
			checkSessionInvariants(t, got)
		})
	}
}

func checkRoundTrip(t *testing.T, s State) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("state does not round-trip through JSON:\n%s\n%#v\n%#v", b, s, back)
	}
}

func TestStateNeverStoresSecretsOrMetadata(t *testing.T) {
	ev := mk("EV_start000001", EventRoomStarted, 0, created(0))
	ev.Room.Metadata = `{"big":"blob"}`
	ev.Room.TurnPassword = "turn-secret"
	s, _ := Apply(NewState(roomSID, roomName), ev)
	b, _ := json.Marshal(s)
	for _, bad := range []string{"turn-secret", "blob"} {
		if strings.Contains(string(b), bad) {
			t.Fatalf("state JSON contains %q: %s", bad, b)
		}
	}
}

func TestSessionJSONFieldNames(t *testing.T) {
	s := NewState(roomSID, roomName)
	for _, ev := range []*livekit.WebhookEvent{eStarted, eJoined, eLeft, eFinished} {
		s, _ = Apply(s, ev)
	}
	s.SessionID = "ses_1"
	b, err := json.Marshal(s.Session())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"session_id":"ses_1","room_name":"room-tbl","room_sid":"RM_tbl",` +
		`"started_at":"2023-11-14T22:13:20.25Z","ended_at":"2023-11-14T22:14:41Z",` +
		`"duration_seconds":80.75,"participant_seconds":59.5,"participant_seconds_by_kind":{"standard":59.5},` +
		`"end_reason":"","disposition":"completed","participants":[{"sid":"PA_alice","identity":"alice",` +
		`"kind":"standard","state":"left","joined_at":"2023-11-14T22:13:21.5Z","left_at":"2023-11-14T22:14:21Z",` +
		`"seconds":59.5,"disconnect_reason":"CLIENT_INITIATED"}],"events_applied":4}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestApplyNilAndFinished(t *testing.T) {
	s := NewState(roomSID, roomName)
	if n, ok := Apply(s, nil); ok || !reflect.DeepEqual(n, s) {
		t.Fatal("nil event must be a no-op")
	}
	if s.Finished() || s.Closed() {
		t.Fatal("new state is not finished")
	}
	s, _ = Apply(s, eFinished)
	s, _ = Apply(s, mk("EV_start000002", EventRoomStarted, 90))
	if !s.Finished() || !s.Closed() {
		t.Fatal("room_started after room_finished must not unfinish")
	}
	if got := s.LastEventTime(); !got.Equal(at(90)) {
		t.Fatalf("LastEventTime = %v", got)
	}
	if s.Applied("") {
		t.Fatal("empty id is never applied")
	}
}

func TestRoutingHelpers(t *testing.T) {
	cases := []struct {
		ev         *livekit.WebhookEvent
		sid, name  string
		when       time.Time
		kind       string
		kindSource *livekit.ParticipantInfo
	}{
		{ev: mk("EV_1", EventRoomStarted, 3), sid: roomSID, name: roomName, when: at(3)},
		{ev: mk("EV_2", EventEgressStarted, 4, egress("EG_1")), sid: roomSID, name: roomName, when: at(4)},
		{ev: mk("EV_3", EventIngressStarted, 5, ingress("IN_1")), sid: "", name: roomName, when: at(5)},
		{ev: &livekit.WebhookEvent{Event: "agent_job_started"}, sid: "", name: "", when: time.Time{}},
		{ev: nil, sid: "", name: "", when: time.Time{}},
	}
	for i, c := range cases {
		if got := RoomSID(c.ev); got != c.sid {
			t.Errorf("%d: RoomSID = %q, want %q", i, got, c.sid)
		}
		if got := RoomName(c.ev); got != c.name {
			t.Errorf("%d: RoomName = %q, want %q", i, got, c.name)
		}
		if got := EventTime(c.ev); !got.Equal(c.when) || got.Location() != time.UTC {
			t.Errorf("%d: EventTime = %v, want %v", i, got, c.when)
		}
	}
	kinds := map[livekit.ParticipantInfo_Kind]string{
		std: "standard", agent: "agent", sip: "sip", egk: "egress", ingk: "ingress",
		livekit.ParticipantInfo_CONNECTOR: "connector", livekit.ParticipantInfo_BRIDGE: "bridge",
		livekit.ParticipantInfo_Kind(77): "unknown",
	}
	for k, want := range kinds {
		if got := Kind(&livekit.ParticipantInfo{Kind: k}); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
	if Kind(nil) != KindUnknown {
		t.Error("Kind(nil) must be unknown")
	}
}

func TestActiveParticipantsMatchesView(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		s := NewState("RM_0", "room-0")
		for _, ev := range generate(seed).events {
			if RoomSID(ev) != "RM_0" {
				continue
			}
			s, _ = Apply(s, ev)
			n := 0
			for _, p := range s.Session().Participants {
				if p.State == ParticipantActive {
					n++
				}
			}
			if got := s.ActiveParticipants(); got != n {
				t.Fatalf("seed %d: ActiveParticipants %d, view %d", seed, got, n)
			}
		}
	}
}
