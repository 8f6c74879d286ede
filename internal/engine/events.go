package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumption is a running consumer: Drain stops fetching and lets what was
// fetched be delivered, Stop stops at once; Closed is closed once nothing
// more is delivered.
type Consumption interface {
	Drain()
	Stop()
	Closed() <-chan struct{}
}

// Events is the events stream and the processor's durable consumer, which
// every replica shares.
type Events struct {
	stream jetstream.Stream
}

// ConsumeOptions shape a consumer of events or tasks.
type ConsumeOptions struct {
	// AckWait: how soon a message a crashed replica held comes back (long
	// work keeps its messages with Msg.InProgress).
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not yet settled.
	MaxAckPending int
	// Fetch is how many messages a pull asks for.
	Fetch int
	// OnError sees the consumer's errors (missed heartbeats excepted).
	OnError func(error)
}

func (o ConsumeOptions) errHandler() jetstream.PullConsumeOpt {
	return jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if o.OnError != nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			o.OnError(err)
		}
	})
}

// Consume delivers stored events to f, through the processor's durable
// consumer (created or updated to o). f settles each message.
func (ev *Events) Consume(ctx context.Context, o ConsumeOptions, f func(*Msg)) (Consumption, error) {
	cons, err := Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return ev.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       ConsumerProcessor,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       o.AckWait,
			MaxDeliver:    -1, // attempts are counted by the processor, then dead-lettered
			MaxAckPending: o.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: processor consumer: %v", ErrUnavailable, err)
	}
	return cons.Consume(func(m jetstream.Msg) { f(newMsg(m)) }, jetstream.PullMaxMessages(o.Fetch), o.errHandler())
}

// Backlog is how many stored events the processor has not settled yet.
func (ev *Events) Backlog(ctx context.Context) (int64, error) {
	c, err := ev.stream.Consumer(ctx, ConsumerProcessor)
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo() // fetched by the lookup just now
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// AckFloor is the stream sequence up to which the processor acked every
// event.
func (ev *Events) AckFloor(ctx context.Context) (uint64, error) {
	c, err := ev.stream.Consumer(ctx, ConsumerProcessor)
	if err != nil {
		return 0, err
	}
	return c.CachedInfo().AckFloor.Stream, nil
}

// EachOfRoomSince calls f with the event id of every stored event of room
// name roomName (and room sid sid, when the event names one) past stream
// sequence floor, one by one, until f returns false. Only events past the
// processor's ack floor can be unprocessed, so the read stays short however
// long the stream.
func (ev *Events) EachOfRoomSince(ctx context.Context, roomName, sid string, floor uint64, f func(eventID string) bool) error {
	return ev.eachOfRoom(ctx, roomName, sid, floor, func(m *jetstream.RawStreamMsg) bool {
		id := m.Header.Get(HeaderEventID)
		return id == "" || f(id)
	})
}

// eachOfRoom calls f with every stored event of room name roomName past
// stream sequence floor that names room sid sid or no sid (the same name's
// other sessions are skipped), subject by subject, until f returns false.
func (ev *Events) eachOfRoom(ctx context.Context, roomName, sid string, floor uint64, f func(*jetstream.RawStreamMsg) bool) error {
	for _, subject := range RoomEventsSubjects(roomName) {
		more := true
		err := eachOnSubject(ctx, ev.stream, subject, floor, func(m *jetstream.RawStreamMsg) bool {
			if s := m.Header.Get(HeaderRoomSID); s != "" && s != sid {
				return true
			}
			more = f(m)
			return more
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// eachOnSubject calls f with the messages of one subject past sequence
// floor, in order, by direct gets (the stream's per-subject index: nothing
// is left on the server), until f returns false or none is left.
func eachOnSubject(ctx context.Context, stream jetstream.Stream, subject string, floor uint64, f func(*jetstream.RawStreamMsg) bool) error {
	for seq := floor + 1; ; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !f(m) {
			return nil
		}
		seq = m.Sequence + 1
	}
}

// Consume delivers due and not-yet-due tasks to f, through the finalizer's
// durable consumer. f settles each message.
func (ts *Tasks) Consume(ctx context.Context, o ConsumeOptions, f func(*Msg)) (Consumption, error) {
	cons, err := Bounded(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return ts.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       ConsumerFinalizer,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       o.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: o.MaxAckPending,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: finalizer consumer: %v", ErrUnavailable, err)
	}
	return cons.Consume(func(m jetstream.Msg) { f(newMsg(m)) }, jetstream.PullMaxMessages(o.Fetch), o.errHandler())
}

// MarkFinished records, durably, that room_finished of room sid sid was
// processed under roomName: the signal WatchFinished reads. Written after
// the room's state, and again on a redelivery, so a crash in between
// leaves no finished room without its mark.
func (n *Names) MarkFinished(ctx context.Context, roomName, sid string) error {
	_, err := n.kv.Put(ctx, n.pfx()+"finished."+Key(roomName), []byte(sid))
	return err
}

// Finished is one value of a room name's finished mark: the room sid whose
// room_finished was processed. Current marks the value stored when the
// watch began (a room_finished processed before it).
type Finished struct {
	SID     string
	Current bool
}

// WatchFinished delivers the finished mark of roomName: its current value
// first, if any, then every new one. The channel is closed when ctx ends
// or the watch does (the connection was lost for good: watch again on the
// next engine).
//
// In a project's view only that project's mark is watched; in the
// unscoped view, the marks of every project (and the unprefixed one), so
// that a watcher that does not know the project sees any room of the name
// finish.
func (n *Names) WatchFinished(ctx context.Context, roomName string) (<-chan Finished, error) {
	keys := finishedKeys(roomName)
	if n.project != "" {
		keys = []string{n.pfx() + "finished." + Key(roomName)}
	}
	w, err := n.kv.WatchFiltered(ctx, keys, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	out := make(chan Finished, 1)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		current := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the current values are delivered
					current = false
					continue
				}
				select {
				case out <- Finished{SID: string(e.Value()), Current: current}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// StoredEvent is one event as the events stream holds it: the exact body
// LiveKit signed, and when it was stored.
type StoredEvent struct {
	Seq      uint64
	StoredAt time.Time
	ID       string
	Event    string
	RoomSID  string // "" when the event named no room sid
	Body     []byte
}

// OfRoom returns up to limit stored events of room name roomName that name
// room sid sid or no sid at all, in stream order. It reads the room name's
// subjects only.
func (ev *Events) OfRoom(ctx context.Context, roomName, sid string, limit int) ([]StoredEvent, error) {
	var out []StoredEvent
	if limit <= 0 {
		return out, nil
	}
	err := ev.eachOfRoom(ctx, roomName, sid, 0, func(m *jetstream.RawStreamMsg) bool {
		out = append(out, StoredEvent{Seq: m.Sequence, StoredAt: m.Time.UTC(), ID: m.Header.Get(HeaderEventID),
			Event: m.Header.Get(HeaderEvent), RoomSID: m.Header.Get(HeaderRoomSID), Body: m.Data})
		return len(out) < limit
	})
	return out, err
}
