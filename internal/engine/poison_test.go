package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// journalEnvelope writes one envelope holding events from..to-1 (accepted).
func journalEnvelope(t *testing.T, e *Engine, from, to int) {
	t.Helper()
	var env []byte
	for i := from; i < to; i++ {
		env = appendEntry(env, accepted(i))
	}
	if _, err := e.js.Publish(context.Background(), SubjectJournal, env, jetstream.WithExpectStream(StreamJournal)); err != nil {
		t.Fatal(err)
	}
}

// storedIDs returns the event ids in the events stream.
func storedIDs(t *testing.T, e *Engine) map[string]bool {
	t.Helper()
	ctx := context.Background()
	info, err := e.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := e.events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Header.Get("Lkwh-Event-Id")] = true
	}
	return ids
}

// deadLetters returns the DLQ's messages.
func deadLetters(t *testing.T, e *Engine) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := e.dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := e.dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func drained(e *Engine) bool {
	n, err := e.JournalBacklog(context.Background())
	return err == nil && n == 0
}

// An event whose write fails every time, with an error the distributor
// retries (a timeout), is dead-lettered with that error on the envelope's
// last attempt; the other events of its envelope and the envelopes after it
// are stored. Before, the envelope was retried forever.
func TestDistributorDeadLettersEventFailingEveryAttempt(t *testing.T) {
	e := openTest(t, Config{})
	poison := accepted(3).ID
	e.publishFault = func(a Accepted) error {
		if a.ID == poison {
			return nats.ErrTimeout
		}
		return nil
	}
	journalEnvelope(t, e, 0, 6)
	var dead atomic.Int64
	var deadCause atomic.Value
	cc, err := e.StartDistributor(context.Background(), DistributeOptions{
		MaxAttempts: 3,
		DeadLettered: func(a Accepted, cause error, attempts int) {
			dead.Add(1)
			deadCause.Store(a.ID + ": " + cause.Error() + " after " + strconv.Itoa(attempts))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	journalEnvelope(t, e, 6, 9) // after the poison: must not wait behind it forever
	waitForLong(t, 30*time.Second, "journal drained", func() bool { return drained(e) })

	ids := storedIDs(t, e)
	for i := range 9 {
		if id := accepted(i).ID; ids[id] == (id == poison) {
			t.Errorf("event %s stored: %v", id, ids[id])
		}
	}
	dls := deadLetters(t, e)
	if len(dls) != 1 || dead.Load() != 1 {
		t.Fatalf("%d dead letters, %d reported; want 1", len(dls), dead.Load())
	}
	h := dls[0].Header
	if h.Get("Lkwh-Event-Id") != poison || h.Get(HeaderAttempts) != "3" || !strings.Contains(h.Get(HeaderError), "timeout") {
		t.Fatalf("dead letter headers %v", h)
	}
	if got := deadCause.Load().(string); got != poison+": "+nats.ErrTimeout.Error()+" after 3" {
		t.Fatalf("reported %q", got)
	}
}

// An event whose write closes the connection (as an oversized subject did:
// -ERR 'maximum control line exceeded') is found among the events of its
// envelope across engine restarts, dead-lettered once its attempts are used
// up, and the others are stored. Before, the envelope closed every new
// connection, forever.
func TestDistributorFindsEventThatClosesTheConnection(t *testing.T) {
	dir := t.TempDir()
	poison := accepted(4).ID
	var marks Interrupted
	var dead atomic.Int64
	var poisonWrites atomic.Int64
	open := func() *Engine {
		e, err := Open(context.Background(), Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		e.ackWait = time.Second
		e.publishFault = func(a Accepted) error {
			if a.ID == poison {
				poisonWrites.Add(1)
				e.nc.Close()
				return nats.ErrConnectionClosed
			}
			return nil
		}
		return e
	}
	e := open()
	journalEnvelope(t, e, 0, 8)
	restarts := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		cc, err := e.StartDistributor(context.Background(), DistributeOptions{
			MaxAttempts: 2, Interrupted: &marks,
			DeadLettered: func(Accepted, error, int) { dead.Add(1) },
		})
		if err != nil {
			t.Fatal(err)
		}
		lost := false
		for !lost && !drained(e) {
			if time.Now().After(deadline) {
				t.Fatalf("journal not drained after %d restarts", restarts)
			}
			select {
			case <-e.Lost():
				lost = true
			case <-time.After(20 * time.Millisecond):
			}
		}
		if !lost {
			cc.Stop()
			break
		}
		cc.Stop()
		_ = e.Close()
		restarts++
		e = open()
	}
	t.Cleanup(func() { _ = e.Close() })

	// Attempt 1 writes the envelope at once and loses the connection;
	// attempt 2 writes one event at a time and loses it at the poison;
	// attempt 3 is past MaxAttempts: the poison is dead-lettered unwritten.
	if restarts != 2 || poisonWrites.Load() != 2 {
		t.Errorf("%d restarts, %d writes of the poison; want 2 and 2", restarts, poisonWrites.Load())
	}
	ids := storedIDs(t, e)
	for i := range 8 {
		if id := accepted(i).ID; ids[id] == (id == poison) {
			t.Errorf("event %s stored: %v", id, ids[id])
		}
	}
	dls := deadLetters(t, e)
	if len(dls) != 1 || dead.Load() != 1 {
		t.Fatalf("%d dead letters, %d reported; want 1", len(dls), dead.Load())
	}
	if h := dls[0].Header; h.Get("Lkwh-Event-Id") != poison || !strings.Contains(h.Get(HeaderError), ErrConnectionLost.Error()) {
		t.Fatalf("dead letter headers %v", h)
	}
	if _, ok := marks.Of("journal/1"); ok {
		t.Error("the settled envelope is still remembered as interrupted")
	}
}

// A connection closed under the engine is a loss; Close is not (the closed
// handler it triggers, whenever it runs, finds the engine closing).
func TestLostOnlyWhenNotClosedByUs(t *testing.T) {
	e := openTest(t, Config{})
	e.nc.Close()
	select {
	case <-e.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed after the connection was closed under the engine")
	}
	e2 := openTest(t, Config{})
	_ = e2.Close()
	e2.markLost(errors.New("what the closed handler reports"))
	if e2.isLost() {
		t.Fatal("an engine closed by Close reports its connection lost")
	}
}

func waitForLong(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}
