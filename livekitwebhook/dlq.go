package livekitwebhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// deadLetter stores m, an event or a report task named name, in the DLQ
// with its error, then accounts for it. The chain's DeadLetter acks m once
// this returns nil; if the DLQ write fails m is nak'ed and comes back:
// nothing is dropped silently.
func (p *processor) deadLetter(ctx context.Context, m pipeline.Message, name string, ev *livekit.WebhookEvent, id string, cause error, attempts int) error {
	msg, ok := pipeline.Underlying[*engine.Msg](m)
	if !ok {
		return errors.New("livekitwebhook: dead letter: not a stored message")
	}
	if err := p.eng.DeadLetters.Put(ctx, msg, name, id, cause, attempts); err != nil {
		p.log.Error("dead letter not stored, will retry", "event_id", id, "error", err.Error())
		return err
	}
	p.deadLettered(ctx, name, id, ev, cause, attempts)
	sid := lifecycle.RoomSID(ev)
	if name == eventSessionReport {
		sid = id
	}
	p.trail(sid, engine.TrailEntry{Kind: engine.TrailDeadLetter, EventID: id, Event: name, Error: cause.Error()})
	return nil
}

// deadLettered accounts for an event stored in the DLQ, by the processor's
// chains or by the journal's distributor: the metric, the log and OnError
// (ev is nil for a report or an event that could not be decoded).
func (p *processor) deadLettered(ctx context.Context, name, id string, ev *livekit.WebhookEvent, cause error, attempts int) {
	p.tel.deadLetters.Add(ctx, 1, label("event", eventLabel(name)))
	p.log.Error("event dead-lettered", withTrace(ctx, []any{"event", name, "event_id", id,
		"attempts", attempts, "error", cause.Error()})...)
	p.hooks.onError(ctx, ev, fmt.Errorf("dead-lettered after %d attempts: %w", attempts, cause))
}

// decodeOrNil decodes a stored event body, or returns nil.
func decodeOrNil(body []byte) *livekit.WebhookEvent {
	ev := &livekit.WebhookEvent{}
	if decodeOpts.Unmarshal(body, ev) != nil {
		return nil
	}
	return ev
}
