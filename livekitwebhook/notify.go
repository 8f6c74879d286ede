package livekitwebhook

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// finishedSubject carries "room_finished was processed" notices (core NATS,
// not stored): any replica's processor reaches watchers on every replica.
func finishedSubject(roomName string) string {
	return "lkwh.notify.finished." + engine.Token(roomName)
}

func (p *processor) notifyFinished(roomName, sid string) {
	if roomName == "" {
		return
	}
	msg := nats.NewMsg(finishedSubject(roomName))
	msg.Header.Set("Lkwh-Room-Name", roomName)
	msg.Data = []byte(sid)
	_ = p.eng.Conn().PublishMsg(msg)
}

// WatchRoomFinished returns a channel that is closed once a room_finished
// event of roomName has been processed (by any replica), or when ctx ends.
func (r *Receiver) WatchRoomFinished(ctx context.Context, roomName string) (<-chan struct{}, error) {
	eng := r.engine()
	if eng == nil {
		return nil, ErrEngineUnavailable
	}
	done := make(chan struct{})
	fired := make(chan struct{}, 1)
	sub, err := eng.Conn().Subscribe(finishedSubject(roomName), func(m *nats.Msg) {
		// Token() can map different names to one subject: check the name.
		if m.Header.Get("Lkwh-Room-Name") == roomName {
			select {
			case fired <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(done)
		defer func() { _ = sub.Unsubscribe() }()
		select {
		case <-fired:
		case <-ctx.Done():
		}
	}()
	return done, nil
}
