package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTooLarge means the message exceeds the server's max payload.
var ErrTooLarge = errors.New("event larger than the engine's max payload")

// Accepted is one verified webhook to store.
type Accepted struct {
	ID     string              // dedupe key: the event id, or a body-derived key
	Room   string              // room name ("" for events without a room)
	Event  string              // event name
	Body   []byte              // the exact raw body LiveKit signed
	Header map[string][]string // trace context and anything else to carry along
}

// NewAccepted is the event to store for a verified webhook: its id, room
// name (any length: bounded where it becomes a subject) and room sid ride
// along as headers the processor reads (Msg). Add trace context to Header.
func NewAccepted(id, room, roomSID, event string, body []byte) Accepted {
	hdr := make(map[string][]string, 4)
	// One backing array for the values: a request's allocations are
	// intake's throughput. The room goes in its routing form (bounded): it
	// only picks a worker and, replayed from the DLQ, a subject.
	vals := [...]string{id, Token(room), roomSID}
	hdr[HeaderEventID] = vals[0:1:1]
	hdr[HeaderRoomKey] = vals[1:2:2]
	if roomSID != "" {
		hdr[HeaderRoomSID] = vals[2:3:3]
	}
	return Accepted{ID: id, Room: room, Event: event, Body: body, Header: hdr}
}

// Group commit: a durable JetStream write costs nearly the same whatever its
// size (about 30 µs of CPU for a small one), so concurrent requests are
// written together. A committer takes the first waiting event, adds every
// other one already waiting, and writes them as one journal envelope; events
// arriving meanwhile form the next. While an envelope holds fewer than
// fillEntries and announced arrivals (see Arrival) are still being verified,
// the committer waits for them, at most lingerCap (under the intake bench's
// load about 5 events per write; 10 with 32 callers and no HTTP). Nothing waits for a
// timer: a lone event is written at once (timers fire a millisecond late on
// a loaded machine; the cap only guards against a stalled request). Two
// committers: one writes while the other fills (measured 0.74 against 0.71
// with one, per-round ratios of the intake bench; three were no better).
const (
	committers          = 2
	fillEntries         = 8
	lingerCap           = 2 * time.Millisecond
	maxEnvelopeEntries  = 256
	attemptBound        = time.Second
	recentIDsRemembered = 1 << 14
)

// pending is one Accept call waiting for its envelope.
type pending struct {
	ctx      context.Context // the caller's: it may give up (client gone)
	deadline time.Time       // Config.AcceptBound after the call
	a        Accepted
	size     int
	done     chan error // buffered: the committer never blocks on it
}

// pendings recycles pending values: a waiter that got its answer owns its
// pending again (the committer never touches it after the send).
var pendings = sync.Pool{New: func() any { return &pending{done: make(chan error, 1)} }}

func newPending(ctx context.Context, deadline time.Time, a Accepted, size int) *pending {
	p := pendings.Get().(*pending)
	p.ctx, p.deadline, p.a, p.size = ctx, deadline, a, size
	return p
}

// release returns p once its answer was received (never on a path where
// the committer may still answer it).
func (p *pending) release() {
	p.ctx, p.a = nil, Accepted{}
	pendings.Put(p)
}

// Accept stores an event durably: it returns once JetStream has acknowledged
// the journal write holding it (file storage, flushed to the operating
// system, so a kill -9 of the process loses nothing). The distributor then
// moves it into the events stream, deduplicated by ID. duplicate reports an
// ID this process stored recently; an older duplicate is answered as new and
// dropped by the events stream. It answers within Config.AcceptBound
// (without a timer per call: the committer bounds each write by its oldest
// event's deadline). Any failure wraps ErrUnavailable.
func (e *Engine) Accept(ctx context.Context, a Accepted) (duplicate bool, err error) {
	return e.accept(ctx, a, nil)
}

// accept is Accept; arrival, if announced, is settled once the event is
// queued, or withdrawn if it is not queued at all.
func (e *Engine) accept(ctx context.Context, a Accepted, arrival *Arrival) (duplicate bool, err error) {
	defer arrival.Withdraw()
	if e.recent.has(a.ID) {
		return true, nil
	}
	size := entrySize(a)
	if size > e.entryLimit { // known at connect: the server's own limit is checked per envelope
		return false, ErrTooLarge
	}
	p := newPending(ctx, time.Now().Add(e.cfg.AcceptBound), a, size)
	select {
	case e.queue <- p: // the usual case, without a full select
	default:
		if err := e.enqueue(ctx, p); err != nil {
			return false, err
		}
	}
	arrival.settle() // after queueing: a committer that saw it expected finds it
	select {
	case err := <-p.done:
		p.release()
		return false, err
	case <-e.stop:
		return false, ErrUnavailable
	case <-ctx.Done():
		// The envelope may still be written; a retry of this event is then
		// deduplicated by the events stream.
		return false, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// enqueue waits for room in the queue (it is full: the committers are
// behind), or gives up.
func (e *Engine) enqueue(ctx context.Context, p *pending) error {
	select {
	case e.queue <- p:
		return nil
	case <-ctx.Done():
		p.release() // never queued
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-e.stop:
		p.release()
		return ErrUnavailable
	}
}

// JournalWrites is how many envelopes (durable intake writes) the journal
// has taken so far, from any replica: its last sequence, which stays when
// the distributor removes them. Requests per write is how well group commit
// batches (the bench reports it).
func (e *Engine) JournalWrites(ctx context.Context) (uint64, error) {
	info, err := e.journal.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// maxEnvelope is the largest journal message the server takes.
func (e *Engine) maxEnvelope() int { return int(e.nc.MaxPayload()) - 1024 }

// commitLoop writes envelopes until the engine stops. Committers take
// turns to fill (so that they do not split one burst between them), and
// write concurrently.
func (e *Engine) commitLoop() {
	defer e.wg.Done()
	var (
		buf    []byte
		batch  []*pending
		linger = time.NewTimer(lingerCap)
	)
	linger.Stop()
	for {
		e.filling.Lock()
		first := e.carry
		if first == nil {
			select {
			case first = <-e.queue:
			case <-e.stop:
				e.filling.Unlock()
				return
			}
		}
		batch, e.carry = e.fill(append(batch[:0], first), linger)
		e.filling.Unlock()
		buf = e.commit(buf[:0], batch)
		clear(batch) // let the bodies go
	}
}

// fill adds every event already queued to batch and, while it holds fewer
// than fillEntries, waits for announced arrivals (at most lingerCap). carry
// is an event that did not fit.
func (e *Engine) fill(batch []*pending, linger *time.Timer) (_ []*pending, carry *pending) {
	limit, size := e.maxEnvelope(), 0
	for _, p := range batch {
		size += p.size
	}
	armed := false
	defer func() {
		if armed {
			linger.Stop()
		}
	}()
	for len(batch) < maxEnvelopeEntries {
		var p *pending
		select {
		case p = <-e.queue:
		default:
			if len(batch) >= fillEntries || e.expected.Load() == 0 {
				return batch, nil
			}
			if !armed {
				linger.Reset(e.lingerCap)
				armed = true
			}
			select {
			case p = <-e.queue:
			case <-e.nudge:
				continue // no arrival is expected any more: re-check
			case <-linger.C:
				armed = false
				return batch, nil
			case <-e.stop:
				return batch, nil
			}
		}
		if size+p.size > limit {
			return batch, p
		}
		batch, size = append(batch, p), size+p.size
	}
	return batch, nil
}

// commit writes one envelope and answers its waiters. buf is reused.
func (e *Engine) commit(buf []byte, batch []*pending) []byte {
	now := time.Now()
	live := batch[:0]
	var deadline time.Time
	for _, p := range batch {
		switch {
		case p.ctx.Err() != nil:
			continue // the caller gave up and answered already
		case !now.Before(p.deadline):
			p.done <- fmt.Errorf("%w: not written within %s", ErrUnavailable, e.cfg.AcceptBound)
			continue
		}
		live = append(live, p)
		if deadline.IsZero() || p.deadline.Before(deadline) {
			deadline = p.deadline
		}
	}
	if len(live) == 0 {
		return buf
	}
	err := error(ErrUnavailable)
	if e.Ready() { // checked once per envelope, not per event: it takes the connection's lock
		for _, p := range live {
			buf = appendEntry(buf, p.a)
		}
		if err = e.publishJournal(deadline, buf); err == nil {
			e.recent.addAll(live)
		}
	}
	for _, p := range live {
		p.done <- err
	}
	return buf
}

// publishJournal writes one envelope before deadline. Each attempt is
// bounded by attemptBound: a write sent just as the connection dropped, or
// to a server still recovering its streams, gets no answer at all, and
// waiting for the whole bound would hold every later envelope back. A
// cluster electing a stream leader answers "no responders" for a few
// seconds. Both are retried; a repeated envelope only repeats event ids,
// which the events stream drops.
func (e *Engine) publishJournal(deadline time.Time, data []byte) error {
	msg := &nats.Msg{Subject: SubjectJournal, Data: data}
	attempt := func() error {
		ctx, cancel := context.WithDeadline(context.Background(), earliest(deadline, time.Now().Add(attemptBound)))
		defer cancel()
		_, err := e.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(StreamJournal))
		return err
	}
	err := attempt()
	for err != nil && Transient(err) && time.Now().Before(deadline) && e.Ready() {
		select {
		case <-e.stop:
			return ErrUnavailable
		case <-time.After(50 * time.Millisecond):
			err = attempt()
		}
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return ErrTooLarge
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
