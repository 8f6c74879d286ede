package livekitwebhook

import (
	"strconv"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// The room record and its parts live in the store (engine.Room): what the
// rooms bucket holds per room sid, written with compare-and-set.
type (
	roomRecord  = engine.Room
	hookNames   = engine.HookNames
	recordCache = engine.RoomCache
)

func newRecordCache(capacity int) *recordCache { return engine.NewRoomCache(capacity) }

func legacyName(position uint) string { return engine.LegacyHookName(position) }

// isLegacyName tells a position from an older version from a name.
func isLegacyName(name string) bool {
	if len(name) < 2 || name[0] != '#' {
		return false
	}
	_, err := strconv.ParseUint(name[1:], 10, 64)
	return err == nil
}

// viewOf is the session a record shows: its report once fixed (amended by
// late events), else its state.
func viewOf(rec *roomRecord) Session {
	if rec.Reported && rec.Report != nil {
		return sessionOf(*rec.Report)
	}
	return sessionOf(rec.State.Session())
}

func clonePending(m map[string]hookNames) map[string]hookNames {
	if m == nil {
		return nil
	}
	out := make(map[string]hookNames, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
