package livekitwebhook

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/console"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// consoleHandler is the operator's console at Config.ConsolePath, under
// the admin rule of the sessions API plus its own login cookie and CSRF
// tokens (see internal/console). Built once per Receiver.
func (r *Receiver) consoleHandler() http.Handler {
	r.consoleOnce.Do(func() {
		c, err := console.New(consoleSource{r}, console.Options{
			Path:     strings.TrimSuffix(r.cfg.ConsolePath, "/"),
			Token:    r.cfg.AdminToken,
			Access:   func(req *http.Request) (int, string) { return accessRefusal(r.cfg.AdminToken, req) },
			TraceURL: r.cfg.ConsoleTraceURL,
			Projects: r.projects.all,
			Logger:   r.log,
		})
		if err != nil { // the embedded templates do not parse: a build defect
			r.log.Error("console unavailable", "error", err.Error())
			r.console = http.NotFoundHandler()
			return
		}
		r.console = c
	})
	return r.console
}

// consoleSource is what the console reads, from the Receiver.
type consoleSource struct{ r *Receiver }

var _ console.Source = consoleSource{}

func (s consoleSource) eng() (*engine.Engine, error) {
	if e := s.r.engine(); e != nil {
		return e, nil
	}
	return nil, ErrEngineUnavailable
}

func (s consoleSource) ActiveSessions(ctx context.Context) ([][]byte, error) {
	list, err := s.r.ActiveSessions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(list))
	for _, a := range list {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (s consoleSource) EndedBefore(ctx context.Context, cursor uint64, f func(uint64, []byte) bool) error {
	eng, err := s.eng()
	if err != nil {
		return err
	}
	return eng.Reports.Before(ctx, cursor, func(seq uint64, _ time.Time, report []byte) bool { return f(seq, report) })
}

func (s consoleSource) EndedSince(ctx context.Context, t time.Time) (int, error) {
	eng, err := s.eng()
	if err != nil {
		return 0, err
	}
	return eng.Reports.CountSince(ctx, t)
}

// record finds room sid's record. Each project keeps its rooms apart: the
// project the calls list links with is looked up first, then every
// configured project, then the layout before projects.
func (s consoleSource) record(ctx context.Context, eng *engine.Engine, project, sid string) (*roomRecord, error) {
	if sid == "" {
		return nil, nil
	}
	return roomInAnyProject(ctx, eng, s.r.projects.searchOrder(project), sid)
}

func (s consoleSource) Session(ctx context.Context, project, sid string) ([]byte, string, bool, error) {
	eng, err := s.eng()
	if err != nil {
		return nil, "", false, err
	}
	rec, err := s.record(ctx, eng, project, sid)
	if err != nil || rec == nil {
		return nil, "", false, err
	}
	b, err := json.Marshal(viewOf(rec))
	return b, rec.TraceParent, err == nil, err
}

func (s consoleSource) RoomEvents(ctx context.Context, roomName, sid string, limit int) ([]console.StoredEvent, error) {
	eng, err := s.eng()
	if err != nil {
		return nil, err
	}
	list, err := eng.Events.OfRoom(ctx, roomName, sid, limit)
	out := make([]console.StoredEvent, len(list))
	for i, e := range list {
		out[i] = console.StoredEvent{Seq: e.Seq, StoredAt: e.StoredAt, ID: e.ID, Event: e.Event, Body: e.Body}
	}
	return out, err
}

// Trail is the room's trail stream, and when each event was applied (kept
// in the room's record).
func (s consoleSource) Trail(ctx context.Context, project, sid string, limit int) ([]console.TrailEntry, error) {
	eng, err := s.eng()
	if err != nil {
		return nil, err
	}
	var out []console.TrailEntry
	if rec, err := s.record(ctx, eng, project, sid); err != nil {
		return nil, err
	} else if rec != nil {
		for id, ms := range rec.AppliedMs {
			out = append(out, console.TrailEntry{Kind: engine.TrailApplied, EventID: id, At: time.UnixMilli(ms).UTC()})
		}
		for k, ms := range rec.HookOKMs {
			id, hook := engine.SplitHookCallKey(k)
			e := console.TrailEntry{Kind: engine.TrailHook, EventID: id, Hook: hook, At: time.UnixMilli(ms).UTC()}
			if id == eventSessionReport { // as trailHook records the report's hooks
				e.EventID, e.Event = rec.State.RoomSID, eventSessionReport
			}
			out = append(out, e)
		}
	}
	list, err := eng.Trail.Of(ctx, sid, limit)
	for _, e := range list {
		out = append(out, console.TrailEntry{Kind: e.Kind, EventID: e.EventID, Event: e.Event, Stage: e.Stage, Hook: e.Hook, Error: e.Error, At: e.At()})
	}
	// In time order: the console numbers a hook's attempts in this order.
	slices.SortStableFunc(out, func(a, b console.TrailEntry) int { return a.At.Compare(b.At) })
	return out, err
}

func (s consoleSource) DeadLetters(ctx context.Context) ([]console.DeadLetter, error) {
	list, err := s.r.DeadLetters(ctx, 0)
	out := make([]console.DeadLetter, len(list))
	for i, d := range list {
		out[i] = console.DeadLetter(d)
	}
	return out, err
}

func (s consoleSource) DeadLetterCount(ctx context.Context) (int, error) {
	eng, err := s.eng()
	if err != nil {
		return 0, err
	}
	n, err := eng.DeadLetters.Count(ctx)
	return int(n), err
}

func (s consoleSource) Replay(ctx context.Context, id string) (int, error) {
	return s.r.Replay(ctx, id)
}

func (s consoleSource) Refusals() []console.Refusal { return s.r.recent.refusalList() }

func (s consoleSource) Gauges(ctx context.Context) (console.Gauges, error) {
	var g console.Gauges
	j, ev, err := s.r.Backlog(ctx)
	if err != nil {
		return g, err
	}
	g.JournalBacklog, g.EventBacklog = j, ev
	g.LagSamples, g.LagP50, g.LagP95, g.LagMax = s.r.recent.lagStats()
	return g, nil
}

// Verify explains a captured request with the configured keys, as
// `lkwebhook verify` does. With a key provider other than the configured
// keys (WithKeyProvider), only the verdict is known.
func (s consoleSource) Verify(authorization string, body []byte) console.Verdict {
	keys, _ := s.r.cfg.keySet()
	var v console.Verdict
	if len(keys) > 0 {
		e := verify.Explain(keys, authorization, body, time.Now(), s.r.d.leeway)
		v = console.Verdict{OK: e.OK, Reason: e.Reason, Lines: e.Lines}
	} else {
		_, err := s.r.verifier.Verify(authorization, "", body)
		v = console.Verdict{OK: err == nil, Reason: "ok"}
		if err != nil {
			v.Reason = verify.Reason(err)
			v.Lines = []string{err.Error()}
		}
	}
	if v.OK {
		ev := &livekit.WebhookEvent{}
		if decodeOpts.Unmarshal(body, ev) == nil {
			if b, err := protoIndent.Marshal(ev); err == nil {
				v.Event = string(b)
			}
		}
	}
	return v
}

// protoIndent renders a decoded event for reading.
var protoIndent = protojson.MarshalOptions{Multiline: true, Indent: "  "}
