package livekitwebhook

import (
	"context"

	"github.com/livekit/protocol/livekit"
)

// EventHook is called with an applied event and the session view after it
// was applied. A returned error makes the processor retry the hook (with
// backoff) and dead-letter the event after Config.MaxAttempts.
type EventHook func(ctx context.Context, ev *livekit.WebhookEvent, s Session) error

// Hooks are optional callbacks; nil fields are skipped. Every event hook is
// called at least once per event id, and not again for an id once it
// returned nil: the success is recorded durably before the event is acked.
// Only a crash between a hook's return and that record repeats a call, so a
// hook with outside effects should still be idempotent by event id.
type Hooks struct {
	OnRoomStarted        EventHook
	OnRoomFinished       EventHook
	OnParticipantJoined  EventHook
	OnParticipantLeft    EventHook
	OnParticipantAborted EventHook
	OnTrackPublished     EventHook
	OnTrackUnpublished   EventHook
	OnEgressEnded        EventHook
	// OnEvent sees every event, known or not, after the specific hook.
	OnEvent EventHook
	// OnSessionEnded receives the final report, once per room sid.
	OnSessionEnded func(ctx context.Context, r Report) error
	// OnError is told about every failed attempt and every dead letter
	// (ev is nil for failures outside an event, such as a report).
	OnError func(ctx context.Context, ev *livekit.WebhookEvent, err error)
}

// ComposeHooks merges several Hooks into one: for each field the non-nil
// functions run in order and the first error stops the chain. Prefer passing
// several Hooks to WithHooks when each should be retried on its own.
func ComposeHooks(hooks ...Hooks) Hooks {
	var out Hooks
	for _, slot := range eventSlots {
		var fns []EventHook
		for i := range hooks {
			if f := *slot.field(&hooks[i]); f != nil {
				fns = append(fns, f)
			}
		}
		if len(fns) > 0 {
			*slot.field(&out) = chainEventHooks(fns)
		}
	}
	var ended []func(context.Context, Report) error
	var onErr []func(context.Context, *livekit.WebhookEvent, error)
	for _, h := range hooks {
		if h.OnSessionEnded != nil {
			ended = append(ended, h.OnSessionEnded)
		}
		if h.OnError != nil {
			onErr = append(onErr, h.OnError)
		}
	}
	if len(ended) > 0 {
		out.OnSessionEnded = func(ctx context.Context, r Report) error {
			for _, f := range ended {
				if err := f(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if len(onErr) > 0 {
		out.OnError = func(ctx context.Context, ev *livekit.WebhookEvent, err error) {
			for _, f := range onErr {
				f(ctx, ev, err)
			}
		}
	}
	return out
}

func chainEventHooks(fns []EventHook) EventHook {
	return func(ctx context.Context, ev *livekit.WebhookEvent, s Session) error {
		for _, f := range fns {
			if err := f(ctx, ev, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// eventSlot names one EventHook field and the events that trigger it.
type eventSlot struct {
	name  string
	event string // "" = every event (OnEvent)
	field func(*Hooks) *EventHook
}

// eventSlots is ordered: specific hooks first, OnEvent last.
var eventSlots = []eventSlot{
	{"OnRoomStarted", "room_started", func(h *Hooks) *EventHook { return &h.OnRoomStarted }},
	{"OnRoomFinished", "room_finished", func(h *Hooks) *EventHook { return &h.OnRoomFinished }},
	{"OnParticipantJoined", "participant_joined", func(h *Hooks) *EventHook { return &h.OnParticipantJoined }},
	{"OnParticipantLeft", "participant_left", func(h *Hooks) *EventHook { return &h.OnParticipantLeft }},
	{"OnParticipantAborted", "participant_connection_aborted", func(h *Hooks) *EventHook { return &h.OnParticipantAborted }},
	{"OnTrackPublished", "track_published", func(h *Hooks) *EventHook { return &h.OnTrackPublished }},
	{"OnTrackUnpublished", "track_unpublished", func(h *Hooks) *EventHook { return &h.OnTrackUnpublished }},
	{"OnEgressEnded", "egress_ended", func(h *Hooks) *EventHook { return &h.OnEgressEnded }},
	{"OnEvent", "", func(h *Hooks) *EventHook { return &h.OnEvent }},
}

// boundHook is one (Hooks value, slot) pair, the unit of retry and of the
// "called once per event id" record.
type boundHook struct {
	id   uint   // bit index in the pending mask
	name string // for spans and errors
	fn   EventHook
}

// hookTable lists, per event name, the hooks it triggers. Built once.
type hookTable struct {
	byEvent  map[string][]boundHook
	anyEvent []boundHook
	all      []Hooks
}

func newHookTable(all []Hooks) hookTable {
	t := hookTable{byEvent: map[string][]boundHook{}, all: all}
	var id uint
	for i := range all {
		for _, slot := range eventSlots {
			f := *slot.field(&all[i])
			if f == nil {
				continue
			}
			b := boundHook{id: id, name: slot.name, fn: f}
			id++
			if slot.event == "" {
				t.anyEvent = append(t.anyEvent, b)
			} else {
				t.byEvent[slot.event] = append(t.byEvent[slot.event], b)
			}
		}
	}
	return t
}

// forEvent returns the hooks an event triggers, specific ones first.
func (t hookTable) forEvent(event string) []boundHook {
	spec := t.byEvent[event]
	if len(t.anyEvent) == 0 {
		return spec
	}
	out := make([]boundHook, 0, len(spec)+len(t.anyEvent))
	return append(append(out, spec...), t.anyEvent...)
}
