package livekitwebhooktest

import (
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// EgressEvent is an egress event (egress_started, egress_updated,
// egress_ended) as livekit-server sends it: a fresh EV_ id, createdAt now
// (Unix seconds), no room, and a copy of info, which names the room by
// RoomId (its sid) and RoomName. Fill info as livekit/egress does: Status,
// StartedAt, UpdatedAt and, once ended, EndedAt (Unix nanoseconds), Error,
// and FileResults (older egress versions: the deprecated Result File only).
func EgressEvent(event string, info *livekit.EgressInfo) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{
		Event:      event,
		Id:         NewID("EV_"),
		CreatedAt:  time.Now().Unix(),
		EgressInfo: proto.Clone(info).(*livekit.EgressInfo),
	}
}
