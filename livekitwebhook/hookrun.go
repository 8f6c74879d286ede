package livekitwebhook

import (
	"context"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/core"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/pipeline"
)

// runHooks calls the pending hooks of event id, records the successes, and
// returns the first failure. A pending name no hook has now fails the event
// (retried, then dead-lettered) and is never run as another hook.
func (p *processor) runHooks(ctx context.Context, key, id string, ev *livekit.WebhookEvent, rec *roomRecord, cache *recordCache) error {
	pending := rec.Pending[id]
	if len(pending) == 0 {
		return nil
	}
	view := viewOf(rec)
	var done, okHooks hookNames
	var firstErr error
	for _, name := range pending {
		h, err := p.hooks.eventHook(name, ev.Event)
		if err == nil {
			p.warnIfLegacy(name, h.name)
			if err = p.callHook(ctx, h, ev, view); err != nil {
				err = fmt.Errorf("hook %s: %w", h.name, err)
			}
			if err != nil {
				p.trailHook(rec.State.RoomSID, id, ev.Event, h.name, err)
			}
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		done = append(done, name)
		okHooks = append(okHooks, h.name)
	}
	if len(done) > 0 {
		_, err := p.rooms.Update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
			if cur == nil || len(cur.Pending[id]) == 0 {
				return nil, nil
			}
			next := *cur
			next.Pending = clonePending(cur.Pending)
			left := next.Pending[id].Without(done)
			if len(left) == 0 {
				delete(next.Pending, id)
			} else {
				next.Pending[id] = left
			}
			next.HookOKMs = withHookOK(cur.HookOKMs, id, okHooks)
			return &next, nil
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// warnIfLegacy logs a call owed by registration position (recorded by an
// older version) as it is mapped to a hook: right unless the hooks changed
// across the upgrade.
func (p *processor) warnIfLegacy(recorded, hook string) {
	if isLegacyName(recorded) {
		p.log.Warn("hook call recorded by position by an older version; calling the hook at that position now",
			"position", recorded[1:], "hook", hook)
	}
}

func (p *processor) callHook(ctx context.Context, h boundHook, ev *livekit.WebhookEvent, view Session) error {
	return p.invokeHook(ctx, h.name, view.SessionID, func(ctx context.Context) error { return h.fn(ctx, ev, view) },
		attribute.String(attrEvent, ev.Event), attribute.String(attrEventID, ev.Id))
}

// invokeHook runs one user hook through the hook chain (see chains): in
// its own span, a child of the processing or report span in ctx, with a
// timeout, a panic turned into an error: a hook's bug must not take the
// processor down. The hook's context carries the session id
// (core.GetSessionID), the one its span has as gen_ai.conversation.id.
func (p *processor) invokeHook(ctx context.Context, name, sessionID string, f func(context.Context) error, kv ...attribute.KeyValue) error {
	ctx = core.WithSessionID(ctx, sessionID)
	kv = append(kv, attribute.String(attrHook, name))
	kv = append(kv, sessionAttrs(sessionID)...)
	return p.hook(ctx, &hookCall{fn: f, attrs: kv})
}

// hookCall is one call of a user hook as a pipeline message. It is never
// settled: the event or report it belongs to is.
type hookCall struct {
	fn    func(context.Context) error
	attrs []attribute.KeyValue
}

var _ pipeline.Message = (*hookCall)(nil)

func (*hookCall) Data() []byte            { return nil }
func (*hookCall) Header(string) string    { return "" }
func (*hookCall) Attempt() int            { return 1 }
func (*hookCall) Ack() error              { return nil }
func (*hookCall) Nak(time.Duration) error { return nil }
func (*hookCall) InProgress() error       { return nil }
func (*hookCall) Term() error             { return nil }

// runHookCall is the hook chain's handler.
func runHookCall(ctx context.Context, m pipeline.Message) error {
	c := m.(*hookCall)
	trace.SpanFromContext(ctx).SetAttributes(c.attrs...)
	return c.fn(ctx)
}
