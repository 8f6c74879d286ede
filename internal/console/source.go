// Package console is the operator's console: server-rendered pages over
// what the receiver stores (sessions, reports, stored events, the per-room
// trail, dead letters) and what intake saw (refusals, delivery lag). It
// reads through Source only, which livekitwebhook implements, so that it
// never reaches into the store itself; every asset is embedded.
package console

import (
	"context"
	"time"
)

// Source is everything the console reads and the two things it does
// (replay, verify). Reports and sessions come as the JSON of the public
// Session/Report types, decoded here into the console's own view (see
// Report), so fields added to them show up without a change here.
type Source interface {
	// ActiveSessions returns the JSON of every session not yet reported.
	ActiveSessions(ctx context.Context) ([][]byte, error)
	// EndedBefore calls f with final reports older than cursor (0: from the
	// newest), newest first, until f returns false. Each report's cursor
	// resumes after it. Its cost follows what f takes.
	EndedBefore(ctx context.Context, cursor uint64, f func(cursor uint64, report []byte) bool) error
	// EndedSince counts reports published at or after t, without a scan.
	EndedSince(ctx context.Context, t time.Time) (int, error)
	// Session returns the JSON of one room sid's session (its report once
	// reported) and the room's W3C traceparent. project, when known (the
	// calls list links with it), is where the room is looked up first:
	// each project keeps its rooms apart.
	Session(ctx context.Context, project, roomSID string) (session []byte, traceParent string, ok bool, err error)
	// RoomEvents returns up to limit stored events of a room, in stream order.
	RoomEvents(ctx context.Context, roomName, roomSID string, limit int) ([]StoredEvent, error)
	// Trail returns up to limit facts of a room's trail, oldest first
	// (project as in Session).
	Trail(ctx context.Context, project, roomSID string, limit int) ([]TrailEntry, error)
	// DeadLetters lists the dead letters, oldest first; DeadLetterCount
	// counts them without reading them.
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
	DeadLetterCount(ctx context.Context) (int, error)
	// Replay puts the dead letter with event id id back (all when id is "").
	Replay(ctx context.Context, id string) (int, error)
	// Refusals returns the latest refused requests, newest first.
	Refusals() []Refusal
	// Gauges reads the backlog and the recent delivery lag.
	Gauges(ctx context.Context) (Gauges, error)
	// Verify explains whether a captured request verifies with the
	// configured keys, as `lkwebhook verify` does. No secret is returned.
	Verify(authorization string, body []byte) Verdict
}

// StoredEvent is one stored event: the body exactly as LiveKit signed it.
type StoredEvent struct {
	Seq      uint64
	StoredAt time.Time
	ID       string
	Event    string
	Body     []byte
}

// TrailEntry is one fact of a room's trail: Kind is "applied",
// "duplicate" (Stage: intake, store or process), "late", "hook" (Error
// empty on success) or "dead_letter".
type TrailEntry struct {
	Kind    string
	EventID string
	Event   string
	Stage   string
	Hook    string
	Error   string
	At      time.Time
}

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	Seq      uint64
	EventID  string
	Event    string
	Error    string
	Attempts int
	At       time.Time
}

// Refusal is one refused webhook request: never its Authorization header,
// token or body.
type Refusal struct {
	At     time.Time
	Reason string
	Remote string
	Event  string // "" when the body was not decoded
}

// Gauges are the intake and processing gauges.
type Gauges struct {
	JournalBacklog int64 // envelopes not yet handed on to the events stream
	EventBacklog   int64 // stored events not yet applied
	// Lag is LiveKit's createdAt to receipt, over the latest LagSamples
	// accepted events (seconds; createdAt has a resolution of one second).
	LagSamples             int
	LagP50, LagP95, LagMax float64
}

// Verdict is the outcome of Verify.
type Verdict struct {
	OK     bool
	Reason string
	Lines  []string
	// Event is the decoded event as indented JSON when the body decodes.
	Event string
}
