package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DistributeOptions configures StartDistributor. Every field may be left
// zero.
type DistributeOptions struct {
	// Yield runs before each envelope: the receiver holds distribution
	// back (bounded) while webhook requests are being answered.
	Yield func(context.Context)
	// Duplicate is called for each event the events stream already held.
	Duplicate func(a Accepted)
	// Failed is called when an envelope could not be distributed (it is
	// retried).
	Failed func(err error)
	// DeadLettered is called for each event (or undecodable envelope) the
	// distributor stored in the DLQ instead of the events stream.
	DeadLettered func(a Accepted, cause error, attempts int)
	// MaxAttempts is how many deliveries of an envelope may fail before an
	// event that still fails is dead-lettered (default 8).
	MaxAttempts int
	// Interrupted remembers handling cut short by a lost connection; share
	// one across engine restarts so that a poison event is found.
	Interrupted *Interrupted
	// Lane is held shared while an envelope is handled, and exclusively
	// while a suspect one (see Interrupted) is: share it with everything
	// else handled on the same connection.
	Lane *sync.RWMutex
}

// enter takes the lane for a message, alone if it is a suspect.
func (o *DistributeOptions) enter(suspect bool) (leave func()) {
	switch {
	case o.Lane == nil:
		return func() {}
	case suspect:
		o.Lane.Lock()
		return o.Lane.Unlock
	default:
		o.Lane.RLock()
		return o.Lane.RUnlock
	}
}

func (o *DistributeOptions) maxAttempts() int {
	if o.MaxAttempts <= 0 {
		return 8
	}
	return o.MaxAttempts
}

// ErrConnectionLost is the cause of a dead letter whose handling was cut
// short by the loss of the NATS connection on every attempt: handling it is
// what closes the connection (a poison entry).
var ErrConnectionLost = errors.New("the NATS connection was lost while handling it, on every attempt")

// distributeBound bounds one envelope's writes; past it the envelope is
// retried (the writes already made are deduplicated). distributeAckWait is
// how soon an envelope a crashed replica held is handed to another: short,
// because reports wait for the journal to be handed on.
const (
	distributeBound   = 5 * time.Second
	distributeAckWait = 10 * time.Second
)

// delivery is one delivery of a journal envelope.
type delivery struct {
	key     string // names the envelope in Interrupted
	attempt int    // JetStream's delivery count
	last    bool   // attempt >= MaxAttempts: failing events are dead-lettered
}

// StartDistributor moves journaled envelopes into the events stream, one
// message per event with its ID as the message id, then removes them from
// the journal. It is idempotent: an envelope redelivered after a crash
// writes its events again and the events stream drops them as duplicates.
// An event that still fails on the envelope's last attempt is dead-lettered
// with its error, so that no envelope is retried forever. Every replica may
// run one; they share the journal's work queue. Stop the returned context to
// stop it.
func (e *Engine) StartDistributor(ctx context.Context, o DistributeOptions) (Consumption, error) {
	cons, err := Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return e.journal.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       ConsumerDistributor,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       e.ackWait,
			MaxAckPending: 64,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: distributor: %v", ErrUnavailable, err)
	}
	handle := func(msg jetstream.Msg) {
		if o.Yield != nil {
			o.Yield(ctx)
		}
		d := delivery{attempt: 1}
		if md, err := msg.Metadata(); err == nil {
			d.key = "journal/" + strconv.FormatUint(md.Sequence.Stream, 10)
			d.attempt = int(md.NumDelivered)
		}
		d.last = d.attempt >= o.maxAttempts()
		_, suspect := o.Interrupted.Of(d.key)
		leave := o.enter(suspect)
		dctx, cancel := context.WithTimeout(ctx, distributeBound)
		err := e.distribute(dctx, msg.Data(), d, o)
		cancel()
		if err != nil {
			if o.Failed != nil {
				o.Failed(err)
			}
			_ = msg.NakWithDelay(retryDelay(d.attempt))
		} else {
			_ = msg.Ack()
		}
		o.Interrupted.End(e, d.key)
		leave()
	}
	return cons.Consume(handle, jetstream.PullMaxMessages(16),
		jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
}

// retryDelay spaces the attempts of an envelope: 1s, 2s, 4s, then 5s, so
// that MaxAttempts outlast a leader election, while reports, which wait for
// the journal, are not held back long.
func retryDelay(attempt int) time.Duration {
	return min(time.Second<<min(max(attempt-1, 0), 3), 5*time.Second)
}

// distribute writes the events of one envelope. An envelope that cannot be
// decoded goes to the DLQ whole, so nothing is dropped silently.
func (e *Engine) distribute(ctx context.Context, data []byte, d delivery, o DistributeOptions) error {
	entries, err := decodeEnvelope(data)
	if err != nil {
		return e.deadLetter(ctx, Accepted{Event: "journal", Body: data}, err, d.attempt, o)
	}
	if part, ok := o.Interrupted.Of(d.key); ok {
		return e.distributeEach(ctx, entries, part, d, o)
	}
	if !o.Interrupted.Begin(e, d.key, -1) {
		return ErrUnavailable
	}
	futures := make([]jetstream.PubAckFuture, len(entries))
	errs := make([]error, len(entries))
	for i, a := range entries {
		if errs[i] = e.fault(a); errs[i] == nil {
			futures[i], errs[i] = e.js.PublishMsgAsync(eventMsg(a), jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(StreamEvents))
		}
	}
	var failed error
	for i, f := range futures {
		err := errs[i]
		if err == nil {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate && o.Duplicate != nil {
					o.Duplicate(entries[i])
				}
			case err = <-f.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err != nil {
			err = e.settleFailure(ctx, entries[i], err, d, o)
		}
		if err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// distributeEach writes the events of an envelope whose last delivery was
// cut short by the loss of the connection, alone and one at a time from the
// one being written then, so that a poison event is found. Once the
// envelope is past its attempts, that event is dead-lettered and the rest
// written.
func (e *Engine) distributeEach(ctx context.Context, entries []Accepted, part int, d delivery, o DistributeOptions) error {
	from := max(part, 0)
	if part >= 0 && part < len(entries) && d.attempt > o.maxAttempts() {
		cause := fmt.Errorf("%w (%d deliveries)", ErrConnectionLost, d.attempt-1)
		if err := e.deadLetter(ctx, entries[part], cause, d.attempt-1, o); err != nil {
			return err
		}
		from = part + 1
	}
	for i := from; i < len(entries); i++ {
		if !o.Interrupted.Begin(e, d.key, i) {
			return ErrUnavailable
		}
		a := entries[i]
		err := e.fault(a)
		if err == nil {
			var ack *jetstream.PubAck
			ack, err = e.js.PublishMsg(ctx, eventMsg(a), jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(StreamEvents))
			if err == nil && ack.Duplicate && o.Duplicate != nil {
				o.Duplicate(a)
			}
		}
		if err != nil {
			if err = e.settleFailure(ctx, a, err, d, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// settleFailure dead-letters an event the events stream refuses for good
// (a JetStream API error), or that failed on the envelope's last attempt
// whatever the error; otherwise the envelope is retried.
func (e *Engine) settleFailure(ctx context.Context, a Accepted, err error, d delivery, o DistributeOptions) error {
	var apiErr *jetstream.APIError
	if (errors.As(err, &apiErr) && !Transient(err)) || d.last {
		return e.deadLetter(ctx, a, err, d.attempt, o)
	}
	return err
}

func (e *Engine) fault(a Accepted) error {
	if e.publishFault == nil {
		return nil
	}
	return e.publishFault(a)
}

// eventMsg is the events-stream message of an accepted event.
func eventMsg(a Accepted) *nats.Msg {
	msg := nats.NewMsg(EventSubject(a.Room, a.Event))
	msg.Data = a.Body
	for k, v := range a.Header {
		msg.Header[k] = v
	}
	msg.Header.Set(HeaderEvent, a.Event)
	return msg
}

// deadLetter stores an event the distributor gives up on in the DLQ.
func (e *Engine) deadLetter(ctx context.Context, a Accepted, cause error, attempts int, o DistributeOptions) error {
	msg := DeadLetterMsg(a.Event, a.Body, a.Header, cause, attempts)
	var opts []jetstream.PublishOpt
	if a.ID != "" { // a retried envelope dead-letters its event once
		opts = append(opts, jetstream.WithMsgID("dlq/journal/"+a.ID))
	}
	if _, err := e.js.PublishMsg(ctx, msg, opts...); err != nil {
		return err
	}
	if o.DeadLettered != nil {
		o.DeadLettered(a, cause, attempts)
	}
	return nil
}

// JournalClearBefore returns a time before which the journal holds no
// envelope: its oldest envelope's time, or when empty the time of asking.
// Every event accepted before it is in the events stream; envelopes only
// leave the journal, and new ones are written later, so it stays true.
func (e *Engine) JournalClearBefore(ctx context.Context) (time.Time, error) {
	now := time.Now()
	info, err := e.journal.Info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if info.State.Msgs > 0 && info.State.FirstTime.Before(now) {
		return info.State.FirstTime, nil
	}
	return now, nil
}

// JournalBacklog is how many envelopes wait in the journal.
func (e *Engine) JournalBacklog(ctx context.Context) (uint64, error) {
	info, err := e.journal.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// DeadLetterMsg is the DLQ message of an event: its body and headers, with
// its last error and attempts. Nats-* headers (message id, expected stream)
// belong to the original publish and would make this one fail or dedupe.
func DeadLetterMsg(event string, body []byte, hdr map[string][]string, cause error, attempts int) *nats.Msg {
	msg := nats.NewMsg(DLQSubject(event))
	msg.Data = body
	for k, v := range hdr {
		if !strings.HasPrefix(k, "Nats-") {
			msg.Header[k] = v
		}
	}
	msg.Header.Set(HeaderEvent, event)
	msg.Header.Set(HeaderError, cause.Error())
	msg.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	return msg
}
