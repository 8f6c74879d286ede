package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func openTest(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func accepted(i int) Accepted {
	h := nats.Header{}
	h.Set("Lkwh-Event-Id", fmt.Sprintf("EV_%05d", i))
	h.Add("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	return Accepted{ID: fmt.Sprintf("EV_%05d", i), Room: fmt.Sprintf("room-%d", i%7), Event: "room_started",
		Body: []byte(fmt.Sprintf(`{"event":"room_started","id":"EV_%05d"}`, i)), Header: h}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := []Accepted{accepted(1), {ID: "x", Body: nil}, accepted(2)}
	in[1].Header = nil
	var buf []byte
	ends := map[int]bool{} // offsets where a whole envelope ends
	for _, a := range in {
		buf = appendEntry(buf, a)
		ends[len(buf)] = true
	}
	out, err := decodeEnvelope(buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d entries, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.ID != b.ID || a.Room != b.Room || a.Event != b.Event || !bytes.Equal(a.Body, b.Body) ||
			fmt.Sprint(a.Header) != fmt.Sprint(b.Header) && len(a.Header)+len(b.Header) > 0 {
			t.Errorf("entry %d: %+v, want %+v", i, b, a)
		}
		if entrySize(a) < len(appendEntry([]byte{envelopeVersion}, a))-1 {
			t.Errorf("entrySize(%d) below the encoded size", i)
		}
	}
	// A cut anywhere but between entries is an error, never a panic.
	for n := 1; n < len(buf); n++ {
		if _, err := decodeEnvelope(buf[:n]); (err == nil) != ends[n] {
			t.Fatalf("cut at %d: err %v", n, err)
		}
	}
	if _, err := decodeEnvelope(append([]byte{9}, buf[1:]...)); !errors.Is(err, errEnvelope) {
		t.Fatalf("wrong version: %v", err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEntry(nil, accepted(1)))
	f.Add([]byte{1, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := decodeEnvelope(data)
		if err != nil {
			if !errors.Is(err, errEnvelope) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var again []byte
		for _, a := range out {
			again = appendEntry(again, a)
		}
		if _, err := decodeEnvelope(again); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
	})
}

// Concurrent Accepts share journal writes, and the distributor stores each
// event once in the events stream, under its room's subject.
func TestGroupCommitAndDistribute(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := e.Accept(ctx, accepted(i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := e.journal.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 || info.State.Msgs >= n {
		t.Fatalf("%d journal envelopes for %d concurrent events, want fewer (and some)", info.State.Msgs, n)
	}
	t.Logf("%d events in %d envelopes", n, info.State.Msgs)
	if clear, err := e.JournalClearBefore(ctx); err != nil || !clear.Equal(info.State.FirstTime) {
		t.Fatalf("JournalClearBefore before distribution = %v, %v; want the first envelope's time %v", clear, err, info.State.FirstTime)
	}

	var dups atomic.Int64
	cc, err := e.StartDistributor(ctx, DistributeOptions{Duplicate: func(Accepted) { dups.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	waitFor(t, "journal drained", func() bool { n, err := e.JournalBacklog(ctx); return err == nil && n == 0 })
	ev, err := e.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.State.Msgs != n || dups.Load() != 0 {
		t.Fatalf("events stream holds %d (duplicates %d), want %d and 0", ev.State.Msgs, dups.Load(), n)
	}
	msg, err := e.events.GetLastMsgForSubject(ctx, EventSubject("room-3", "room_started"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(HeaderEvent) != "room_started" || msg.Header.Get("Traceparent") == "" {
		t.Fatalf("headers not carried: %v", msg.Header)
	}
	asked := time.Now()
	if clear, err := e.JournalClearBefore(ctx); err != nil || clear.Before(asked) {
		t.Fatalf("JournalClearBefore after distribution = %v, %v; want the time of asking (%v) or later", clear, err, asked)
	}

	// The same id again: answered as a duplicate by this process, and not
	// journaled again.
	if dup, err := e.Accept(ctx, accepted(5)); err != nil || !dup {
		t.Fatalf("Accept of a recent id = %v, %v; want duplicate", dup, err)
	}
}

// A redelivered envelope (a crash between writing its events and removing
// it) stores nothing twice: the events stream deduplicates by id.
func TestDistributeIsIdempotent(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	var env []byte
	for i := range 5 {
		env = appendEntry(env, accepted(i))
	}
	var dups atomic.Int64
	o := DistributeOptions{Duplicate: func(Accepted) { dups.Add(1) }}
	for range 2 {
		if err := e.distribute(ctx, env, delivery{attempt: 1}, o); err != nil {
			t.Fatal(err)
		}
	}
	info, err := e.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 || dups.Load() != 5 {
		t.Fatalf("stored %d, duplicates %d; want 5 and 5", info.State.Msgs, dups.Load())
	}

	// An envelope that cannot be decoded goes to the DLQ whole.
	var deadLettered atomic.Int64
	o = DistributeOptions{DeadLettered: func(Accepted, error, int) { deadLettered.Add(1) }}
	if err := e.distribute(ctx, []byte{7, 1, 2}, delivery{attempt: 1}, o); err != nil {
		t.Fatal(err)
	}
	dlq, err := e.dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dlq.State.Msgs != 1 || deadLettered.Load() != 1 {
		t.Fatalf("DLQ holds %d, dead letters reported %d; want 1 and 1", dlq.State.Msgs, deadLettered.Load())
	}
}

// With the engine unreachable, Accept fails at once, typed.
func TestAcceptWhenDisconnected(t *testing.T) {
	e := openTest(t, Config{AcceptBound: time.Second})
	e.Conn().Close()
	start := time.Now()
	if _, err := e.Accept(context.Background(), accepted(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Accept = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Accept took %s with a 1s bound", d)
	}
}

// Waiters are answered when the engine closes under them.
func TestCloseAnswersWaiters(t *testing.T) {
	e := openTest(t, Config{})
	_ = e.Close()
	if _, err := e.Accept(context.Background(), accepted(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Accept after Close = %v, want ErrUnavailable", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
