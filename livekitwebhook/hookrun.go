package livekitwebhook

import (
	"context"
	"fmt"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// runHooks calls the pending hooks of event id, records the successes, and
// returns the first failure.
func (p *processor) runHooks(ctx context.Context, key, id string, ev *livekit.WebhookEvent, rec *roomRecord, cache *recordCache) error {
	pending := rec.Pending[id]
	if len(pending) == 0 {
		return nil
	}
	view := rec.State.Session()
	var done []uint
	var firstErr error
	for _, h := range p.r.hooks.forEvent(ev.Event) {
		if !containsID(pending, h.id) {
			continue
		}
		if err := p.callHook(ctx, h, ev, view); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("hook %s: %w", h.name, err)
			}
			continue
		}
		done = append(done, h.id)
	}
	if len(done) > 0 {
		_, err := p.rooms.update(ctx, key, cache, func(cur *roomRecord) (*roomRecord, error) {
			if cur == nil || len(cur.Pending[id]) == 0 {
				return nil, nil
			}
			next := *cur
			next.Pending = clonePending(cur.Pending)
			left := removeIDs(next.Pending[id], done)
			if len(left) == 0 {
				delete(next.Pending, id)
			} else {
				next.Pending[id] = left
			}
			return &next, nil
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func (p *processor) callHook(ctx context.Context, h boundHook, ev *livekit.WebhookEvent, view Session) error {
	return p.invokeHook(ctx, h.name, func(ctx context.Context) error { return h.fn(ctx, ev, view) },
		attribute.String(attrEvent, ev.Event), attribute.String(attrEventID, ev.Id),
		attribute.String(attrSession, view.SessionID))
}

// invokeHook runs one user hook in its own span, with a timeout, turning a
// panic into an error: a hook's bug must not take the processor down.
func (p *processor) invokeHook(ctx context.Context, name string, f func(context.Context) error, kv ...attribute.KeyValue) (err error) {
	kv = append(kv, attribute.String(attrOpName, spanHook), attribute.String(attrHook, name))
	ctx, span := p.r.tel.tracer.Start(ctx, spanHook, trace.WithAttributes(kv...))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("hook panicked: %v", rec)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "hook failed")
		}
	}()
	return f(ctx)
}

func clonePending(m map[string][]uint) map[string][]uint {
	if m == nil {
		return nil
	}
	out := make(map[string][]uint, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func containsID(ids []uint, id uint) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func removeIDs(ids, done []uint) []uint {
	out := make([]uint, 0, len(ids))
	for _, x := range ids {
		if !containsID(done, x) {
			out = append(out, x)
		}
	}
	return out
}
