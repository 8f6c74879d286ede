package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// acceptAsync runs Accept in the background; the channel gets its error.
func acceptAsync(e *Engine, a Accepted) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := e.Accept(context.Background(), a)
		done <- err
	}()
	return done
}

// envelopesWritten counts the journal envelopes written so far.
func envelopesWritten(t testing.TB, e *Engine) uint64 {
	t.Helper()
	n, err := e.JournalWrites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An announced arrival holds the envelope back until it is queued, so both
// events are written together.
func TestCommitterWaitsForAnnouncedArrival(t *testing.T) {
	e := openTest(t, Config{})
	e.lingerCap = time.Minute
	arrival := e.Expect()
	first := acceptAsync(e, accepted(1))
	select {
	case err := <-first:
		t.Fatalf("first event written (%v) while an announced one was on its way", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := arrival.Accept(context.Background(), accepted(2)); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := envelopesWritten(t, e); n != 1 {
		t.Fatalf("%d envelopes for two events written together, want 1", n)
	}
}

// A withdrawn arrival (its request was refused) releases the committer.
func TestWithdrawnArrivalReleasesCommitter(t *testing.T) {
	e := openTest(t, Config{})
	e.lingerCap = time.Minute
	arrival := e.Expect()
	first := acceptAsync(e, accepted(1))
	time.Sleep(50 * time.Millisecond)
	arrival.Withdraw()
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not written after the arrival it waited for was withdrawn")
	}
	arrival.Withdraw() // idempotent
	if got := e.expected.Load(); got != 0 {
		t.Fatalf("expected arrivals = %d after withdrawal, want 0", got)
	}
}

// An arrival that never comes (a stalled request) delays an envelope by at
// most the linger cap.
func TestStalledArrivalBoundedByCap(t *testing.T) {
	e := openTest(t, Config{})
	e.lingerCap = 20 * time.Millisecond
	arrival := e.Expect()
	defer arrival.Withdraw()
	select {
	case err := <-acceptAsync(e, accepted(1)):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled arrival held the envelope back beyond its cap")
	}
}

// An arrival settled by Accept no longer counts, whatever Accept answers.
func TestArrivalSettledByAccept(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	if _, err := e.Expect().Accept(ctx, accepted(1)); err != nil {
		t.Fatal(err)
	}
	dup, err := e.Expect().Accept(ctx, accepted(1))
	if err != nil || !dup {
		t.Fatalf("second Accept of the same id = %v, %v; want duplicate", dup, err)
	}
	if got := e.expected.Load(); got != 0 {
		t.Fatalf("expected arrivals = %d, want 0", got)
	}
	var none *Engine
	if _, err := none.Expect().Accept(ctx, accepted(2)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Accept through a nil engine = %v, want ErrUnavailable", err)
	}
	none.Expect().Withdraw() // does nothing, does not panic
}
