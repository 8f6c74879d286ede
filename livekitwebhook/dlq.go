package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
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

// deadLetter stores msg, an event or a report task named name, in the DLQ
// with its error, then acks it. If the DLQ write fails the message is
// nak'ed: nothing is dropped silently.
func (p *processor) deadLetter(ctx context.Context, msg jetstream.Msg, name string, ev *livekit.WebhookEvent, id string, cause error, attempt int) {
	dl := engine.DeadLetterMsg(name, msg.Data(), msg.Headers(), cause, attempt)
	if dl.Header.Get(headerEventID) == "" {
		dl.Header.Set(headerEventID, id)
	}
	dedupe := "dlq/" + id
	if md, err := msg.Metadata(); err == nil {
		dl.Header.Set(engine.HeaderOrigSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		dedupe += "/" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	if _, err := p.eng.JetStream().PublishMsg(ctx, dl, jetstream.WithMsgID(dedupe)); err != nil {
		p.r.log.Error("dead letter not stored, will retry", "event_id", id, "error", err.Error())
		_ = msg.NakWithDelay(backoff(attempt))
		return
	}
	_ = msg.Ack()
	p.r.deadLettered(ctx, name, id, ev, cause, attempt)
}

// deadLettered accounts for an event stored in the DLQ, by the processor or
// by the journal's distributor: the metric, the log and OnError (ev is nil
// for a report or an event that could not be decoded).
func (r *Receiver) deadLettered(ctx context.Context, name, id string, ev *livekit.WebhookEvent, cause error, attempts int) {
	r.tel.deadLetters.Add(ctx, 1, label("event", eventLabel(name)))
	r.log.Error("event dead-lettered", withTrace(ctx, []any{"event", name, "event_id", id,
		"attempts", attempts, "error", cause.Error()})...)
	r.callOnError(ctx, ev, fmt.Errorf("dead-lettered after %d attempts: %w", attempts, cause))
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
	var out []DeadLetter
	err := r.eachDeadLetter(ctx, func(m *jetstream.RawStreamMsg) bool {
		out = append(out, deadLetterOf(m))
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// eachDeadLetter calls f with every stored dead letter, oldest first, until
// f returns false.
func (r *Receiver) eachDeadLetter(ctx context.Context, f func(*jetstream.RawStreamMsg) bool) error {
	eng := r.engine()
	if eng == nil {
		return ErrEngineUnavailable
	}
	info, err := eng.DLQ.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := eng.DLQ.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // replayed and deleted
		}
		if err != nil {
			return err
		}
		if !f(m) {
			return nil
		}
	}
	return nil
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	attempts, _ := strconv.Atoi(m.Header.Get(engine.HeaderAttempts))
	return DeadLetter{
		Seq:      m.Sequence,
		EventID:  m.Header.Get(headerEventID),
		Event:    m.Header.Get(engine.HeaderEvent),
		Error:    m.Header.Get(engine.HeaderError),
		Attempts: attempts,
		At:       m.Time.UTC(),
	}
}

// Replay puts dead letters back into processing: the one with event id id,
// or all of them when id is "". Hooks that already succeeded for an event
// are not called again. It returns how many were replayed.
func (r *Receiver) Replay(ctx context.Context, id string) (int, error) {
	eng := r.engine()
	if eng == nil {
		return 0, ErrEngineUnavailable
	}
	n := 0
	var failed error
	err := r.eachDeadLetter(ctx, func(m *jetstream.RawStreamMsg) bool {
		dl := deadLetterOf(m)
		if id != "" && dl.EventID != id {
			return true
		}
		if failed = r.replayOne(ctx, eng, m, dl); failed != nil {
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

// replayOne publishes a dead letter back onto its event subject (a report:
// its task's), then removes it from the DLQ. The hooks it still owes are
// named in the room record, so a replay calls those of them registered now.
func (r *Receiver) replayOne(ctx context.Context, eng *engine.Engine, m *jetstream.RawStreamMsg, dl DeadLetter) error {
	subject := engine.EventSubject(m.Header.Get(headerRoomKey), dl.Event)
	if dl.Event == eventSessionReport {
		var t task
		if err := json.Unmarshal(m.Data, &t); err != nil {
			return fmt.Errorf("dead letter %d: %w", dl.Seq, err)
		}
		subject = engine.TaskSubject(t.Kind, t.SID)
	}
	msg := nats.NewMsg(subject)
	msg.Data = m.Data
	for k, v := range m.Header {
		switch k {
		case engine.HeaderError, engine.HeaderAttempts, engine.HeaderOrigSeq:
		default:
			if !strings.HasPrefix(k, "Nats-") {
				msg.Header[k] = v
			}
		}
	}
	// A fresh message id: the original id is still inside the dedupe
	// window and would be dropped as a duplicate.
	replayID := "replay/" + dl.EventID + "/" + strconv.FormatUint(dl.Seq, 10)
	if _, err := eng.JetStream().PublishMsg(ctx, msg, jetstream.WithMsgID(replayID)); err != nil {
		return err
	}
	if err := eng.DLQ.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}
