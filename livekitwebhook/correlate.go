package livekitwebhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// RoomInfo is what a Correlator sees of a room.
type RoomInfo struct {
	Name     string
	SID      string
	Metadata string // the room's metadata as LiveKit sent it (often JSON)
}

// Correlator maps a room to the backend session it belongs to. ok=false
// means "no mapping": the room is still tracked, under its name, and flagged
// unmapped. An error is retried like any processing failure. A session id
// of any length is taken (the store keys it by a bounded form).
type Correlator interface {
	Correlate(ctx context.Context, room RoomInfo) (sessionID string, ok bool, err error)
}

// CorrelatorFunc adapts a function to Correlator.
type CorrelatorFunc func(ctx context.Context, room RoomInfo) (string, bool, error)

// Correlate calls f.
func (f CorrelatorFunc) Correlate(ctx context.Context, room RoomInfo) (string, bool, error) {
	return f(ctx, room)
}

var (
	_ Correlator = CorrelatorFunc(nil)
	_ Correlator = roomNameCorrelator{}
	_ Correlator = metadataCorrelator{}
	_ Correlator = templateCorrelator{}
)

// RoomNameCorrelator uses the room name as the session id (the default, as
// in LiveKit's integration guide).
func RoomNameCorrelator() Correlator { return roomNameCorrelator{} }

type roomNameCorrelator struct{}

// Correlate maps a room to its name.
func (roomNameCorrelator) Correlate(_ context.Context, r RoomInfo) (string, bool, error) {
	return r.Name, r.Name != "", nil
}

// MetadataCorrelator reads the session id from a top-level key of the room's
// JSON metadata (a string or a number).
func MetadataCorrelator(key string) Correlator { return metadataCorrelator{key: key} }

type metadataCorrelator struct{ key string }

// Correlate reads the session id from the metadata key.
func (m metadataCorrelator) Correlate(_ context.Context, r RoomInfo) (string, bool, error) {
	if r.Metadata == "" {
		return "", false, nil
	}
	var md map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Metadata), &md); err != nil {
		return "", false, nil // metadata that is not JSON maps to nothing
	}
	raw, ok := md[m.key]
	if !ok {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != "", nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true, nil
	}
	return "", false, nil
}

// TemplateCorrelator extracts the session id from room names shaped like the
// template, whose single "{session}" marks the id: "call-{session}" maps
// room "call-42" to "42" and room "lobby" to nothing.
func TemplateCorrelator(template string) (Correlator, error) {
	before, after, ok := strings.Cut(template, "{session}")
	if !ok || strings.Contains(after, "{session}") {
		return nil, fmt.Errorf("correlation template %q needs exactly one {session}", template)
	}
	return templateCorrelator{prefix: before, suffix: after}, nil
}

type templateCorrelator struct{ prefix, suffix string }

// Correlate extracts the session id from a room name matching the template.
func (t templateCorrelator) Correlate(_ context.Context, r RoomInfo) (string, bool, error) {
	n := r.Name
	if len(n) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(n, t.prefix) || !strings.HasSuffix(n, t.suffix) {
		return "", false, nil
	}
	return n[len(t.prefix) : len(n)-len(t.suffix)], true, nil
}

// correlatorFromConfig parses Config.Correlation.
func correlatorFromConfig(spec string) (Correlator, error) {
	switch {
	case spec == "" || spec == "room_name":
		return RoomNameCorrelator(), nil
	case strings.HasPrefix(spec, "metadata:"):
		key := strings.TrimPrefix(spec, "metadata:")
		if key == "" {
			return nil, fmt.Errorf("correlation %q: missing metadata key", spec)
		}
		return MetadataCorrelator(key), nil
	case strings.HasPrefix(spec, "template:"):
		return TemplateCorrelator(strings.TrimPrefix(spec, "template:"))
	default:
		return nil, fmt.Errorf("correlation %q: want room_name, metadata:KEY or template:PATTERN", spec)
	}
}
