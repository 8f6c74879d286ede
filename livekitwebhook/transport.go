package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"time"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/voice"
	"github.com/lookatitude/beluga-ai/v2/voice/transport"
	"github.com/lookatitude/beluga-ai/v2/voice/transport/providers/livekit"
)

// TransportName is the name this package registers in Beluga's
// voice/transport registry (in init). Beluga's own "livekit" transport
// cannot be registered twice, so the decorator has its own name.
const TransportName = "livekit-webhook"

// ExtraRoomSID is the key of transport.Config.Extra that optionally pins the
// room sid: if the receiver has already processed room_finished of that
// sid, the transport starts closed.
const ExtraRoomSID = "room_sid"

// ExtraProject is the key of transport.Config.Extra that optionally names
// the room's project (a project name or API key, see Config.Projects):
// without it a room_finished of a room of that name in any project closes
// the transport.
const ExtraProject = "project"

// Keys of transport.Config.Extra that TransportConfig fills.
const (
	// extraReceiver holds the *Receiver whose session tracking the transport
	// binds to: the only way the provider finds a receiver, there is no
	// global one.
	extraReceiver = "livekitwebhook.receiver"
	// extraRoom is the LiveKit room name (the key Beluga's "livekit"
	// transport reads too).
	extraRoom = "room"
)

// ErrTransportClosed is the cause of the error Send and AudioOut writes
// return once the transport is closed (by Close or by room_finished).
var ErrTransportClosed = errors.New("livekitwebhook: transport closed")

func init() {
	transport.Register(TransportName, func(cfg transport.Config) (transport.AudioTransport, error) {
		return newTransport(cfg)
	})
}

// TransportConfig returns a copy of base whose Extra carries the receiver
// and the room, ready for transport.New(TransportName, …). base.URL and
// base.Token are those of Beluga's "livekit" transport (both required by
// it); base.Extra is copied, not modified.
func TransportConfig(r *Receiver, room string, base transport.Config) transport.Config {
	extra := make(map[string]any, len(base.Extra)+2)
	for k, v := range base.Extra {
		extra[k] = v
	}
	extra[extraReceiver] = r
	extra[extraRoom] = room
	base.Extra = extra
	return base
}

// Transport is the "livekit-webhook" voice transport: Beluga's "livekit"
// transport bound to one room of a Receiver. It closes itself once the
// receiver (any replica sharing its engine) has processed the room's
// room_finished, which ends Recv and so a voice.VoicePipeline running on it.
// It watches the room by name: a room_finished of any room sid under that
// name, processed after the transport was created, closes it. A
// room_finished processed earlier is only taken into account with
// ExtraRoomSID (room names are often reused). Close unbinds it from the
// receiver. It is safe for concurrent use.
//
// Get one with transport.New(TransportName, TransportConfig(recv, room,
// cfg)); the transport.AudioTransport it returns is a *Transport.
type Transport struct {
	inner   transport.AudioTransport
	recv    *Receiver
	room    string
	project string // "" for any

	cancel context.CancelFunc // ends the room_finished watch
	done   chan struct{}      // closed by Close

	mu       sync.Mutex
	closed   bool
	finished *RoomFinishedError // set when the room's end closed it
	closeErr error
}

var _ transport.AudioTransport = (*Transport)(nil)

// newTransport is the factory registered as TransportName. cfg.Extra must
// hold the receiver under extraReceiver (see TransportConfig) and the room
// name under extraRoom; the receiver must be started. The rest of cfg goes
// to Beluga's livekit.New (URL and Token are required there).
func newTransport(cfg transport.Config) (*Transport, error) {
	const op = "livekitwebhook.transport.new"
	raw, present := cfg.Extra[extraReceiver]
	r, _ := raw.(*Receiver)
	if r == nil {
		msg := fmt.Sprintf("transport %q needs the receiver in Config.Extra[%q] (use livekitwebhook.TransportConfig)", TransportName, extraReceiver)
		if present {
			msg = fmt.Sprintf("transport %q: Config.Extra[%q] holds %T, want a non-nil *livekitwebhook.Receiver", TransportName, extraReceiver, raw)
		}
		return nil, core.NewError(op, core.ErrInvalidInput, msg, nil)
	}
	room, _ := cfg.Extra[extraRoom].(string)
	if room == "" {
		return nil, core.NewError(op, core.ErrInvalidInput,
			fmt.Sprintf("transport %q needs the room name in Config.Extra[%q]", TransportName, extraRoom), nil)
	}
	inner, err := livekit.New(cfg)
	if err != nil {
		return nil, core.NewError(op, core.ErrInvalidInput, "livekit transport", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Subscribe before looking at the stored state, so a room_finished
	// processed in between is not missed.
	project, _ := cfg.Extra[ExtraProject].(string)
	fired, err := r.watchFinished(ctx, project, room, true)
	if err != nil {
		cancel()
		_ = inner.Close()
		return nil, core.NewError(op, core.ErrProviderDown, "receiver not started", err)
	}
	t := &Transport{inner: inner, recv: r, room: room, project: project, cancel: cancel, done: make(chan struct{})}
	if sid, _ := cfg.Extra[ExtraRoomSID].(string); sid != "" {
		s, ok, err := r.SessionByRoomSID(ctx, sid)
		if err != nil {
			_ = t.Close()
			return nil, core.NewError(op, core.ErrProviderDown, "read room state", err)
		}
		if ok && s.EndedAt != nil {
			t.finish(s)
			return t, nil
		}
	}
	go func() {
		select {
		case <-fired:
			// fired also closes when ctx ends, which only Close does.
			if ctx.Err() == nil {
				t.finish(t.endedSession())
			}
		case <-t.done:
		}
	}()
	return t, nil
}

// endedSession reads the room's state once room_finished fired, for its end
// reason. The state is stored before the watch fires (see apply); a read
// failure only loses the reason, so it is bounded and not retried.
func (t *Transport) endedSession() Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, ok, err := t.Session(ctx)
	if err != nil || !ok {
		t.recv.log.Warn("transport: room state unreadable after room_finished; end reason unknown",
			"room_name", t.room, "error", fmt.Sprint(err))
		return Session{RoomName: t.room}
	}
	return s
}

// finish closes the transport because its room (ended session s) finished.
func (t *Transport) finish(s Session) {
	t.mu.Lock()
	if !t.closed {
		t.finished = &RoomFinishedError{Room: t.room, RoomSID: s.RoomSID, SessionID: s.SessionID, Reason: s.EndReason}
	}
	t.mu.Unlock()
	_ = t.Close()
	t.recv.log.Debug("transport closed: room finished", "room_name", t.room)
}

// Room is the LiveKit room name the transport is bound to.
func (t *Transport) Room() string { return t.room }

// Done is closed once the transport is closed, by Close or because the
// room finished.
func (t *Transport) Done() <-chan struct{} { return t.done }

// Finished reports whether the transport closed because the room's
// room_finished was processed.
func (t *Transport) Finished() bool { return t.finishedErr() != nil }

// finishedErr is the error Recv ends with once the room finished, else nil.
func (t *Transport) finishedErr() *RoomFinishedError {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished
}

// Session returns the receiver's current view of the room (its latest room
// sid); ok is false while the receiver has not seen the room.
func (t *Transport) Session(ctx context.Context) (Session, bool, error) {
	return t.recv.sessionByRoomName(ctx, t.project, t.room)
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Recv yields the frames of the underlying LiveKit transport. Once the
// room finished it ends with one last pair (zero frame, *RoomFinishedError),
// so that errors.Is(err, ErrRoomFinished) holds for what
// voice.VoicePipeline.Run returns: Run returns the first error of its
// processor chain as is (beluga-ai v2.13.1 voice/pipeline.go, Run's drain
// loop), and FrameLoop processors pass an input error on unchanged
// (voice/processor.go, handleOneFrame). Closed by Close, or when ctx ends,
// it returns without an error (Run then returns ctx.Err()).
func (t *Transport) Recv(ctx context.Context) iter.Seq2[voice.Frame, error] {
	return func(yield func(voice.Frame, error) bool) {
		if t.isClosed() {
			t.yieldFinished(yield)
			return
		}
		for f, err := range t.inner.Recv(ctx) {
			if err != nil && t.isClosed() {
				break // closed between our check and the inner one
			}
			if !yield(f, err) || err != nil {
				return
			}
			if t.isClosed() {
				break
			}
		}
		if ctx.Err() == nil {
			t.yieldFinished(yield)
		}
	}
}

// yieldFinished yields the room's end, if that is what closed t.
func (t *Transport) yieldFinished(yield func(voice.Frame, error) bool) {
	if fin := t.finishedErr(); fin != nil {
		yield(voice.Frame{}, fin)
	}
}

// Send forwards frame to the underlying transport. After Close (or the
// room's end) it returns a core.Error wrapping ErrTransportClosed, and
// ErrRoomFinished too when the room finished.
func (t *Transport) Send(ctx context.Context, frame voice.Frame) error {
	if err := t.closedErr("send"); err != nil {
		return err
	}
	return t.inner.Send(ctx, frame)
}

// AudioOut returns a writer to the underlying transport's audio output that
// fails with the Send error once the transport is closed.
func (t *Transport) AudioOut() io.Writer { return audioOut{t} }

type audioOut struct{ t *Transport }

// Write forwards to the transport until it is closed.
func (w audioOut) Write(p []byte) (int, error) {
	if err := w.t.closedErr("audio_out"); err != nil {
		return 0, err
	}
	return w.t.inner.AudioOut().Write(p)
}

func (t *Transport) closedErr(op string) error {
	t.mu.Lock()
	closed, finished := t.closed, t.finished
	t.mu.Unlock()
	switch {
	case !closed:
		return nil
	case finished != nil:
		return core.NewError("livekitwebhook.transport."+op, core.ErrInvalidInput,
			fmt.Sprintf("transport closed: room %q finished", t.room),
			fmt.Errorf("%w: %w", ErrTransportClosed, finished))
	default:
		return core.NewError("livekitwebhook.transport."+op, core.ErrInvalidInput,
			"transport closed", ErrTransportClosed)
	}
}

// Close ends Recv, unbinds the transport from the receiver (stops watching
// the room) and closes the underlying transport. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		err := t.closeErr
		t.mu.Unlock()
		return err
	}
	t.closed = true
	t.cancel()
	close(t.done)
	t.closeErr = t.inner.Close()
	err := t.closeErr
	t.mu.Unlock()
	return err
}

// sessionByRoomName returns the session of the latest room sid seen under
// name in project ("" for any, see roomInProjects).
func (r *Receiver) sessionByRoomName(ctx context.Context, project, name string) (Session, bool, error) {
	return r.roomInProjects(ctx, name, project)
}
