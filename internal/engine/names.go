package engine

import "strings"

// Stream, bucket and consumer names. Subjects are built by the helpers below.
const (
	StreamJournal = "LKWH_INTAKE"
	StreamEvents  = "LKWH_EVENTS"
	StreamTasks   = "LKWH_TASKS"
	StreamReports = "LKWH_REPORTS"
	StreamDLQ     = "LKWH_DLQ"

	BucketRooms   = "lkwh_rooms"
	BucketNames   = "lkwh_names"
	BucketReports = "lkwh_reports"
	BucketBeluga  = "lkwh_beluga"

	ConsumerDistributor = "lkwh-distributor"
	ConsumerProcessor   = "lkwh-processor"
	ConsumerFinalizer   = "lkwh-finalizer"

	SubjectJournal    = "lkwh.intake"
	SubjectEventsAll  = "lkwh.events.>"
	SubjectTasksAll   = "lkwh.tasks.>"
	SubjectReportsAll = "lkwh.reports.>"
	SubjectDLQAll     = "lkwh.dlq.>"
)

// Message headers written at intake and read by the processor.
const (
	HeaderEvent    = "Lkwh-Event"
	HeaderError    = "Lkwh-Error"
	HeaderAttempts = "Lkwh-Attempts"
	HeaderOrigSeq  = "Lkwh-Orig-Seq"
)

// EventSubject is where an accepted event is stored: one subject per room
// name and event, so that a room's events can be read back on their own.
func EventSubject(room, event string) string {
	return "lkwh.events." + Token(room) + "." + Token(event)
}

// RoomEventsSubject matches every stored event of a room name.
func RoomEventsSubject(room string) string { return "lkwh.events." + Token(room) + ".>" }

// TaskSubject is the subject of a timer task of kind for a room sid.
func TaskSubject(kind, roomSID string) string {
	return "lkwh.tasks." + Token(kind) + "." + Token(roomSID)
}

// ReportSubject is where the final report of a session is published.
func ReportSubject(sessionID string) string { return "lkwh.reports." + Token(sessionID) }

// DLQSubject is where a dead-lettered event of the given name goes.
func DLQSubject(event string) string { return "lkwh.dlq." + Token(event) }

// Token makes s safe as one subject token or KV key: characters outside
// [A-Za-z0-9_-] become '_' (and an empty s becomes "_"). Distinct inputs can
// collide, so tokens are for routing only; identity lives in payloads.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !safe(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !safe(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func safe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Key makes an arbitrary string a valid, collision-free KV key: safe strings
// pass through, others are hex-encoded with an "x-" prefix.
func Key(s string) string {
	if s != "" && Token(s) == s && !strings.HasPrefix(s, "x-") {
		return s
	}
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, 2+2*len(s))
	b = append(b, 'x', '-')
	for i := 0; i < len(s); i++ {
		b = append(b, hexd[s[i]>>4], hexd[s[i]&15])
	}
	return string(b)
}
