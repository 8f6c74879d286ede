package faulttest

import (
	"fmt"
	"sync"
	"testing"
)

// knownBug is a bug of the main module these tests found; all are fixed,
// and their checks stay as regression tests that name the bug on failure.
type knownBug struct {
	id, summary string
}

var (
	// Messages delivered to a processor that then dies (kill -9), or whose
	// ack/nak cannot reach NATS (outage), are redelivered only after the
	// consumer's AckWait of 5 minutes before the fix (livekitwebhook/process.go, const
	// ackWait). Meanwhile later events of the same room are processed, so
	// the report is fixed without the stuck ones (events_applied too low,
	// participant seconds closed at room end, even disposition no_show), or
	// the room stays open for 5 minutes when room_finished is the stuck one.
	bugAckWait = knownBug{"ackwait", "in-flight events after a crash or NATS outage wait for the 5 min AckWait; reports are fixed without them"}
	// The body cap (max_body_bytes, default 1048576) equals NATS's default
	// max_payload, which also counts the headers intake adds, so a signed
	// body within the cap but within ~300 bytes of it can never be stored:
	// intake answers 503 + Retry-After, LiveKit retries in vain and drops it.
	bugMaxPayload = knownBug{"maxpayload", "bodies within max_body_bytes but over NATS max_payload get 503 forever instead of being stored or refused with 413"}
	// 200 signed bodies of ~900 KiB (176 MiB) raise serve's RSS by 350–550
	// MiB: the embedded JetStream file store keeps written blocks cached for
	// 10 s and the Go heap then doubles (GOGC=100, no memory limit).
	bugRSS = knownBug{"rss", "RSS grows by more than 200 MiB under 200 bodies of ~900 KiB"}
)

// bugLog collects the failures that known bugs explain.
type bugLog struct {
	t    *testing.T
	mu   sync.Mutex
	hits map[knownBug][]string
}

func newBugLog(t *testing.T) *bugLog { return &bugLog{t: t, hits: map[knownBug][]string{}} }

// errorf fails the test with a failure that matches bug's signature, so
// that a regression names the bug it brings back.
func (b *bugLog) errorf(bug knownBug, format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.hits[bug] = append(b.hits[bug], msg)
	b.mu.Unlock()
	b.t.Errorf("[regression of %s: %s] %s", bug.id, bug.summary, msg)
}

// finish is called last by the tests that record here; the failures were
// already reported by errorf.
func (b *bugLog) finish() { b.t.Helper() }
