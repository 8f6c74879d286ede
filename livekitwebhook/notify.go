package livekitwebhook

import "context"

// WatchRoomFinished returns a channel that is closed once a room_finished
// event of roomName has been processed (by any replica), or when ctx ends.
func (r *Receiver) WatchRoomFinished(ctx context.Context, roomName string) (<-chan struct{}, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	return eng.WatchFinished(ctx, roomName)
}
