package livekitwebhook

import (
	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// What the receiver reads off a webhook event wherever it handles one
// (intake, processing, the DLQ, the console): decoding, its name, its span
// attributes, and its ids clipped for logs.

var decodeOpts = protojson.UnmarshalOptions{DiscardUnknown: true}

// maxIDLen bounds the ids LiveKit generates (an "EV_", "RM_" or "PA_"
// prefix and 12 characters). Names (room names, identities, metadata) are
// chosen by LiveKit's users and taken at any length: the engine bounds the
// keys and subjects made of them (engine.Key, engine.Token).
const maxIDLen = 256

// clipID keeps an id refused as too long out of logs and spans.
func clipID(id string) string {
	if len(id) > maxIDLen {
		return id[:maxIDLen] + "..."
	}
	return id
}

func eventName(ev *livekit.WebhookEvent) string {
	if ev == nil {
		return ""
	}
	return ev.Event
}

// eventAttrs are the span attributes of an event. Never metadata, never
// turnPassword.
func eventAttrs(ev *livekit.WebhookEvent) []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attribute.String(attrEvent, ev.Event),
		attribute.String(attrEventID, clipID(ev.Id)),
	}
	if n := lifecycle.RoomName(ev); n != "" {
		kv = append(kv, attribute.String(attrRoomName, n))
	}
	if s := lifecycle.RoomSID(ev); s != "" {
		kv = append(kv, attribute.String(attrRoomSID, clipID(s)))
	}
	if p := ev.Participant; p != nil {
		kv = append(kv,
			attribute.String(attrPIdent, p.Identity),
			attribute.String(attrPSID, clipID(p.Sid)),
			attribute.String(attrPKind, lifecycle.Kind(p)))
	}
	return kv
}
