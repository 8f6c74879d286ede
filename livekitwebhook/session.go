package livekitwebhook

import "github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"

// Session is the correlated view of one LiveKit room session (one room sid):
// what hooks receive and what the sessions API returns. Its JSON field names
// are a stable contract (snake_case, RFC 3339 UTC times).
type Session = lifecycle.Session

// Participant is one participant session (one participant sid) in a Session.
type Participant = lifecycle.Participant

// Report is the final Session of a room sid, produced once after
// room_finished plus the grace period (or on expiry): EndedAt and
// Disposition are set.
type Report = lifecycle.Session

// Dispositions of a Report.
const (
	DispositionCompleted        = "completed"
	DispositionNoShow           = "no_show"
	DispositionConnectionFailed = "connection_failed"
	DispositionExpired          = "expired"
)
