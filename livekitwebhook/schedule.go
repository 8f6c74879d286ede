package livekitwebhook

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

// scheduleFinalize publishes the timer once per (kind, room).
func (p *processor) scheduleFinalize(ctx context.Context, rec *roomRecord, kind string, dueMs int64) error {
	return p.scheduleTask(ctx, rec, task{Kind: kind, DueMs: dueMs})
}

// scheduleTask publishes t for rec's room; the message id deduplicates
// repeated scheduling by retries and other replicas, so the first
// scheduling's trace context is the one the task carries: for a finalize
// task, that of the room_finished processing span.
func (p *processor) scheduleTask(ctx context.Context, rec *roomRecord, t task) error {
	t.SID, t.Project = rec.State.RoomSID, rec.State.Project
	hdr := propagation.MapCarrier{}
	p.tel.propagator.Inject(ctx, hdr)
	return p.eng.Tasks.Schedule(ctx, t, hdr)
}
