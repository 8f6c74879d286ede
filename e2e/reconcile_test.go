package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// Metrics of the reconciler (otel instruments livekitwebhook.reconcile.*).
const (
	metricReconcileClosed  = "livekitwebhook_reconcile_closed_total"
	metricReconcileUnknown = "livekitwebhook_reconcile_unknown_rooms"
)

// dropProxy stands between livekit-server and `lkwebhook serve`. It forwards
// every webhook verbatim (method, path, every header, the raw body bytes:
// the JWT's sha256 claim covers them) and hands serve's answer back, except
// the events drop matches: those are answered 200 without being forwarded,
// so livekit-server counts them as delivered and never retries them, which
// is exactly a webhook lost on the way. The events refuse matches (if set)
// are answered 503 without being forwarded: livekit-server retries them
// (after 1, 2, 4, 8 s), like a receiver that failed for a moment.
type dropProxy struct {
	t      testing.TB
	start  time.Time
	drop   func(*livekit.WebhookEvent) bool
	refuse func(*livekit.WebhookEvent) bool
	client *http.Client
	srv    *httptest.Server

	mu     sync.Mutex
	target string // serve's base URL; "" answers 503 (livekit-server retries)
	closed bool   // test over: answer 200, forward nothing
	seen   []*proxied
}

// proxied is one request the proxy got from livekit-server.
type proxied struct {
	Event   *livekit.WebhookEvent // nil if the body did not decode
	Arrived time.Time
	Dropped bool
	Refused bool   // answered 503 by the proxy (livekit-server retries)
	Status  int    // serve's HTTP status (forwarded requests)
	Outcome string // serve's "status" field: accepted, duplicate, ignored
	Err     error  // forwarding error (answered 502)
}

// newDropProxy starts a proxy that drops what drop matches and refuses
// (503) what refuse matches (refuse may be nil); see setTarget.
func newDropProxy(t testing.TB, drop, refuse func(*livekit.WebhookEvent) bool) *dropProxy {
	p := &dropProxy{t: t, start: time.Now(), drop: drop, refuse: refuse, client: &http.Client{Timeout: 10 * time.Second}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

// setTarget sets serve's base URL (scheme://host:port); the request path is
// kept as livekit-server sent it.
func (p *dropProxy) setTarget(base string) {
	p.mu.Lock()
	p.target = base
	p.mu.Unlock()
}

// shut makes the proxy answer 200 to everything without forwarding (for the
// teardown, so that livekit-server's shutdown does not wait on retries).
func (p *dropProxy) shut() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	rec := &proxied{Arrived: time.Now()}
	ev := &livekit.WebhookEvent{}
	if protojson.Unmarshal(body, ev) == nil {
		rec.Event = ev
	}
	p.mu.Lock()
	target, closed := p.target, p.closed
	p.mu.Unlock()

	switch {
	case closed:
		w.WriteHeader(http.StatusOK)
		return
	case rec.Event != nil && p.refuse != nil && p.refuse(rec.Event):
		rec.Refused = true
		http.Error(w, "refused by the test proxy", http.StatusServiceUnavailable)
	case rec.Event != nil && p.drop(rec.Event):
		rec.Dropped = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"status":"dropped by the test proxy"}`+"\n")
	case target == "":
		rec.Err = fmt.Errorf("no target yet")
		http.Error(w, "proxy has no target yet", http.StatusServiceUnavailable)
	default:
		p.forward(w, r, target, body, rec)
	}
	p.mu.Lock()
	p.seen = append(p.seen, rec)
	n := len(p.seen)
	p.mu.Unlock()
	what := "forwarded"
	switch {
	case rec.Dropped:
		what = "DROPPED"
	case rec.Refused:
		what = "REFUSED (503)"
	case rec.Err != nil:
		what = "error: " + rec.Err.Error()
	default:
		what += fmt.Sprintf(" -> %d %s", rec.Status, rec.Outcome)
	}
	p.t.Logf("proxy #%02d at +%5.2fs: %s room=%q sid=%s participant=%q id=%s: %s", n,
		rec.Arrived.Sub(p.start).Seconds(), ev.GetEvent(), ev.GetRoom().GetName(), ev.GetRoom().GetSid(),
		ev.GetParticipant().GetIdentity(), ev.GetId(), what)
}

// forward sends the request to serve unchanged and copies serve's answer back.
func (p *dropProxy) forward(w http.ResponseWriter, r *http.Request, target string, body []byte, rec *proxied) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		rec.Err = err
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		rec.Err = err
		http.Error(w, "serve unreachable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	rec.Status = resp.StatusCode
	rec.Outcome = resp.Header.Get(servetest.HeaderOutcome)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (p *dropProxy) snapshot() []*proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*proxied(nil), p.seen...)
}

// wait blocks until the proxy got an event matching match that was dropped
// (dropped = true) or forwarded and answered 2xx by serve (dropped = false).
func (p *dropProxy) wait(t *testing.T, timeout time.Duration, what string, dropped bool, match func(*livekit.WebhookEvent) bool) *proxied {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got *proxied
	err := lkserver.WaitFor(ctx, func() bool {
		for _, c := range p.snapshot() {
			if c.Event != nil && match(c.Event) && !c.Refused && c.Dropped == dropped && (dropped || c.Status/100 == 2) {
				got = c
				return true
			}
		}
		return false
	})
	if err != nil {
		state := "forwarded and accepted"
		if dropped {
			state = "dropped"
		}
		t.Fatalf("no %s webhook %s by the proxy within %v", what, state, timeout)
	}
	return got
}

// reconcileWatch polls GET /voice/livekit/reconcile and keeps every distinct
// pass (by its "at"): the endpoint shows only the latest, which the next
// pass replaces after --reconcile-interval.
type reconcileWatch struct {
	mu     sync.Mutex
	passes []lkserver.ReconcileStatus
	errs   []string
}

func watchReconcile(t *testing.T, sv *servetest.Serve) *reconcileWatch {
	w := &reconcileWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			st, found, err := lkserver.TryReconcileStatus(sv)
			w.mu.Lock()
			switch {
			case err != nil:
				if len(w.errs) < 20 {
					w.errs = append(w.errs, err.Error())
				}
			case found && (len(w.passes) == 0 || !w.passes[len(w.passes)-1].At.Equal(st.At)):
				w.passes = append(w.passes, st)
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *reconcileWatch) snapshot() []lkserver.ReconcileStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]lkserver.ReconcileStatus(nil), w.passes...)
}

// waitPass returns the first pass that started after `after` and matches.
func (w *reconcileWatch) waitPass(t *testing.T, timeout time.Duration, what string, after time.Time, match func(lkserver.ReconcileStatus) bool) lkserver.ReconcileStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got lkserver.ReconcileStatus
	err := lkserver.WaitFor(ctx, func() bool {
		for _, st := range w.snapshot() {
			if st.At.After(after) && match(st) {
				got = st
				return true
			}
		}
		return false
	})
	if err != nil {
		w.mu.Lock()
		errs := append([]string(nil), w.errs...)
		w.mu.Unlock()
		t.Fatalf("no reconcile pass after %s where %s within %v; passes seen:\n%s\nGET errors: %v",
			after.Format(time.RFC3339Nano), what, timeout, dump(w.snapshot()), errs)
	}
	return got
}

// waitMetric polls /metrics until cond holds for the metric's value.
func waitMetric(t *testing.T, sv *servetest.Serve, timeout time.Duration, name string, labels map[string]string, what string, cond func(float64) bool) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var v float64
	if err := lkserver.WaitFor(ctx, func() bool {
		v = sv.Metrics(t).Sum(name, labels)
		return cond(v)
	}); err != nil {
		t.Fatalf("%s = %v, want %s (waited %v)", name, v, what, timeout)
	}
	return v
}

// TestReconcileLostRoomFinished: webhooks that never arrive are caught by
// serve's reconciler (--livekit-url), which compares its open sessions with
// LiveKit's RoomService ListRooms.
//
// A real livekit-server posts to serve through dropProxy, which loses (answers
// 200 without forwarding) room_finished of room A and every event of room B.
// Room A: CreateRoom, a real participant joins and leaves, DeleteRoom; its
// room_finished never reaches serve, so only the reconciler can close it: the
// report must be disposition "expired" with the reconciler's expire_reason,
// ended at the last event serve saw (participant_left), with the
// participant's seconds up to then. Room B exists on LiveKit but serve never
// heard of it: GET /voice/livekit/reconcile lists it under "unknown" while it
// is open, and no more once it is deleted.
func TestReconcileLostRoomFinished(t *testing.T) {
	lkserver.Binary(t) // skip (or fail) before building anything
	testStart := time.Now()
	suffix := randomHex(t, 4)
	roomA, roomB := "recon-a-"+suffix, "recon-b-"+suffix
	const caller = "caller-1"

	proxy := newDropProxy(t, func(ev *livekit.WebhookEvent) bool {
		switch ev.GetRoom().GetName() {
		case roomB:
			return true
		case roomA:
			return ev.GetEvent() == webhook.EventRoomFinished
		}
		return false
	}, nil)
	secret := randomHex(t, 24) // 48 chars; livekit-server wants at least 32
	lk := lkserver.Start(t, lkserver.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		WebhookURLs: []string{proxy.srv.URL + servetest.WebhookPath},
	})
	sv := servetest.Start(t, servetest.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		Args: []string{"--livekit-url", lk.URL, "--reconcile-interval", "2s", "--reconcile-close-delay", "5s", "--finalize-grace", "1s"},
	})
	proxy.setTarget(sv.URL())
	t.Cleanup(proxy.shut) // runs first: nothing is forwarded during teardown
	rs := lk.RoomService()
	watch := watchReconcile(t, sv)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The reconciler runs and reaches LiveKit with serve's key.
	first := watch.waitPass(t, 15*time.Second, "the first pass ran without error", time.Time{}, func(st lkserver.ReconcileStatus) bool {
		return st.Error == ""
	})
	t.Logf("first reconcile pass at +%.2fs: %s", first.At.Sub(testStart).Seconds(), dump(first))

	// Room A, with one real participant who joins and leaves.
	createdA, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: roomA, EmptyTimeout: 120, DepartureTimeout: 20})
	if err != nil {
		t.Fatalf("CreateRoom %s: %v", roomA, err)
	}
	startedEv := proxy.wait(t, stepTimeout, "room_started A", false, isEvent(webhook.EventRoomStarted, roomA, ""))
	sv.WaitActive(t, stepTimeout, roomA, servetest.ByRoomSID(createdA.Sid))

	// Room B: created on LiveKit, but serve gets none of its webhooks.
	createdB, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: roomB, EmptyTimeout: 120})
	if err != nil {
		t.Fatalf("CreateRoom %s: %v", roomB, err)
	}
	createdBAt := time.Now()
	proxy.wait(t, stepTimeout, "room_started B", true, isEvent(webhook.EventRoomStarted, roomB, ""))

	part := lkserver.Join(t, lk, roomA, caller, livekit.ParticipantInfo_STANDARD, false)
	joined := time.Now()
	joinedEv := proxy.wait(t, stepTimeout, "participant_joined", false, isEvent(webhook.EventParticipantJoined, roomA, caller))
	time.Sleep(1500 * time.Millisecond)
	leaving := time.Now()
	part.Disconnect()
	t.Logf("%s connected %.2fs (Join returned -> Disconnect called)", caller, leaving.Sub(joined).Seconds())
	leftEv := proxy.wait(t, stepTimeout, "participant_left", false, isEvent(webhook.EventParticipantLeft, roomA, caller))
	sv.WaitActive(t, stepTimeout, roomA+" with "+caller+" left", func(s servetest.Session) bool {
		p := s.Participant(caller)
		return s.RoomSID == createdA.Sid && p != nil && p.State == "left"
	})

	// While both rooms are open: B is unknown (name and sid), A is known and
	// not closed. B was created after serve had A's session, so every pass
	// that started after CreateRoom B knows A.
	open := watch.waitPass(t, 15*time.Second, "B is unknown", createdBAt, func(st lkserver.ReconcileStatus) bool {
		return st.HasUnknown(createdB.Sid)
	})
	t.Logf("B flagged unknown by the pass at +%.2fs (%.2fs after CreateRoom B): %s",
		open.At.Sub(testStart).Seconds(), open.At.Sub(createdBAt).Seconds(), dump(open))
	if open.Error != "" || open.LiveKitRooms != 2 || len(open.Unknown) != 1 ||
		open.Unknown[0] != (lkserver.UnknownRoom{SID: createdB.Sid, Name: roomB}) || len(open.Closed) != 0 {
		t.Errorf("pass with both rooms open = %s\nwant livekit_rooms 2, unknown exactly [{sid %s, name %s}], closed [], no error",
			dump(open), createdB.Sid, roomB)
	}
	// The same through GET right now (B is still open, so every pass lists it).
	if st, found, err := lkserver.TryReconcileStatus(sv); err != nil || !found || !st.HasUnknown(createdB.Sid) {
		t.Errorf("GET %s = found %v, err %v: %s; want B (%s) under unknown", lkserver.DefaultReconcilePath, found, err, dump(st), createdB.Sid)
	}
	waitMetric(t, sv, 15*time.Second, metricReconcileUnknown, nil, "1 while B is open", func(v float64) bool { return v == 1 })
	if act, _ := sv.Sessions(t); countIn(act, createdA.Sid) != 1 {
		t.Errorf("A listed %d times as active while LiveKit still has it, want 1", countIn(act, createdA.Sid))
	}

	// DeleteRoom A: livekit-server sends room_finished, the proxy loses it.
	deletedA := time.Now()
	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: roomA}); err != nil {
		t.Fatalf("DeleteRoom %s: %v", roomA, err)
	}
	proxy.wait(t, stepTimeout, "room_finished A", true, isEvent(webhook.EventRoomFinished, roomA, ""))
	rep := sv.WaitEnded(t, stepTimeout, roomA, servetest.ByRoomSID(createdA.Sid))
	t.Logf("A reported %.2fs after DeleteRoom: %s", time.Since(deletedA).Seconds(), dump(rep))

	// The premise: serve got every event of A but room_finished.
	var forwardedA []*livekit.WebhookEvent
	ids := map[string]bool{}
	for _, c := range proxy.snapshot() {
		if c.Event == nil || c.Event.GetRoom().GetSid() != createdA.Sid || c.Dropped || c.Refused || ids[c.Event.GetId()] {
			continue
		}
		ids[c.Event.GetId()] = true
		forwardedA = append(forwardedA, c.Event)
	}
	t.Logf("forwarded to serve for A: %v", eventNames(forwardedA))
	if n := countEvents(forwardedA)[webhook.EventRoomFinished]; n != 0 {
		t.Fatalf("room_finished of A reached serve %d time(s): the scenario did not run as planned", n)
	}

	// The report: expired by the reconciler, closed at the last event.
	lastSec := int64(0)
	for _, ev := range forwardedA {
		lastSec = max(lastSec, ev.GetCreatedAt())
	}
	if lastSec != leftEv.Event.GetCreatedAt() {
		t.Errorf("the last event serve got for A is at %d, participant_left at %d: the scenario did not run as planned",
			lastSec, leftEv.Event.GetCreatedAt())
	}
	leftAt := time.Unix(leftEv.Event.GetCreatedAt(), 0).UTC()
	raw := sv.SessionJSON(t, roomA)
	reason, _ := raw["expire_reason"].(string)
	if rep.Disposition != "expired" || !strings.Contains(reason, "RoomService") || !strings.Contains(reason, "room_finished not received") {
		t.Errorf("disposition %q, expire_reason %q; want expired, a reason naming LiveKit RoomService and room_finished not received",
			rep.Disposition, reason)
	}
	if rep.SessionID != roomA || rep.RoomName != roomA || rep.EndReason != "" {
		t.Errorf("session_id %q room_name %q end_reason %q; want %q %q \"\"", rep.SessionID, rep.RoomName, rep.EndReason, roomA, roomA)
	}
	if rep.EndedAt == nil || !rep.EndedAt.Equal(leftAt) {
		t.Errorf("ended_at = %v, want %v (createdAt of participant_left, the last event serve got)", rep.EndedAt, leftAt)
	}
	if ms := startedEv.Event.GetRoom().GetCreationTimeMs(); ms > 0 && !rep.StartedAt.Equal(time.UnixMilli(ms)) {
		t.Errorf("started_at = %v, want the room's creationTimeMs %v", rep.StartedAt, time.UnixMilli(ms).UTC())
	}
	if rep.EndedAt != nil && !near(rep.DurationSeconds, rep.EndedAt.Sub(rep.StartedAt).Seconds(), 0.002) {
		t.Errorf("duration_seconds = %v, want ended_at - started_at = %v", rep.DurationSeconds, rep.EndedAt.Sub(rep.StartedAt).Seconds())
	}
	if rep.EventsApplied != len(forwardedA) {
		t.Errorf("events_applied = %d, want %d (events forwarded for A)", rep.EventsApplied, len(forwardedA))
	}
	p := rep.Participant(caller)
	if len(rep.Participants) != 1 || p == nil {
		t.Fatalf("participants = %s, want only %s", dump(rep.Participants), caller)
	}
	joinedMs := joinedEv.Event.GetParticipant().GetJoinedAtMs()
	if joinedMs == 0 {
		joinedMs = joinedEv.Event.GetParticipant().GetJoinedAt() * 1000
	}
	wantSecs := float64(leftAt.UnixMilli()-joinedMs) / 1000
	if p.State != "left" || p.LeftAt == nil || !p.LeftAt.Equal(leftAt) || p.DisconnectReason != "CLIENT_INITIATED" || p.Kind != "standard" {
		t.Errorf("%s = %s\nwant standard, left at %v (participant_left), CLIENT_INITIATED", caller, dump(p), leftAt)
	}
	if !near(p.Seconds, wantSecs, 0.002) {
		t.Errorf("%s seconds = %.3f, want %.3f (participant_left createdAt - joinedAtMs)", caller, p.Seconds, wantSecs)
	}
	if observed := leaving.Sub(joined).Seconds(); !near(p.Seconds, observed, 1.5) {
		t.Errorf("%s seconds = %.3f, observed connected %.3fs (tolerance 1.5s: createdAt has 1 s resolution)", caller, p.Seconds, observed)
	}
	if !near(rep.ParticipantSeconds, p.Seconds, 0.002) || !near(rep.ParticipantSecondsByKind["standard"], p.Seconds, 0.002) ||
		len(rep.ParticipantSecondsByKind) != 1 {
		t.Errorf("participant_seconds %v, by kind %v; want %v, standard only", rep.ParticipantSeconds, rep.ParticipantSecondsByKind, p.Seconds)
	}
	if act, end := sv.Sessions(t); countIn(act, createdA.Sid) != 0 || countIn(end, createdA.Sid) != 1 {
		t.Errorf("A listed %d times active, %d times ended; want 0 and 1", countIn(act, createdA.Sid), countIn(end, createdA.Sid))
	}

	// Metrics: the reconciler counted the close; one expired report.
	m := sv.Metrics(t)
	closed := m.Sum(metricReconcileClosed, nil)
	if closed < 1 {
		t.Errorf("%s = %v, want >= 1", metricReconcileClosed, closed)
	}
	if got := m.Sum(metricReports, map[string]string{"disposition": "expired"}); got != 1 {
		t.Errorf("%s{disposition=\"expired\"} = %v, want 1", metricReports, got)
	}
	if got := m.Sum(metricReports, nil); got != 1 {
		t.Errorf("%s = %v, want 1 (A only; serve never heard of B)", metricReports, got)
	}
	var closedBy []string
	for _, st := range watch.snapshot() {
		for _, sid := range st.Closed {
			closedBy = append(closedBy, fmt.Sprintf("%s at +%.2fs (%.2fs after DeleteRoom A)", sid, st.At.Sub(testStart).Seconds(), st.At.Sub(deletedA).Seconds()))
		}
	}
	t.Logf("%s = %v; passes seen listing closed sessions: %v", metricReconcileClosed, closed, closedBy)

	// DeleteRoom B: gone from LiveKit, so no longer unknown after the next pass.
	deletedB := time.Now()
	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: roomB}); err != nil {
		t.Fatalf("DeleteRoom %s: %v", roomB, err)
	}
	proxy.wait(t, stepTimeout, "room_finished B", true, isEvent(webhook.EventRoomFinished, roomB, ""))
	gone := watch.waitPass(t, 15*time.Second, "B is no longer listed", deletedB, func(st lkserver.ReconcileStatus) bool { return true })
	if gone.HasUnknown(createdB.Sid) || len(gone.Unknown) != 0 || gone.LiveKitRooms != 0 || len(gone.Closed) != 0 || gone.Error != "" {
		t.Errorf("first pass after DeleteRoom B = %s\nwant livekit_rooms 0, unknown [], closed [], no error", dump(gone))
	}
	if st, found, err := lkserver.TryReconcileStatus(sv); err != nil || !found || st.HasUnknown(createdB.Sid) {
		t.Errorf("GET %s = found %v, err %v: %s; want B no longer unknown", lkserver.DefaultReconcilePath, found, err, dump(st))
	}
	waitMetric(t, sv, 15*time.Second, metricReconcileUnknown, nil, "0 once B is deleted", func(v float64) bool { return v == 0 })
	if act, end := sv.Sessions(t); countIn(act, createdB.Sid) != 0 || countIn(end, createdB.Sid) != 0 {
		t.Errorf("serve has a session for B (never sent to it): active %d, ended %d", countIn(act, createdB.Sid), countIn(end, createdB.Sid))
	}
	if got := sv.Metrics(t).Sum(metricReconcileClosed, nil); got != closed {
		t.Errorf("%s went from %v to %v after A was reported: a reported session was closed again", metricReconcileClosed, closed, got)
	}

	// Every forwarded webhook was accepted once (forwarding is verbatim: the
	// signature over the raw body still verifies).
	var bad []string
	forwarded := 0
	for _, c := range proxy.snapshot() {
		if c.Dropped || c.Refused {
			continue
		}
		forwarded++
		if c.Err != nil || c.Status != http.StatusOK || c.Outcome != "accepted" {
			bad = append(bad, fmt.Sprintf("%s %s: status %d %q err %v", c.Event.GetEvent(), c.Event.GetId(), c.Status, c.Outcome, c.Err))
		}
	}
	if len(bad) > 0 {
		t.Errorf("forwarded webhooks not accepted by serve: %v", bad)
	}
	if got := sv.Metrics(t).Sum(metricRequests, map[string]string{"outcome": "accepted"}); int(got) != forwarded {
		t.Errorf("%s{outcome=\"accepted\"} = %v, want %d (requests forwarded)", metricRequests, got, forwarded)
	}
	if log := sv.Log(); strings.Contains(log, `"level":"ERROR"`) {
		t.Errorf("serve logged errors:\n%s", sv.LogTail(40))
	}
	t.Logf("%d reconcile passes seen; test body took %.1fs", len(watch.snapshot()), time.Since(testStart).Seconds())
}

// TestRegressionReconcileExpiresRetriedRoomFinished (only with
// a regression test of a fixed bug): the
// reconciler closes a session as soon as LiveKit stops listing its room,
// although room_finished may still be on its way: livekit-server retries a
// failed delivery after 1, 2, 4 and 8 s. Here serve's first delivery of
// room_finished fails (503, as during a restart or overload) and a pass runs
// in that window: the session is reported "expired" by the reconciler, and
// room_finished, delivered and accepted one second later, comes too late.
// The report should be the one room_finished gives (no_show here, with
// ended_at from room_finished). livekitwebhook/reconcile.go schedules the
// expire task due at once (DueMs 0); a reconciler close should wait out
// LiveKit's retry horizon first (the expire task already yields to a
// finalize task when room_finished was applied by then).
func TestRegressionReconcileExpiresRetriedRoomFinished(t *testing.T) {
	lkserver.Binary(t)
	room := "recon-retry-" + randomHex(t, 4)
	var mu sync.Mutex
	refused := map[string]bool{}
	proxy := newDropProxy(t, func(*livekit.WebhookEvent) bool { return false }, func(ev *livekit.WebhookEvent) bool {
		if ev.GetEvent() != webhook.EventRoomFinished || ev.GetRoom().GetName() != room {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		first := !refused[ev.GetId()]
		refused[ev.GetId()] = true
		return first // the first attempt only
	})
	secret := randomHex(t, 24)
	lk := lkserver.Start(t, lkserver.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		WebhookURLs: []string{proxy.srv.URL + servetest.WebhookPath},
	})
	sv := servetest.Start(t, servetest.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		Args: []string{"--livekit-url", lk.URL, "--reconcile-interval", "2s", "--reconcile-close-delay", "5s", "--finalize-grace", "1s"},
	})
	proxy.setTarget(sv.URL())
	t.Cleanup(proxy.shut)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs := lk.RoomService()

	created, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 120})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	sv.WaitActive(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))
	time.Sleep(3 * time.Second) // older than the reconciler's minimum age (the interval, 2 s)

	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	// Wait until the first delivery of room_finished has failed; LiveKit
	// retries it a second later.
	if err := lkserver.WaitFor(ctx, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(refused) > 0
	}); err != nil {
		t.Fatalf("room_finished was not sent: %v", err)
	}
	st, found, err := lkserver.TryReconcileNow(sv)
	if err != nil || !found {
		t.Fatalf("POST %s: found %v, err %v", lkserver.DefaultReconcilePath, found, err)
	}
	t.Logf("pass run while room_finished awaits LiveKit's retry: %s", dump(st))
	fin := proxy.wait(t, stepTimeout, "room_finished (retried)", false, isEvent(webhook.EventRoomFinished, room, ""))
	for _, c := range proxy.snapshot() {
		if c.Refused {
			t.Logf("room_finished delivered and accepted %.2fs after its refused first attempt", fin.Arrived.Sub(c.Arrived).Seconds())
		}
	}
	rep := sv.WaitEnded(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))
	raw := sv.SessionJSON(t, room)
	t.Logf("report: %s\nexpire_reason: %v", dump(rep), raw["expire_reason"])
	if rep.Disposition != "no_show" || raw["expire_reason"] != nil {
		t.Errorf("disposition %q, expire_reason %v: room_finished arrived on LiveKit's first retry (1 s late), "+
			"yet the reconciler reported the session as expired; want no_show from room_finished", rep.Disposition, raw["expire_reason"])
	}
}

// TestRegressionExpiredReportEndsBeforeStart (only with
// a regression test of a fixed bug): an
// expired report ends at the last event's createdAt, which has one-second
// resolution, while started_at is the room's creationTimeMs. A room whose
// last event serve got is room_started (here: nobody joins, room_finished is
// lost, the reconciler closes it) is reported with ended_at before
// started_at (and duration_seconds clamped to 0). The end given to
// lifecycle.Expire should never be before the session start.
func TestRegressionExpiredReportEndsBeforeStart(t *testing.T) {
	lkserver.Binary(t)
	room := "recon-empty-" + randomHex(t, 4)
	proxy := newDropProxy(t, func(ev *livekit.WebhookEvent) bool {
		return ev.GetRoom().GetName() == room && ev.GetEvent() == webhook.EventRoomFinished
	}, nil)
	secret := randomHex(t, 24)
	lk := lkserver.Start(t, lkserver.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		WebhookURLs: []string{proxy.srv.URL + servetest.WebhookPath},
	})
	sv := servetest.Start(t, servetest.Options{
		APIKey: lkserver.DefaultAPIKey, APISecret: secret,
		Args: []string{"--livekit-url", lk.URL, "--reconcile-interval", "2s", "--reconcile-close-delay", "5s", "--finalize-grace", "1s"},
	})
	proxy.setTarget(sv.URL())
	t.Cleanup(proxy.shut)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs := lk.RoomService()

	created, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 120})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	started := proxy.wait(t, stepTimeout, "room_started", false, isEvent(webhook.EventRoomStarted, room, ""))
	if created.GetCreationTimeMs()%1000 == 0 {
		t.Skip("the room was created on a whole second: nothing to see")
	}
	sv.WaitActive(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))
	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	proxy.wait(t, stepTimeout, "room_finished", true, isEvent(webhook.EventRoomFinished, room, ""))
	rep := sv.WaitEnded(t, stepTimeout, room, servetest.ByRoomSID(created.Sid))
	t.Logf("room creationTimeMs %d, room_started createdAt %d; report: %s",
		created.GetCreationTimeMs(), started.Event.GetCreatedAt(), dump(rep))
	if rep.Disposition != "expired" {
		t.Fatalf("disposition %q, want expired (the premise)", rep.Disposition)
	}
	if rep.EndedAt == nil || rep.EndedAt.Before(rep.StartedAt) {
		t.Errorf("ended_at %v is before started_at %v (duration_seconds %v)", rep.EndedAt, rep.StartedAt, rep.DurationSeconds)
	}
}
