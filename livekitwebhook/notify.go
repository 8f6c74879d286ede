package livekitwebhook

import (
	"context"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// WatchRoomFinished returns a channel that is closed once a room_finished
// event of roomName has been processed (by any replica), or when ctx ends.
// The signal is derived from stored state, so it is not missed by a watch
// begun after the fact: if the latest room_finished under roomName was
// processed already, the channel is closed at once. The watch outlives
// engine restarts (and NATS disconnects) until ctx ends. A room_finished
// of a room of that name in any project counts: with several projects
// that share room names, use WatchProjectRoomFinished.
func (r *Receiver) WatchRoomFinished(ctx context.Context, roomName string) (<-chan struct{}, error) {
	return r.watchFinished(ctx, "", roomName, false)
}

// WatchProjectRoomFinished is WatchRoomFinished for the room of one
// project (a project name, or one of its API keys).
func (r *Receiver) WatchProjectRoomFinished(ctx context.Context, project, roomName string) (<-chan struct{}, error) {
	return r.watchFinished(ctx, project, roomName, false)
}

// watchFinished is WatchRoomFinished in project q ("" for any); with
// skipPast, a room_finished processed before the watch began (of the room
// sid then current under the name, which a new room may reuse) does not
// count.
func (r *Receiver) watchFinished(ctx context.Context, q, roomName string, skipPast bool) (<-chan struct{}, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	project := ""
	if q != "" {
		project = r.projects.resolve(q)
	}
	marks, err := eng.Names.Project(project).WatchFinished(ctx, roomName)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		skip := ""
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-marks:
				if !ok {
					// The engine was lost: watch on its successor. A mark
					// written meanwhile is its current value there.
					if eng, marks = r.nextEngine(ctx, eng, project, roomName); eng == nil {
						return
					}
					skipPast = false
					continue
				}
				if m.Current && skipPast {
					skip = m.SID
					continue
				}
				if m.SID != skip {
					return
				}
			case <-eng.Lost():
				if eng, marks = r.nextEngine(ctx, eng, project, roomName); eng == nil {
					return
				}
				skipPast = false
			}
		}
	}()
	return done, nil
}

// nextEngine waits for an engine other than old and watches roomName's
// finished mark on it; nil when ctx ends first.
func (r *Receiver) nextEngine(ctx context.Context, old *engine.Engine, project, roomName string) (*engine.Engine, <-chan engine.Finished) {
	for {
		if eng := r.engine(); eng != nil && eng != old {
			if marks, err := eng.Names.Project(project).WatchFinished(ctx, roomName); err == nil {
				return eng, marks
			}
			old = nil // a failed watch on the new engine: try it again
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, nil
		}
	}
}
