package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

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
	BucketOpen    = "lkwh_open"

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

// RoomEventsSubjects match every stored event of a room name: those of
// RoomEventsSubject and, for a name longer than MaxNameLen, those stored
// before tokens were bounded (when that subject is short enough to use,
// as for LegacyKey).
func RoomEventsSubjects(room string) []string {
	subj := []string{RoomEventsSubject(room)}
	if legacy := safeToken(room); len(legacy) > MaxNameLen && len(legacy) <= MaxLegacyKeyLen {
		subj = append(subj, "lkwh.events."+legacy+".>")
	}
	return subj
}

// TaskSubject is the subject of a timer task of kind for a room sid.
func TaskSubject(kind, roomSID string) string {
	return "lkwh.tasks." + Token(kind) + "." + Token(roomSID)
}

// ReportSubject is where the final report of a session is published.
func ReportSubject(sessionID string) string { return "lkwh.reports." + Token(sessionID) }

// DLQSubject is where a dead-lettered event of the given name goes.
func DLQSubject(event string) string { return "lkwh.dlq." + Token(event) }

// Names of any length reach the engine: livekit-server takes any room name
// when its room-name limit is 0, and room metadata (where a session id may
// come from) up to 512 KiB. A subject or key past the NATS server's max
// control line (4096 bytes) makes it close the connection, so every name
// that becomes a subject token or KV key is bounded here, deterministically
// (the same on every replica and across restarts): up to MaxNameLen bytes
// the form is unchanged from before the bound, beyond it a readable prefix
// is followed by a hash of the whole name. The longest subject built from
// one (a direct KV get: "$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>." plus
// a key prefix, plus a reply inbox on the control line) stays well under
// 1 KiB.
const MaxNameLen = 256

// nameHashLen is the hex digits of sha256 a bounded name ends with
// (128 bits: collisions are out of reach even for a chosen name).
const nameHashLen = 32

// Token makes s safe as one subject token: characters outside
// [A-Za-z0-9_-] become '_' (and an empty s becomes "_"), and a result
// longer than MaxNameLen is cut to a readable prefix, '-' and a hash of s.
// Distinct inputs can collide, so tokens are for routing only; identity
// lives in payloads. Token(Token(s)) == Token(s).
func Token(s string) string {
	if len(s) > MaxNameLen {
		return safeToken(s[:MaxNameLen-1-nameHashLen]) + "-" + nameHash(s)
	}
	return safeToken(s)
}

func safeToken(s string) string {
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

func nameHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:nameHashLen/2])
}

// Key makes an arbitrary string a valid, collision-free KV key of at most
// MaxNameLen bytes. Its unbounded (legacy) form is kept whenever it fits:
// safe strings pass through, others are hex-encoded with an "x-" prefix.
// Beyond the bound the key is "x-" + Token of a prefix + "-" + a hash of s:
// a legacy key starting with "x-" is lowercase hex after it (no second
// '-'), and safe strings starting with "x-" were always hex-encoded, so a
// bounded key never equals a legacy key of another string.
func Key(s string) string {
	if legacyKeyLen(s) <= MaxNameLen {
		return legacyKey(s)
	}
	return "x-" + safeToken(s[:min(len(s), MaxNameLen-3-nameHashLen)]) + "-" + nameHash(s)
}

// passThrough: the legacy key of s is s itself.
func passThrough(s string) bool {
	return s != "" && safeToken(s) == s && !strings.HasPrefix(s, "x-")
}

func legacyKeyLen(s string) int {
	if passThrough(s) {
		return len(s)
	}
	return 2 + 2*len(s)
}

// legacyKey is Key before names were bounded.
func legacyKey(s string) string {
	if passThrough(s) {
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

// MaxLegacyKeyLen is the longest legacy key (see LegacyKey) still read: a
// direct get of it stays about 2 KiB under the control line, with any
// bucket, key prefix, JetStream API prefix and reply inbox.
const MaxLegacyKeyLen = 2048

// LegacyKey is the key s had before keys were bounded, when that differs
// from Key(s) and is short enough to read safely (MaxLegacyKeyLen): safe
// names of more than MaxNameLen bytes have one, others of more than 127.
// Legacy keys longer than MaxLegacyKeyLen were written (up to the control
// line) but are not read: their entries are treated as absent.
func LegacyKey(s string) (string, bool) {
	if n := legacyKeyLen(s); n <= MaxNameLen || n > MaxLegacyKeyLen {
		return "", false
	}
	return legacyKey(s), true
}

// Lookup reads the entry of name in kv, at prefix+Key(name). Entries of
// long names written before keys were bounded live at their legacy key: a
// read that misses falls back to prefix+LegacyKey(name) when there is one.
// Update an entry found this way at its own key (entry.Key()); new entries
// are written at prefix+Key(name), which reads find first.
func Lookup(ctx context.Context, kv jetstream.KeyValue, prefix, name string) (jetstream.KeyValueEntry, error) {
	e, err := kv.Get(ctx, prefix+Key(name))
	if legacy, ok := LegacyKey(name); ok && errors.Is(err, jetstream.ErrKeyNotFound) {
		return kv.Get(ctx, prefix+legacy)
	}
	return e, err
}

// ResolveKey is the key the entry of name lives at: prefix+Key(name),
// unless only its legacy key (see Lookup) holds it. It reads kv only for
// names that have a legacy key.
func ResolveKey(ctx context.Context, kv jetstream.KeyValue, prefix, name string) (string, error) {
	if _, ok := LegacyKey(name); !ok {
		return prefix + Key(name), nil
	}
	e, err := Lookup(ctx, kv, prefix, name)
	switch {
	case err == nil:
		return e.Key(), nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return prefix + Key(name), nil
	default:
		return "", err
	}
}
