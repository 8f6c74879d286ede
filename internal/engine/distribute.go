package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DistributeOptions configures StartDistributor. Every field may be nil.
type DistributeOptions struct {
	// Yield runs before each envelope: the receiver holds distribution
	// back (bounded) while webhook requests are being answered.
	Yield func(context.Context)
	// Duplicate is called for each event the events stream already held.
	Duplicate func(a Accepted)
	// Failed is called when an envelope could not be distributed (it is
	// retried) or an event was refused for good (it goes to the DLQ).
	Failed func(err error)
}

// distributeBound bounds one envelope's writes; past it the envelope is
// retried (the writes already made are deduplicated). distributeAckWait is
// how soon an envelope a crashed replica held is handed to another: short,
// because reports wait for the journal to be handed on.
const (
	distributeBound   = 5 * time.Second
	distributeAckWait = 10 * time.Second
)

// StartDistributor moves journaled envelopes into the events stream, one
// message per event with its ID as the message id, then removes them from
// the journal. It is idempotent: an envelope redelivered after a crash
// writes its events again and the events stream drops them as duplicates.
// Every replica may run one; they share the journal's work queue. Stop the
// returned context to stop it.
func (e *Engine) StartDistributor(ctx context.Context, o DistributeOptions) (jetstream.ConsumeContext, error) {
	cons, err := Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return e.Journal.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       ConsumerDistributor,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       distributeAckWait,
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
		dctx, cancel := context.WithTimeout(ctx, distributeBound)
		err := e.distribute(dctx, msg.Data(), o)
		cancel()
		if err != nil {
			if o.Failed != nil {
				o.Failed(err)
			}
			_ = msg.NakWithDelay(time.Second)
			return
		}
		_ = msg.Ack()
	}
	return cons.Consume(handle, jetstream.PullMaxMessages(16),
		jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
}

// distribute writes the events of one envelope. An envelope that cannot be
// decoded goes to the DLQ whole, so nothing is dropped silently.
func (e *Engine) distribute(ctx context.Context, data []byte, o DistributeOptions) error {
	entries, err := decodeEnvelope(data)
	if err != nil {
		return e.deadLetter(ctx, Accepted{Event: "journal", Body: data}, err, o)
	}
	futures := make([]jetstream.PubAckFuture, len(entries))
	for i, a := range entries {
		f, err := e.js.PublishMsgAsync(eventMsg(a), jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(StreamEvents))
		if err != nil {
			return err
		}
		futures[i] = f
	}
	var failed error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate && o.Duplicate != nil {
				o.Duplicate(entries[i])
			}
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && !Transient(err) {
				// The events stream refuses this event for good.
				err = e.deadLetter(ctx, entries[i], err, o)
			}
			if err != nil && failed == nil {
				failed = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return failed
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

// deadLetter stores an event the events stream refused in the DLQ.
func (e *Engine) deadLetter(ctx context.Context, a Accepted, cause error, o DistributeOptions) error {
	msg := DeadLetterMsg(a.Event, a.Body, a.Header, cause, 1)
	var opts []jetstream.PublishOpt
	if a.ID != "" { // a retried envelope dead-letters its event once
		opts = append(opts, jetstream.WithMsgID("dlq/journal/"+a.ID))
	}
	if _, err := e.js.PublishMsg(ctx, msg, opts...); err != nil {
		return err
	}
	if o.Failed != nil {
		o.Failed(fmt.Errorf("event %q dead-lettered at distribution: %w", a.ID, cause))
	}
	return nil
}

// JournalClearBefore returns a time before which the journal holds no
// envelope: its oldest envelope's time, or when empty the time of asking.
// Every event accepted before it is in the events stream; envelopes only
// leave the journal, and new ones are written later, so it stays true.
func (e *Engine) JournalClearBefore(ctx context.Context) (time.Time, error) {
	now := time.Now()
	info, err := e.Journal.Info(ctx)
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
	info, err := e.Journal.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// DeadLetterMsg is the DLQ message of an event: its body and headers, with
// its last error and attempts. Nats-* headers (message id, expected stream)
// belong to the original publish and would make this one fail or dedupe.
func DeadLetterMsg(event string, body []byte, hdr nats.Header, cause error, attempts int) *nats.Msg {
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
