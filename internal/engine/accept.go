package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTooLarge means the message exceeds the server's max payload.
var ErrTooLarge = errors.New("event larger than the engine's max payload")

// Accepted is one verified webhook to store.
type Accepted struct {
	ID     string      // dedupe key: the event id, or a body-derived key
	Room   string      // room name ("" for events without a room)
	Event  string      // event name
	Body   []byte      // the exact raw body LiveKit signed
	Header nats.Header // trace context and anything else to carry along
}

// Accept stores an event durably. It returns once JetStream has acknowledged
// the write (file storage), reporting whether the id was already stored
// within the dedupe window. Any failure wraps ErrUnavailable.
func (e *Engine) Accept(ctx context.Context, a Accepted) (duplicate bool, err error) {
	if !e.Ready() {
		return false, ErrUnavailable
	}
	msg := nats.NewMsg(EventSubject(a.Room, a.Event))
	msg.Data = a.Body
	if a.Header != nil {
		msg.Header = a.Header
	}
	msg.Header.Set(HeaderEvent, a.Event)
	ack, err := e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(StreamEvents))
	// A cluster electing a stream leader answers "no responders" for a few
	// seconds: retry within the caller's bound rather than refuse at once.
	for err != nil && Transient(err) && ctx.Err() == nil && e.Ready() {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-time.After(100 * time.Millisecond):
		}
		ack, err = e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(a.ID), jetstream.WithExpectStream(StreamEvents))
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return false, ErrTooLarge
	}
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return ack.Duplicate, nil
}
