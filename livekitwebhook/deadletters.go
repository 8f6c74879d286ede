package livekitwebhook

import (
	"context"
	"fmt"
	"time"

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
