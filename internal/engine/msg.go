package engine

import (
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Headers a stored event carries: intake sets them (NewAccepted), the
// processor reads them (Msg).
const (
	HeaderEventID = "Lkwh-Event-Id"
	HeaderRoomKey = "Lkwh-Room"
	HeaderRoomSID = "Lkwh-Room-Sid"
	// HeaderAPIKey is the API key whose secret verified the event's
	// signature (never the secret): its project. Absent on events
	// journaled before projects, and on legacy signatures.
	HeaderAPIKey = "Lkwh-Api-Key"
)

// Msg is one delivery of a stored event or task over a JetStream message
// (it is an internal/pipeline.Message), with what the processor reads of it
// by name.
type Msg struct {
	m       jetstream.Msg
	attempt int
	seq     uint64
}

func newMsg(m jetstream.Msg) *Msg {
	msg := &Msg{m: m, attempt: 1}
	if md, err := m.Metadata(); err == nil {
		msg.attempt, msg.seq = int(md.NumDelivered), md.Sequence.Stream
	}
	return msg
}

// Data is the message body.
func (m *Msg) Data() []byte { return m.m.Data() }

// Header returns the first value of a header ("" if absent).
func (m *Msg) Header(key string) string { return http.Header(m.m.Headers()).Get(key) }

// Headers returns every header, for carriers (trace context).
func (m *Msg) Headers() http.Header { return http.Header(m.m.Headers()) }

// Attempt is the delivery count: 1 on the first delivery.
func (m *Msg) Attempt() int { return m.attempt }

// Seq is the message's stream sequence (0 if unknown).
func (m *Msg) Seq() uint64 { return m.seq }

// EventID is the id of a stored event.
func (m *Msg) EventID() string { return m.Header(HeaderEventID) }

// Event is the event name of a stored event.
func (m *Msg) Event() string { return m.Header(HeaderEvent) }

// RoomKey is the routing form of a stored event's room name.
func (m *Msg) RoomKey() string { return m.Header(HeaderRoomKey) }

// APIKey is the signing key of a stored event ("" if none, see
// HeaderAPIKey).
func (m *Msg) APIKey() string { return m.Header(HeaderAPIKey) }

// Ack settles the message as done.
func (m *Msg) Ack() error { return m.m.Ack() }

// Nak has it delivered again after delay.
func (m *Msg) Nak(delay time.Duration) error {
	if delay <= 0 {
		return m.m.Nak()
	}
	return m.m.NakWithDelay(delay)
}

// InProgress restarts its ack wait.
func (m *Msg) InProgress() error { return m.m.InProgress() }

// Term settles it as never to be delivered again.
func (m *Msg) Term() error { return m.m.Term() }
