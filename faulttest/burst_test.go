package faulttest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

var statsOnce sync.Once

// initNotifierStats must run once before any notifier is used.
func initNotifierStats() {
	statsOnce.Do(func() { webhook.InitWebhookStats(prometheus.Labels{}) })
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// lkID is an id shaped like LiveKit's: prefix + 12 base62 characters.
func lkID(prefix string) string {
	b := make([]byte, 12)
	for i := range b {
		b[i] = base62[rand.IntN(len(base62))]
	}
	return prefix + string(b)
}

// partPlan is one participant session of a planned room.
type partPlan struct {
	sid, identity string
	kind          livekit.ParticipantInfo_Kind
	joinedAt      int64 // unix seconds, as in ParticipantInfo.joinedAt
	leftAt        int64 // createdAt of its participant_left
}

// roomPlan is one room of a burst and the events that define it.
type roomPlan struct {
	name, sid  string
	t0, finish int64
	parts      []partPlan
	events     []*livekit.WebhookEvent // in sending order
}

// planRooms builds n rooms, each: room_started, two participant_joined
// (a standard participant and an agent), two participant_left and
// room_finished, with explicit ids, createdAt, sids and join times.
func planRooms(tag string, n int) []*roomPlan {
	baseT := time.Now().Add(-2 * time.Hour).Unix()
	rooms := make([]*roomPlan, n)
	for i := range rooms {
		t0 := baseT + int64(i)*1000
		rp := &roomPlan{
			name:   fmt.Sprintf("%s-room-%03d", tag, i),
			sid:    fmt.Sprintf("RM_%s%03d%s", tag, i, lkID("")[:6]),
			t0:     t0,
			finish: t0 + 100 + int64(i%4),
		}
		rp.parts = []partPlan{
			{sid: lkID("PA_"), identity: fmt.Sprintf("caller-%03d", i), kind: livekit.ParticipantInfo_STANDARD,
				joinedAt: t0 + 2 + int64(i%3), leftAt: t0 + 60 + int64(i%7)},
			{sid: lkID("PA_"), identity: fmt.Sprintf("agent-%03d", i), kind: livekit.ParticipantInfo_AGENT,
				joinedAt: t0 + 5, leftAt: t0 + 75 + int64(i%5)},
		}
		room := func(withCreation bool) *livekit.Room {
			r := &livekit.Room{Sid: rp.sid, Name: rp.name}
			if withCreation {
				r.CreationTime = t0
				r.CreationTimeMs = t0 * 1000
				r.EmptyTimeout = 300
				r.DepartureTimeout = 20
			}
			return r
		}
		add := func(ev *livekit.WebhookEvent) {
			ev.Id = lkID("EV_")
			rp.events = append(rp.events, ev)
		}
		add(&livekit.WebhookEvent{Event: "room_started", CreatedAt: t0, Room: room(true)})
		for _, p := range rp.parts {
			add(&livekit.WebhookEvent{Event: "participant_joined", CreatedAt: p.joinedAt, Room: room(true),
				Participant: &livekit.ParticipantInfo{Sid: p.sid, Identity: p.identity, Kind: p.kind,
					State: livekit.ParticipantInfo_ACTIVE, JoinedAt: p.joinedAt}})
		}
		for _, p := range rp.parts {
			add(&livekit.WebhookEvent{Event: "participant_left", CreatedAt: p.leftAt, Room: room(true),
				Participant: &livekit.ParticipantInfo{Sid: p.sid, Identity: p.identity, Kind: p.kind,
					State: livekit.ParticipantInfo_DISCONNECTED, JoinedAt: p.joinedAt,
					DisconnectReason: livekit.DisconnectReason_CLIENT_INITIATED}})
		}
		add(&livekit.WebhookEvent{Event: "room_finished", CreatedAt: rp.finish, Room: room(true),
			RoomEndReason: livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT})
		rooms[i] = rp
	}
	return rooms
}

// outcome is what LiveKit's notifier reported for one event.
type outcome struct {
	event, room string
	dropped     bool
	sendErr     string
}

func (o outcome) sent() bool { return !o.dropped && o.sendErr == "" }

// burst sends rooms through LiveKit's ResourceURLNotifier and records, per
// event id, whether the notifier reports it sent or dropped.
type burst struct {
	t     *testing.T
	rooms []*roomPlan
	n     *webhook.ResourceURLNotifier
	total int

	mu       sync.Mutex
	outcomes map[string]outcome
	done     atomic.Int64
	waiters  []waiter
	allDone  chan struct{}
}

type waiter struct {
	at int64
	ch chan struct{}
}

// newBurst makes a notifier posting to url, with short retry waits and
// enough retries to outlast a restart of several seconds, and a queue age
// long enough that nothing is dropped for age while the receiver is down.
func newBurst(t *testing.T, url string, rooms []*roomPlan) *burst {
	initNotifierStats()
	b := &burst{t: t, rooms: rooms, outcomes: map[string]outcome{}, allDone: make(chan struct{})}
	for _, r := range rooms {
		b.total += len(r.events)
	}
	b.n = webhook.NewResourceURLNotifier(webhook.ResourceURLNotifierParams{
		URL: url, APIKey: apiKey, APISecret: apiSecret,
		HTTPClientParams: webhook.HTTPClientParams{
			RetryWaitMin:  50 * time.Millisecond,
			RetryWaitMax:  250 * time.Millisecond,
			MaxRetries:    120, // ≥ 30 s of retrying at the capped wait
			ClientTimeout: 10 * time.Second,
		},
		Config: webhook.ResourceURLNotifierConfig{MaxAge: 2 * time.Minute, MaxDepth: 1000},
	})
	b.n.RegisterProcessedHook(b.processed)
	t.Cleanup(func() { b.n.Stop(true) })
	return b
}

func (b *burst) processed(_ context.Context, whi *livekit.WebhookInfo) {
	b.mu.Lock()
	if _, seen := b.outcomes[whi.EventId]; seen {
		b.mu.Unlock()
		b.t.Errorf("notifier reported event %s twice", whi.EventId)
		return
	}
	b.outcomes[whi.EventId] = outcome{event: whi.Event, room: whi.RoomId, dropped: whi.IsDropped, sendErr: whi.SendError}
	n := b.done.Add(1)
	var fire []chan struct{}
	keep := b.waiters[:0]
	for _, w := range b.waiters {
		if n >= w.at {
			fire = append(fire, w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	b.waiters = keep
	b.mu.Unlock()
	for _, ch := range fire {
		close(ch)
	}
	if n == int64(b.total) {
		close(b.allDone)
	}
}

// after returns a channel closed once n events were processed by the
// notifier (sent, failed or dropped).
func (b *burst) after(n int) <-chan struct{} {
	ch := make(chan struct{})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done.Load() >= int64(n) {
		close(ch)
		return ch
	}
	b.waiters = append(b.waiters, waiter{at: int64(n), ch: ch})
	return ch
}

// queue enqueues every event: one FIFO queue per room name, as livekit-server.
func (b *burst) queue() {
	ctx := context.Background()
	// Interleave rooms so that every room is in flight at once.
	for i := 0; ; i++ {
		any := false
		for _, r := range b.rooms {
			if i < len(r.events) {
				any = true
				if err := b.n.QueueNotify(ctx, r.events[i]); err != nil {
					b.t.Errorf("QueueNotify %s: %v", r.events[i].Id, err)
				}
			}
		}
		if !any {
			return
		}
	}
}

// waitAll waits until the notifier reported every event.
func (b *burst) waitAll(timeout time.Duration) {
	b.t.Helper()
	select {
	case <-b.allDone:
	case <-time.After(timeout):
		b.t.Fatalf("notifier reported %d of %d events after %s", b.done.Load(), b.total, timeout)
	}
}

// summary counts sent, failed and dropped events (and reports the last two).
func (b *burst) summary() (sent, failed, dropped int, detail string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	for id, o := range b.outcomes {
		switch {
		case o.dropped:
			dropped++
			lines = append(lines, fmt.Sprintf("dropped %s %s %s", id, o.event, o.room))
		case o.sendErr != "":
			failed++
			lines = append(lines, fmt.Sprintf("failed %s %s %s: %s", id, o.event, o.room, o.sendErr))
		default:
			sent++
		}
	}
	sort.Strings(lines)
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("… and %d more", len(lines)-10))
	}
	return sent, failed, dropped, strings.Join(lines, "\n")
}

func (b *burst) outcomeOf(id string) (outcome, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.outcomes[id]
	return o, ok
}

// expected is what the final report of a room must say, derived from the
// events the notifier reported as delivered.
type expected struct {
	finished      bool
	eventsApplied int
	duration      float64
	partSeconds   map[string]float64 // participant sid -> seconds
	byKind        map[string]float64
	total         float64
}

func (b *burst) expect(r *roomPlan) expected {
	e := expected{partSeconds: map[string]float64{}, byKind: map[string]float64{}}
	sentEv := map[string]bool{}
	for _, ev := range r.events {
		if o, ok := b.outcomeOf(ev.Id); ok && o.sent() {
			e.eventsApplied++
			sentEv[ev.Event+"/"+ev.GetParticipant().GetSid()] = true
		}
	}
	e.finished = sentEv["room_finished/"]
	e.duration = float64(r.finish - r.t0)
	for _, p := range r.parts {
		joined, left := sentEv["participant_joined/"+p.sid], sentEv["participant_left/"+p.sid]
		if !joined && !left {
			continue
		}
		end := r.finish // closed at room end when its participant_left was lost
		if left {
			end = p.leftAt
		}
		secs := float64(end - p.joinedAt)
		e.partSeconds[p.sid] = secs
		e.byKind[strings.ToLower(p.kind.String())] += secs
		e.total += secs
	}
	return e
}

// waitEnded polls the sessions API until every room whose room_finished was
// delivered has an ended report, or timeout passes, and returns the last
// listing and how long it waited. checkReports judges what is missing.
func waitEnded(t *testing.T, s *servetest.Serve, b *burst, timeout time.Duration) (servetest.SessionList, time.Duration) {
	t.Helper()
	start := time.Now()
	want := map[string]bool{}
	for _, r := range b.rooms {
		if b.expect(r).finished {
			want[r.sid] = true
		}
	}
	var last servetest.SessionList
	var lastErr error
	eventually(context.Background(), timeout, 250*time.Millisecond, func() bool {
		var list servetest.SessionList
		if list, lastErr = s.TrySessions(); lastErr != nil {
			return false
		}
		last = list
		seen := map[string]bool{}
		for _, rep := range last.Ended {
			seen[rep.RoomSID] = true
		}
		for sid := range want {
			if !seen[sid] {
				return false
			}
		}
		return true
	})
	if lastErr != nil {
		t.Fatalf("sessions API: %v", lastErr)
	}
	return last, time.Since(start)
}

// checkReports asserts one ended report per room, and that each equals what
// the delivered events define. Failures with the signature of bugAckWait (a
// room still active, or a report missing events) go to bugs.
func checkReports(t *testing.T, b *burst, list servetest.SessionList, waited time.Duration, bugs *bugLog) {
	t.Helper()
	bySID := map[string][]servetest.Session{}
	for _, rep := range list.Ended {
		bySID[rep.RoomSID] = append(bySID[rep.RoomSID], rep)
	}
	active := map[string]servetest.Session{}
	for _, a := range list.Active {
		active[a.RoomSID] = a
	}
	const eps = 1e-6
	near := func(a, b float64) bool { return math.Abs(a-b) < eps }
	ended := 0
	for _, r := range b.rooms {
		exp := b.expect(r)
		reps := bySID[r.sid]
		if !exp.finished {
			t.Errorf("room %s: room_finished not delivered by the notifier (cannot end)", r.sid)
			continue
		}
		if len(reps) == 0 {
			if a, ok := active[r.sid]; ok {
				bugs.errorf(bugAckWait, "room %s: no ended report %s after the last delivery, still active with events_applied %d of %d delivered",
					r.sid, waited.Round(time.Millisecond), a.EventsApplied, exp.eventsApplied)
			} else {
				t.Errorf("room %s: neither ended nor active %s after the last delivery", r.sid, waited.Round(time.Millisecond))
			}
			continue
		}
		ended++
		if len(reps) != 1 {
			t.Errorf("room %s: %d ended reports, want exactly 1", r.sid, len(reps))
		}
		if _, ok := active[r.sid]; ok {
			t.Errorf("room %s: still listed as active after its report", r.sid)
		}
		rep := reps[0]
		var errs []string
		errorf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
		if rep.RoomName != r.name || rep.SessionID != r.name {
			errorf("room_name %q session_id %q, want %q", rep.RoomName, rep.SessionID, r.name)
		}
		if rep.EventsApplied != exp.eventsApplied {
			errorf("events_applied %d, want %d (events the notifier delivered)", rep.EventsApplied, exp.eventsApplied)
		}
		if rep.Disposition != "completed" {
			errorf("disposition %q, want completed", rep.Disposition)
		}
		if rep.EndReason != "ROOM_END_IDLE_TIMEOUT" {
			errorf("end_reason %q", rep.EndReason)
		}
		if !rep.StartedAt.Equal(time.Unix(r.t0, 0)) || rep.EndedAt == nil || !rep.EndedAt.Equal(time.Unix(r.finish, 0)) {
			errorf("started %v ended %v, want %v and %v", rep.StartedAt, rep.EndedAt, time.Unix(r.t0, 0).UTC(), time.Unix(r.finish, 0).UTC())
		}
		if !near(rep.DurationSeconds, exp.duration) {
			errorf("duration_seconds %v, want %v", rep.DurationSeconds, exp.duration)
		}
		if !near(rep.ParticipantSeconds, exp.total) {
			errorf("participant_seconds %v, want %v", rep.ParticipantSeconds, exp.total)
		}
		for k, v := range exp.byKind {
			if !near(rep.ParticipantSecondsByKind[k], v) {
				errorf("participant_seconds_by_kind[%s] %v, want %v", k, rep.ParticipantSecondsByKind[k], v)
			}
		}
		if len(rep.Participants) != len(exp.partSeconds) {
			errorf("%d participants, want %d", len(rep.Participants), len(exp.partSeconds))
		}
		for _, p := range rep.Participants {
			want, ok := exp.partSeconds[p.SID]
			if !ok {
				errorf("unexpected participant %s", p.SID)
				continue
			}
			if !near(p.Seconds, want) || p.State != "left" {
				errorf("participant %s (%s) seconds %v state %q, want %v left", p.SID, p.Identity, p.Seconds, p.State, want)
			}
		}
		switch {
		case len(errs) == 0:
		case rep.EventsApplied < exp.eventsApplied:
			bugs.errorf(bugAckWait, "room %s: report misses delivered events: %s", r.sid, strings.Join(errs, "; "))
		default:
			t.Errorf("room %s: %s", r.sid, strings.Join(errs, "; "))
		}
	}
	t.Logf("%d of %d rooms ended", ended, len(b.rooms))
}
