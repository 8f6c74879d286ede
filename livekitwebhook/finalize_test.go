package livekitwebhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// TestReportsFollowGraceUnderBurst: rooms finishing all at once are each
// reported once, and none waits for maxFinalizeWait, the bound after which a
// report stops waiting for stored events. Before the fix every report
// past the 999th did (an ephemeral consumer per report, and the server allows
// 1,000 per stream). The bound is structural, not a speed figure:
// BenchmarkBurstReports measures that.
func TestReportsFollowGraceUnderBurst(t *testing.T) {
	const rooms = 2000
	cfg := testConfig(t)
	cfg.FinalizeGrace = "1s"
	w := newReportWatch(rooms)
	tr := startReceiver(t, cfg, WithLogger(slog.New(slog.DiscardHandler)), WithHooks(w.hooks()))
	w.subscribe(t, tr.engine())
	ctx := context.Background()
	consumers := func() int {
		info, err := testStream(t, tr.engine(), engine.StreamEvents).Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	before := consumers()

	_, accepted := finishAtOnce(t, tr.Receiver, rooms)
	bound := maxFinalizeWait * 3 / 4
	select {
	case <-w.all:
	case <-time.After(time.Until(accepted.Add(bound))):
		t.Fatalf("%d of %d rooms reported %s after the burst was accepted (grace 1s)", w.reported(), rooms, bound)
	}
	w.settled(t, tr.Receiver)
	w.checkOnce(t, rooms)
	if n := consumers(); n != before {
		t.Errorf("events stream has %d consumers after the burst, %d before: reports leave consumers behind", n, before)
	}
}

// TestStopMidBurst: a receiver stopped while it is delivering the reports
// of a burst, then started again on its data, reports every room and hands
// each report to OnSessionEnded once: a stop lets the task workers finish the
// timers they hold before it cancels their context.
func TestStopMidBurst(t *testing.T) {
	const rooms = 500
	cfg := testConfig(t)
	cfg.FinalizeGrace = "1s"
	w := newReportWatch(rooms)
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	var entered atomic.Int32
	stopping := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(stopping) }) })
	held := Hooks{OnSessionEnded: func(ctx context.Context, r Report) error {
		entered.Add(1)
		<-stopping // deliveries are under way when the stop begins
		return w.hooks().OnSessionEnded(ctx, r)
	}}
	first := startReceiver(t, cfg, quiet, WithHooks(held))
	w.subscribe(t, first.engine())
	_, _ = finishAtOnce(t, first.Receiver, rooms)
	eventually(t, time.Minute, "a report being delivered", func() bool { return entered.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- first.Stop(ctx) }()
	eventually(t, time.Minute, "the stop under way", func() bool { return first.draining.Load() })
	release.Do(func() { close(stopping) })
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rooms reported before the stop", w.reported())

	second := startReceiver(t, cfg, quiet, WithHooks(w.hooks()))
	w.subscribe(t, second.engine())
	select {
	case <-w.all:
	case <-time.After(time.Minute):
		t.Fatalf("%d of %d rooms reported a minute after the restart", w.reported(), rooms)
	}
	w.settled(t, second.Receiver)
	w.checkOnce(t, rooms)
}

// TestReportWaitsForStoredEvents: a report is not made while an event of its
// room is stored but not applied (here its processing fails until released),
// and then includes it.
func TestReportWaitsForStoredEvents(t *testing.T) {
	var released atomic.Bool
	var failures atomic.Int32
	correlator := CorrelatorFunc(func(_ context.Context, room RoomInfo) (string, bool, error) {
		switch {
		case room.Metadata == "":
			return "", false, nil
		case released.Load():
			return "sess-held", true, nil
		default:
			failures.Add(1)
			return "", false, errors.New("correlation held by the test")
		}
	})
	reports := make(chan Report, 4)
	tr := startReceiver(t, testConfig(t), WithCorrelator(correlator), WithLogger(slog.New(slog.DiscardHandler)),
		WithHooks(Hooks{OnSessionEnded: func(_ context.Context, r Report) error { reports <- r; return nil }}))
	at := time.Now().Unix()
	held := participantEvent("EV_held0000002", "participant_joined", "held", "RM_held", "PA_h", "hana", livekit.ParticipantInfo_STANDARD, at+1, at+1)
	held.Room.Metadata = "hold"
	for _, ev := range []*livekit.WebhookEvent{
		roomEvent("EV_held0000001", "room_started", "held", "RM_held", at),
		held,
		roomEvent("EV_held0000003", "room_finished", "held", "RM_held", at+2),
	} {
		if code, body := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("%s: %d %s", ev.Event, code, body)
		}
	}
	// The timer is delivered before it is due, when due, and again after the
	// report was deferred: a third delivery means the check ran and held it.
	ctx := context.Background()
	finalizer, err := testStream(t, tr.engine(), engine.StreamTasks).Consumer(ctx, engine.ConsumerFinalizer)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the report deferred once", func() bool {
		select {
		case r := <-reports:
			t.Fatalf("report made while an event of the room was not applied: %d events, participants %+v", r.EventsApplied, r.Participants)
		default:
		}
		info, err := finalizer.Info(ctx)
		return err == nil && info.Delivered.Consumer >= 3
	})
	if failures.Load() == 0 {
		t.Fatal("the held event was never processed")
	}
	released.Store(true)
	select {
	case r := <-reports:
		if r.EventsApplied != 3 || len(r.Participants) != 1 || r.SessionID != "sess-held" {
			t.Errorf("report = %d events, participants %+v, session %q; want the held event applied", r.EventsApplied, r.Participants, r.SessionID)
		}
	case <-time.After(time.Minute):
		t.Fatal("no report after the held event was released")
	}
}

// BenchmarkBurstReports: 10,000 rooms (room_started, then room_finished for
// all) posted at once by 32 callers through the handler, grace 1s. It reports
// how long after the last room_finished was accepted the last report came,
// minus the grace (after_grace_s), and reports published or handed to
// OnSessionEnded more than once (duplicates, must be 0).
//
//	go test -run '^$' -bench BurstReports -benchtime 1x ./livekitwebhook
func BenchmarkBurstReports(b *testing.B) {
	const rooms = 10_000
	grace := time.Second
	for range b.N {
		cfg := testConfig(b)
		cfg.FinalizeGrace = grace.String()
		w := newReportWatch(rooms)
		tr := startReceiver(b, cfg, WithLogger(slog.New(slog.DiscardHandler)), WithHooks(w.hooks()))
		w.subscribe(b, tr.engine())
		start, accepted := finishAtOnce(b, tr.Receiver, rooms)
		cpu := cpuTime()
		select {
		case <-w.all:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d rooms reported after 5m", w.reported(), rooms)
		}
		last := w.lastReport()
		reportCPU := cpuTime() - cpu
		w.settled(b, tr.Receiver)
		// The last timer was stored when the last room_finished was applied.
		tasks, err := testStream(b, tr.engine(), engine.StreamTasks).Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		applied := tasks.State.LastTime
		b.ReportMetric(last.Sub(accepted).Seconds()-grace.Seconds(), "after_grace_s")
		b.ReportMetric(float64(w.duplicates()), "duplicates")
		b.ReportMetric(accepted.Sub(start).Seconds(), "intake_s")
		b.ReportMetric(reportCPU.Seconds(), "cpu_s")
		b.ReportMetric(applied.Sub(accepted).Seconds(), "applied_s")
		b.Logf("%d rooms: %d events accepted in %.2fs, all applied %.2fs later; last report %.2fs after the last acceptance (%.2fs after grace %s), %d duplicates; process CPU from the last acceptance to the last report %.2fs",
			rooms, 2*rooms, accepted.Sub(start).Seconds(), applied.Sub(accepted).Seconds(), last.Sub(accepted).Seconds(),
			last.Sub(accepted).Seconds()-grace.Seconds(), grace, w.duplicates(), reportCPU.Seconds())
	}
}

// finishAtOnce posts room_started for each of rooms rooms, then
// room_finished for each, signed, from 32 concurrent callers through h. It
// returns when the first was posted (the signing done) and when the last
// room_finished was accepted.
func finishAtOnce(t testing.TB, h http.Handler, rooms int) (posted, accepted time.Time) {
	t.Helper()
	type signed struct {
		body []byte
		tok  string
	}
	at := time.Now().Unix() - 60
	phase := func(event string, offset int64) []signed {
		out := make([]signed, rooms)
		for i := range out {
			body := marshal(t, roomEvent(fmt.Sprintf("EV_%s_%d", event, i), event, fmt.Sprintf("burst-%d", i), fmt.Sprintf("RM_burst_%d", i), at+offset))
			out[i] = signed{body, sign(t, testKey, testSecret, body, time.Hour)}
		}
		return out
	}
	post := func(reqs []signed) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(reqs)); i = next.Add(1) - 1 {
					req := httptest.NewRequest(http.MethodPost, "/voice/livekit/webhooks", bytes.NewReader(reqs[i].body))
					req.Header.Set("Authorization", reqs[i].tok)
					req.Header.Set("Content-Type", ContentType)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						t.Errorf("status %d: %s", rec.Code, rec.Body)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	started, finished := phase("room_started", 0), phase("room_finished", 30)
	posted = time.Now()
	post(started)
	post(finished)
	if t.Failed() {
		t.FailNow()
	}
	return posted, time.Now()
}

// reportWatch counts reports per room sid two ways: every publish on the
// reports subject (a core subscription sees duplicates the stream would
// drop) and every OnSessionEnded call.
type reportWatch struct {
	want int
	all  chan struct{} // closed once every room was reported both ways

	mu        sync.Mutex
	published map[string]int
	ended     map[string]int
	last      time.Time
	closed    bool
}

func newReportWatch(rooms int) *reportWatch {
	return &reportWatch{want: rooms, all: make(chan struct{}), published: map[string]int{}, ended: map[string]int{}}
}

func (w *reportWatch) hooks() Hooks {
	return Hooks{OnSessionEnded: func(_ context.Context, r Report) error {
		w.count(w.ended, r.RoomSID)
		return nil
	}}
}

func (w *reportWatch) subscribe(t testing.TB, eng *engine.Engine) {
	t.Helper()
	testSubscribe(t, eng, "lkwh.reports.>", func(m testMsg) { w.count(w.published, m.Header.Get("Lkwh-Room-Sid")) })
}

func (w *reportWatch) count(m map[string]int, sid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m[sid]++
	w.last = time.Now()
	if !w.closed && len(w.published) == w.want && len(w.ended) == w.want {
		w.closed = true
		close(w.all)
	}
}

func (w *reportWatch) reported() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return min(len(w.published), len(w.ended))
}

func (w *reportWatch) lastReport() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// settled waits until no timer is left on the tasks stream, so no report can
// still be published, and for every publish to have reached the watch.
func (w *reportWatch) settled(t testing.TB, r *Receiver) {
	t.Helper()
	eventually(t, time.Minute, "every task acked", func() bool {
		info, err := testStream(t, r.engine(), engine.StreamTasks).Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	if err := r.engine().Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func (w *reportWatch) duplicates() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range []map[string]int{w.published, w.ended} {
		for _, c := range m {
			n += c - 1
		}
	}
	return n
}

// checkOnce fails unless every room of the burst was published and handed
// to OnSessionEnded exactly once.
func (w *reportWatch) checkOnce(t testing.TB, rooms int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range rooms {
		sid := fmt.Sprintf("RM_burst_%d", i)
		if p, e := w.published[sid], w.ended[sid]; p != 1 || e != 1 {
			t.Errorf("room %s: published %d times, OnSessionEnded %d times; want 1 and 1", sid, p, e)
		}
	}
	if len(w.published) != rooms || len(w.ended) != rooms {
		t.Errorf("reports for %d (published) and %d (ended) rooms, want %d", len(w.published), len(w.ended), rooms)
	}
}

// TestFailingSessionEndedHookDeadLettered: an OnSessionEnded hook that keeps
// failing is dead-lettered after MaxAttempts failed calls (before, the
// report task was retried forever and nothing showed in the DLQ); the
// report itself is stored; Replay calls the hook again.
func TestFailingSessionEndedHookDeadLettered(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var calls, ok atomic.Int32
	cfg := testConfig(t)
	cfg.MaxAttempts = 3
	tr := startReceiver(t, cfg, WithHooks(Hooks{Name: "billing", OnSessionEnded: func(context.Context, Report) error {
		calls.Add(1)
		if failing.Load() {
			return errors.New("billing down")
		}
		ok.Add(1)
		return nil
	}}))
	sid := livekitwebhooktest.NewID("RM_")
	for _, ev := range []*livekit.WebhookEvent{
		livekitwebhooktest.RoomEvent("room_started", "billed", sid),
		livekitwebhooktest.RoomEvent("room_finished", "billed", sid),
	} {
		if code, body := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	var dls []DeadLetter
	eventually(t, 60*time.Second, "the report's hook dead-lettered", func() bool {
		dls, _ = tr.DeadLetters(context.Background(), 0)
		return len(dls) == 1
	})
	if dl := dls[0]; dl.Event != eventSessionReport || dl.EventID != sid || !strings.Contains(dl.Error, "billing down") {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := calls.Load(); n != int32(cfg.MaxAttempts) {
		t.Errorf("hook called %d times before dead-lettering, want %d", n, cfg.MaxAttempts)
	}
	if reports, err := tr.EndedSessions(context.Background(), 10); err != nil || len(reports) != 1 {
		t.Fatalf("stored reports: %v %v", reports, err)
	}
	failing.Store(false)
	if n, err := tr.Replay(context.Background(), sid); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	eventually(t, 30*time.Second, "the replayed hook succeeded, nothing left dead", func() bool {
		dls, _ = tr.DeadLetters(context.Background(), 0)
		return ok.Load() == 1 && len(dls) == 0
	})
}
