package livekitwebhooktest

import (
	"crypto/rand"
	"math/big"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewID returns a fresh id of LiveKit's form: prefix ("EV_", "RM_", "PA_",
// "TR_", "EG_") and 12 base62 characters.
func NewID(prefix string) string {
	b := make([]byte, 12)
	n := big.NewInt(int64(len(base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, n)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = base62[v.Int64()]
	}
	return prefix + string(b)
}

// RoomEvent is a room event (room_started, room_finished) as LiveKit sends
// it: a fresh EV_ id, createdAt now (Unix seconds) and the room.
func RoomEvent(event, roomName, roomSID string) *livekit.WebhookEvent {
	now := time.Now()
	return &livekit.WebhookEvent{
		Event:     event,
		Id:        NewID("EV_"),
		CreatedAt: now.Unix(),
		Room:      &livekit.Room{Sid: roomSID, Name: roomName, CreationTime: now.Unix(), CreationTimeMs: now.UnixMilli()},
	}
}

// ParticipantEvent is a participant event (participant_joined,
// participant_left, participant_connection_aborted) for p in the room, as
// LiveKit sends it: p's state follows the event and an active participant
// gets joinedAt/joinedAtMs of now when p has none.
func ParticipantEvent(event, roomName, roomSID string, p *livekit.ParticipantInfo) *livekit.WebhookEvent {
	ev := RoomEvent(event, roomName, roomSID)
	ev.Room.CreationTime, ev.Room.CreationTimeMs = 0, 0 // participant events carry a partial room
	p = cloneParticipant(p)
	switch event {
	case "participant_left", "participant_connection_aborted":
		p.State = livekit.ParticipantInfo_DISCONNECTED
	default:
		p.State = livekit.ParticipantInfo_ACTIVE
	}
	if p.JoinedAtMs == 0 && event == "participant_joined" {
		now := time.Now()
		p.JoinedAt, p.JoinedAtMs = now.Unix(), now.UnixMilli()
	}
	ev.Participant = p
	return ev
}

func cloneParticipant(p *livekit.ParticipantInfo) *livekit.ParticipantInfo {
	if p == nil {
		return &livekit.ParticipantInfo{Sid: NewID("PA_")}
	}
	c := proto.Clone(p).(*livekit.ParticipantInfo)
	if c.Sid == "" {
		c.Sid = NewID("PA_")
	}
	return c
}
