package faulttest

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// EnvKnownBugs=1 makes failures explained by a known bug of the main module
// fail the test. Without it such a test reports the reproduction in its log
// and is skipped (unless it also failed for another reason), so that the
// suite can run in CI until the bug is fixed. Once a bug is fixed, delete
// its knownBug value: its checks then fail like any other.
const EnvKnownBugs = "LKWEBHOOK_FAULT_KNOWN_BUGS"

// knownBug is a bug of the main module these tests reproduce.
type knownBug struct {
	id, summary string
}

var (
	// Messages delivered to a processor that then dies (kill -9), or whose
	// ack/nak cannot reach NATS (outage), are redelivered only after the
	// consumer's AckWait of 5 minutes (livekitwebhook/process.go, const
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

// errorf records a failure explained by bug.
func (b *bugLog) errorf(bug knownBug, format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.hits[bug] = append(b.hits[bug], msg)
	b.mu.Unlock()
	if os.Getenv(EnvKnownBugs) == "1" {
		b.t.Errorf("[known bug %s] %s", bug.id, msg)
	}
}

// finish skips the test when known bugs explain every failure recorded
// here and EnvKnownBugs is not set. Call it last, from the test goroutine.
func (b *bugLog) finish() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.hits) == 0 || os.Getenv(EnvKnownBugs) == "1" {
		return
	}
	var ids []string
	for bug, msgs := range b.hits {
		ids = append(ids, bug.id)
		shown := msgs
		if len(shown) > 12 {
			shown = append(shown[:12:12], fmt.Sprintf("… and %d more", len(msgs)-12))
		}
		b.t.Logf("known bug %q reproduced (%s):\n  %s", bug.id, bug.summary, strings.Join(shown, "\n  "))
	}
	sort.Strings(ids)
	if b.t.Failed() {
		return // failed for another reason as well: keep the failure
	}
	b.t.Skipf("known bug(s) %s of the main module reproduced (see above); set %s=1 to fail on them",
		strings.Join(ids, ", "), EnvKnownBugs)
}
