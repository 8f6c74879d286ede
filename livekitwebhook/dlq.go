package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// DeadLetter is an event whose processing failed Config.MaxAttempts times,
// or one that owes a call to a hook no registration has (ErrUnknownHook).
// Its body is kept verbatim; Replay runs it again. A report that owes such
// a call is dead-lettered too: Event "session_report", EventID its room sid.
type DeadLetter struct {
	Seq      uint64    `json:"seq"`
	EventID  string    `json:"event_id"`
	Event    string    `json:"event"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"dead_lettered_at"`
}

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

// DeadLetters lists the dead letters, oldest first, at most limit (0: all).
func (r *Receiver) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	var out []DeadLetter
	err := eng.DeadLetters.Each(ctx, func(dl engine.DeadLetter) bool {
		out = append(out, deadLetterOf(dl))
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

func deadLetterOf(dl engine.DeadLetter) DeadLetter {
	return DeadLetter{Seq: dl.Seq, EventID: dl.EventID, Event: dl.Event, Error: dl.Error, Attempts: dl.Attempts, At: dl.At}
}

// Replay puts dead letters back into processing: the one with event id id,
// or all of them when id is "". Hooks that already succeeded for an event
// are not called again (the hooks it still owes are named in the room
// record, so a replay calls those of them registered now). It returns how
// many were replayed.
func (r *Receiver) Replay(ctx context.Context, id string) (int, error) {
	eng := r.engine()
	if eng == nil {
		return 0, ErrEngineUnavailable
	}
	n := 0
	var failed error
	err := eng.DeadLetters.Each(ctx, func(dl engine.DeadLetter) bool {
		if id != "" && dl.EventID != id {
			return true
		}
		if failed = eng.DeadLetters.Replay(ctx, dl, eventSessionReport); failed != nil {
			return false
		}
		n++
		return true
	})
	if err == nil {
		err = failed
	}
	if err != nil {
		return n, err
	}
	if id != "" && n == 0 {
		return 0, fmt.Errorf("no dead letter with event id %q", id)
	}
	return n, nil
}
