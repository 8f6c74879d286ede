package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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
//
// Hooks still owed a call (a failing hook awaiting its retry) are recorded
// by name, so that a retry after a redeploy calls the same hook. Each
// non-nil field of a registration is one hook, named "Name/Field" (such as
// "billing/OnSessionEnded") when Name is set; otherwise by its field, with
// "#2", "#3" … for later unnamed registrations that set the same field
// ("OnSessionEnded#2"). Adding, removing or reordering hooks of other fields
// never renames a hook; give a registration a Name when several set the
// same field. A recorded name no registration has any more (the hook was
// removed or renamed) is never run as another hook: it fails the event,
// which is dead-lettered after Config.MaxAttempts (meanwhile a replica not
// yet redeployed may still run it), or dead-letters the report at once,
// with ErrUnknownHook.
type Hooks struct {
	// Name names these hooks in durable state (see above); unique among
	// the registrations of a Receiver.
	Name string

	OnRoomStarted        EventHook
	OnRoomFinished       EventHook
	OnParticipantJoined  EventHook
	OnParticipantLeft    EventHook
	OnParticipantAborted EventHook
	OnTrackPublished     EventHook
	OnTrackUnpublished   EventHook
	// OnEgressEnded gets every egress_ended of a room, also one that
	// arrives after the room's report was fixed (a recording that outlived
	// Config.EgressWait): its Session is then the stored report, amended.
	OnEgressEnded EventHook
	// OnEvent sees every event, known or not, after the specific hook.
	// Of the events that arrive after their room's report, it sees only
	// the egress events (the others are counted, see
	// AnomalyEventsAfterReport).
	OnEvent EventHook
	// OnSessionEnded receives the final report, once per room sid.
	OnSessionEnded func(ctx context.Context, r Report) error
	// OnError is told about every failed attempt and every dead letter
	// (ev is nil for failures outside an event, such as a report).
	OnError func(ctx context.Context, ev *livekit.WebhookEvent, err error)
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
	name  string // durable: recorded while a call is owed (see Hooks)
	event string // the slot's event; "" for OnEvent
	fn    EventHook
}

// endedHook is one OnSessionEnded function with its durable name.
type endedHook struct {
	name string
	fn   func(context.Context, Report) error
}

// hookTable lists, per event name, the hooks it triggers, and finds the
// hooks a record names. Built once.
type hookTable struct {
	byEvent  map[string][]boundHook
	anyEvent []boundHook
	ended    []endedHook
	all      []Hooks

	// By durable name, plus "#<n>" aliases: records written before hooks
	// had names hold registration positions (see hookNames), read through
	// today's registration order.
	eventByName map[string]boundHook
	endedByName map[string]endedHook
}

// ErrUnknownHook: a record owes a call to a hook no registration of this
// process has (removed or renamed since the call was recorded). The event
// or report is dead-lettered; replay it once a build with the hook runs.
var ErrUnknownHook = errors.New("livekit webhook: hook not registered")

// errDuplicateHooksName: two registrations share a Hooks.Name.
var errDuplicateHooksName = errors.New("two Hooks share a Name")

func newHookTable(all []Hooks) (hookTable, error) {
	t := hookTable{byEvent: map[string][]boundHook{}, all: all,
		eventByName: map[string]boundHook{}, endedByName: map[string]endedHook{}}
	unnamed := map[string]int{} // unnamed registrations so far, per field
	named := map[string]bool{}
	var legacy uint // position numbering of older versions: every event hook in order
	for i := range all {
		h := &all[i]
		if h.Name != "" {
			if named[h.Name] {
				return hookTable{}, fmt.Errorf("%w: %q", errDuplicateHooksName, h.Name)
			}
			named[h.Name] = true
		}
		name := func(field string) string {
			if h.Name != "" {
				return h.Name + "/" + field
			}
			unnamed[field]++
			if n := unnamed[field]; n > 1 {
				return field + "#" + strconv.Itoa(n)
			}
			return field
		}
		for _, slot := range eventSlots {
			f := *slot.field(h)
			if f == nil {
				continue
			}
			b := boundHook{name: name(slot.name), event: slot.event, fn: f}
			t.eventByName[b.name] = b
			t.eventByName[legacyName(legacy)] = b
			legacy++
			if slot.event == "" {
				t.anyEvent = append(t.anyEvent, b)
			} else {
				t.byEvent[slot.event] = append(t.byEvent[slot.event], b)
			}
		}
		if h.OnSessionEnded != nil {
			e := endedHook{name: name("OnSessionEnded"), fn: h.OnSessionEnded}
			t.ended = append(t.ended, e)
			t.endedByName[e.name] = e
			t.endedByName[legacyName(uint(i))] = e // older versions: the Hooks value's index
		}
	}
	return t, nil
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

// eventHook finds the hook a record names for an event. A hook of another
// event is not it: only a position from an older version can point there.
func (t hookTable) eventHook(name, event string) (boundHook, error) {
	b, ok := t.eventByName[name]
	if !ok || (b.event != "" && b.event != event) {
		return boundHook{}, unknownHook(name)
	}
	return b, nil
}

// endedHook finds the OnSessionEnded hook a record names.
func (t hookTable) endedHook(name string) (endedHook, error) {
	e, ok := t.endedByName[name]
	if !ok {
		return endedHook{}, unknownHook(name)
	}
	return e, nil
}

func unknownHook(name string) error {
	if isLegacyName(name) {
		return fmt.Errorf("%w: a call is owed to the hook at registration position %s (recorded by an older version) and no hook of this event is there now", ErrUnknownHook, name[1:])
	}
	return fmt.Errorf("%w: a call is owed to hook %q and no registration has that name now (removed or renamed?)", ErrUnknownHook, name)
}

// eventNames and endedNames are what a record owes: the durable names.
func eventNames(hooks []boundHook) hookNames {
	out := make(hookNames, len(hooks))
	for i, h := range hooks {
		out[i] = h.name
	}
	return out
}

func (t hookTable) endedNames() hookNames {
	out := make(hookNames, len(t.ended))
	for i, e := range t.ended {
		out[i] = e.name
	}
	return out
}

// onError tells every OnError hook about a failure.
func (t hookTable) onError(ctx context.Context, ev *livekit.WebhookEvent, err error) {
	for _, h := range t.all {
		if h.OnError != nil {
			h.OnError(ctx, ev, err)
		}
	}
}
