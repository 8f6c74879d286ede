package livekitwebhook

import "github.com/beluga-ai-contrib/beluga-livekit/internal/engine"

// task is a timer kept in the store (engine.Task).
type task = engine.Task

// Task kinds on the tasks stream.
const (
	taskFinalize = "finalize" // room_finished seen: report after the grace period
	taskExpire   = "expire"   // no room_finished within MaxSessionAge
)

// taskEgress wakes a report that waits for its room's egresses (see
// Config.EgressWait) once the last of them ended: without it the report
// would wait for the deadline.
const taskEgress = "egress"

// eventSessionReport names a report in metrics and in the DLQ, where a
// report waits when it owes a call to a hook no registration has (see
// Hooks); Replay runs its task again.
const eventSessionReport = "session_report"
