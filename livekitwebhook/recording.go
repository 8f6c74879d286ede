package livekitwebhook

import (
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Recording is one egress of the room (egress_started, egress_updated,
// egress_ended folded by egress id) in a Session or Report. An egress that
// ends after the Report was fixed updates the stored report (what
// SessionByID, EndedSessions and the sessions API return) and reaches
// Hooks.OnEgressEnded; the report published on lkwh.reports.* is not
// published again.
type Recording struct {
	// EgressID is LiveKit's egress id.
	EgressID string `json:"egress_id"`
	// Status is LiveKit's EgressStatus name: EGRESS_STARTING, EGRESS_ACTIVE,
	// EGRESS_ENDING, or a terminal one (EGRESS_COMPLETE, EGRESS_FAILED,
	// EGRESS_ABORTED, EGRESS_LIMIT_REACHED), which a late non-terminal
	// update never replaces.
	Status string `json:"status"`
	// StartedAt is the egress's startedAt, when LiveKit sent one.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// EndedAt is set once the status is terminal: endedAt, else updatedAt,
	// else the egress_ended createdAt.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// DurationSeconds is EndedAt - StartedAt; 0 until both are known.
	DurationSeconds float64 `json:"duration_seconds"`
	// Error is the egress's error message, or "".
	Error string `json:"error"`
	// Files are LiveKit's file_results, else the deprecated file result
	// when file_results is empty; [] when there is none.
	Files []RecordingFile `json:"files"`
}

// RecordingFile is one file an egress wrote.
type RecordingFile struct {
	// Filename is where the egress wrote the file (its storage path).
	Filename string `json:"filename"`
	// Location is the file's URL in its storage.
	Location string `json:"location"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// DurationSeconds is the recorded duration of the file.
	DurationSeconds float64 `json:"duration_seconds"`
}

// Anomaly counts one kind of thing the events of a session did not close by
// themselves, so that an operator sees a lossy delivery without reading
// logs. Code is one of the Anomaly* constants.
type Anomaly struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
}

// Anomaly codes of Session.Anomalies and Report.Anomalies.
const (
	// AnomalyParticipantNeverLeft: participants neither left nor aborted
	// when the session ended (room_finished or expiry); they are closed at
	// the session's end.
	AnomalyParticipantNeverLeft = lifecycle.AnomalyParticipantNeverLeft
	// AnomalyEgressNeverEnded: recordings without a terminal status in the
	// report (still running when Config.EgressWait ran out, or the session
	// expired). A later egress_ended updates the stored report and removes
	// it.
	AnomalyEgressNeverEnded = lifecycle.AnomalyEgressNeverEnded
	// AnomalyRoomStartedAfterFinished: room_started events whose createdAt
	// is later than room_finished's, whatever order they arrived in.
	AnomalyRoomStartedAfterFinished = lifecycle.AnomalyRoomStartedAfterFinished
	// AnomalyEventsAfterReport: distinct events of the room that arrived
	// after its report was fixed (counted in the stored report only).
	AnomalyEventsAfterReport = lifecycle.AnomalyEventsAfterReport
)

func recordingsOf(rs []lifecycle.Recording) []Recording {
	return mapAll(rs, func(r lifecycle.Recording) Recording {
		files := make([]RecordingFile, len(r.Files)) // never null
		for j, f := range r.Files {
			files[j] = RecordingFile(f) // same fields: a field added there fails to compile here
		}
		return Recording{EgressID: r.EgressID, Status: r.Status, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
			DurationSeconds: r.DurationSeconds, Error: r.Error, Files: files}
	})
}

func anomaliesOf(as []lifecycle.Anomaly) []Anomaly {
	return mapAll(as, func(a lifecycle.Anomaly) Anomaly { return Anomaly(a) })
}
