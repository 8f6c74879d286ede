package livekitwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// recordingHook returns an event hook that counts its calls in c under label
// and returns err.
func recordingHook(c *hookCounter, label string, err error) EventHook {
	return func(context.Context, *livekit.WebhookEvent, Session) error {
		c.add(label)
		return err
	}
}

func recordingEnded(c *hookCounter, label string, err error) func(context.Context, Report) error {
	return func(context.Context, Report) error {
		c.add(label)
		return err
	}
}

// errorLog keeps the errors given to OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) hooks() Hooks {
	return Hooks{OnError: func(_ context.Context, _ *livekit.WebhookEvent, err error) {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}}
}

func (l *errorLog) has(target error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// redeploy stops tr and starts a receiver with other hooks on its data
// directory, as a new build of the service would.
func redeploy(t *testing.T, tr *testReceiver, cfg Config, opts ...Option) *testReceiver {
	t.Helper()
	tr.srv.Close()
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return startReceiver(t, cfg, opts...)
}

// storedRecord reads the room record of sid as stored.
func storedRecord(t *testing.T, r *Receiver, sid string) *roomRecord {
	t.Helper()
	rec, _, err := r.engine().Rooms.Get(context.Background(), engine.ProjectPrefix(testKey)+engine.Key(sid))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func noEventHooksOwed(t *testing.T, r *Receiver, sid string) func() bool {
	return func() bool {
		rec := storedRecord(t, r, sid)
		return rec != nil && len(rec.Pending) == 0
	}
}

func names(hooks []boundHook) []string {
	var out []string
	for _, h := range hooks {
		out = append(out, h.name)
	}
	return out
}

// TestHookNamesFollowFieldsNotPositions: a hook is named by its Hooks.Name
// and field, or by its field and its rank among unnamed registrations of
// that field; registrations of other fields, added anywhere, rename nothing.
func TestHookNamesFollowFieldsNotPositions(t *testing.T) {
	f := recordingHook(&hookCounter{}, "", nil)
	g := recordingEnded(&hookCounter{}, "", nil)
	regs := []Hooks{
		{OnRoomStarted: f, OnSessionEnded: g},
		{Name: "billing", OnRoomStarted: f, OnEvent: f, OnSessionEnded: g},
		{OnRoomStarted: f},
	}
	tbl, err := newHookTable(regs)
	if err != nil {
		t.Fatal(err)
	}
	wantStarted := []string{"OnRoomStarted", "billing/OnRoomStarted", "OnRoomStarted#2", "billing/OnEvent"}
	wantEnded := []string{"OnSessionEnded", "billing/OnSessionEnded"}
	if got := names(tbl.forEvent("room_started")); !reflect.DeepEqual(got, wantStarted) {
		t.Fatalf("room_started hooks %q, want %q", got, wantStarted)
	}
	if got := []string(tbl.endedNames()); !reflect.DeepEqual(got, wantEnded) {
		t.Fatalf("OnSessionEnded hooks %q, want %q", got, wantEnded)
	}

	// A redeploy adds hooks of other fields in front and a named one of the
	// same field: every existing name stays.
	redeployed := append([]Hooks{
		{OnParticipantJoined: f},
		{Name: "crm", OnRoomStarted: f},
	}, regs...)
	tbl2, err := newHookTable(redeployed)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range wantStarted {
		if _, err := tbl2.eventHook(name, "room_started"); err != nil {
			t.Errorf("after adding hooks: %v", err)
		}
	}
	if _, err := tbl2.eventHook("OnRoomStarted", "room_finished"); !errors.Is(err, ErrUnknownHook) {
		t.Errorf("a room_started hook found for room_finished: %v", err)
	}
	if _, err := tbl2.eventHook("OnRoomStarted#3", "room_started"); !errors.Is(err, ErrUnknownHook) || !strings.Contains(err.Error(), `"OnRoomStarted#3"`) {
		t.Errorf("unknown name: %v", err)
	}

	if _, err := New(testConfig(t), WithHooks(Hooks{Name: "x", OnEvent: f}, Hooks{Name: "x", OnSessionEnded: g})); err == nil {
		t.Fatal("two registrations named x accepted")
	}
}

// TestOldRecordsOwePositions: records written before hooks had names hold
// registration positions; they decode and are read through today's order
// (event hooks counted over all fields, OnSessionEnded by the index of its
// Hooks value), and a position that now holds no hook of the event, or no
// hook at all, is unknown.
func TestOldRecordsOwePositions(t *testing.T) {
	var rec roomRecord
	old := `{"s":{},"p":{"EV_old":[1,3]},"fs":1,"rep":true,"ep":[2]}`
	if err := json.Unmarshal([]byte(old), &rec); err != nil {
		t.Fatal(err)
	}
	if want := (hookNames{"#1", "#3"}); !reflect.DeepEqual(rec.Pending["EV_old"], want) {
		t.Fatalf("pending %q, want %q", rec.Pending["EV_old"], want)
	}
	if want := (hookNames{"#2"}); !reflect.DeepEqual(rec.EndedPending, want) {
		t.Fatalf("ended pending %q, want %q", rec.EndedPending, want)
	}
	b, _ := json.Marshal(rec)
	var again roomRecord
	if err := json.Unmarshal(b, &again); err != nil || !reflect.DeepEqual(again.Pending, rec.Pending) {
		t.Fatalf("re-encoded %s: %v %q", b, err, again.Pending)
	}

	var c hookCounter
	tbl, err := newHookTable([]Hooks{
		{OnRoomStarted: recordingHook(&c, "p0", nil), OnParticipantJoined: recordingHook(&c, "p1", nil)},
		{OnError: func(context.Context, *livekit.WebhookEvent, error) {}},
		{OnRoomStarted: recordingHook(&c, "p2", nil), OnSessionEnded: recordingEnded(&c, "e2", nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tbl.eventHook("#2", "room_started")
	if err != nil || h.name != "OnRoomStarted#2" {
		t.Fatalf("#2 → %q, %v", h.name, err)
	}
	if _, err := tbl.eventHook("#1", "room_started"); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("#1 is OnParticipantJoined, taken for room_started: %v", err)
	}
	if _, err := tbl.eventHook("#3", "room_started"); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("#3 holds nothing: %v", err)
	}
	if e, err := tbl.endedHook("#2"); err != nil || e.name != "OnSessionEnded" {
		t.Fatalf("ended #2 → %q, %v", e.name, err)
	}
	if _, err := tbl.endedHook("#0"); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("ended #0 has no OnSessionEnded: %v", err)
	}
}

// TestPendingHookCallsSameHookAfterRedeploy: a hook owed a retry is called
// after a redeploy that reordered the hooks and added some, and no other
// hook is.
func TestPendingHookCallsSameHookAfterRedeploy(t *testing.T) {
	cfg := testConfig(t)
	var c hookCounter
	a := startReceiver(t, cfg, WithHooks(
		Hooks{Name: "audit", OnRoomStarted: recordingHook(&c, "audit@a", nil)},
		Hooks{OnRoomStarted: recordingHook(&c, "billing@a", errors.New("billing is down"))},
	))
	postEvent(t, a.url, roomEvent("EV_redeploy001", "room_started", "r", "RM_redeploy", time.Now().Unix()))
	eventually(t, 10*time.Second, "billing failing", func() bool { return c.get("audit@a") == 1 && c.get("billing@a") >= 1 })

	b := redeploy(t, a, cfg, WithHooks(
		Hooks{Name: "crm", OnRoomStarted: recordingHook(&c, "crm@b", nil)},
		Hooks{OnParticipantJoined: recordingHook(&c, "joined@b", nil)},
		Hooks{Name: "audit", OnRoomStarted: recordingHook(&c, "audit@b", nil)},
		Hooks{OnRoomStarted: recordingHook(&c, "billing@b", nil)},
	))
	eventually(t, 15*time.Second, "billing retried after the redeploy", func() bool { return c.get("billing@b") == 1 })
	eventually(t, 5*time.Second, "no hook owed", noEventHooksOwed(t, b.Receiver, "RM_redeploy"))
	if n := c.get("audit@b") + c.get("crm@b") + c.get("joined@b"); n != 0 {
		t.Fatalf("other hooks called %d times after the redeploy", n)
	}
}

// TestRemovedHookDeadLetteredThenReplayed: the pending retry of a hook a
// redeploy removed dead-letters the event with ErrUnknownHook (metric,
// OnError) without calling any other hook; replayed once a build has the
// hook again, it calls that hook only.
func TestRemovedHookDeadLetteredThenReplayed(t *testing.T) {
	cfg := testConfig(t)
	var c hookCounter
	a := startReceiver(t, cfg, WithHooks(
		Hooks{Name: "billing", OnRoomStarted: recordingHook(&c, "billing@a", errors.New("billing is down"))},
		Hooks{OnRoomStarted: recordingHook(&c, "steady@a", nil)},
	))
	postEvent(t, a.url, roomEvent("EV_removed0001", "room_started", "r", "RM_removed", time.Now().Unix()))
	eventually(t, 10*time.Second, "billing failing", func() bool { return c.get("steady@a") == 1 && c.get("billing@a") >= 1 })

	cfg.MaxAttempts = 2
	reader := sdkmetric.NewManualReader()
	var errs errorLog
	b := redeploy(t, a, cfg, WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))), WithHooks(
		Hooks{OnRoomStarted: recordingHook(&c, "steady@b", nil)},
		Hooks{Name: "crm", OnRoomStarted: recordingHook(&c, "crm@b", nil)},
		errs.hooks(),
	))
	var dls []DeadLetter
	eventually(t, 20*time.Second, "dead letter", func() bool {
		dls, _ = b.DeadLetters(context.Background(), 0)
		return len(dls) == 1
	})
	if dls[0].EventID != "EV_removed0001" || !strings.Contains(dls[0].Error, `"billing/OnRoomStarted"`) ||
		!strings.Contains(dls[0].Error, ErrUnknownHook.Error()) {
		t.Fatalf("dead letter %+v", dls[0])
	}
	if n := c.get("steady@b") + c.get("crm@b"); n != 0 {
		t.Fatalf("another hook ran in place of the removed one (%d calls)", n)
	}
	// The metric and OnError follow the DLQ write.
	eventually(t, 5*time.Second, "OnError told, dead letter counted", func() bool {
		return errs.has(ErrUnknownHook) && gaugeSum(t, reader, "livekitwebhook.dead_letters") == 1
	})

	d := redeploy(t, b, cfg, WithHooks(
		Hooks{OnRoomStarted: recordingHook(&c, "steady@d", nil)},
		Hooks{Name: "billing", OnRoomStarted: recordingHook(&c, "billing@d", nil)},
	))
	if n, err := d.Replay(context.Background(), "EV_removed0001"); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	eventually(t, 10*time.Second, "no hook owed", noEventHooksOwed(t, d.Receiver, "RM_removed"))
	if c.get("billing@d") != 1 || c.get("steady@d") != 0 {
		t.Fatalf("after replay billing=%d steady=%d", c.get("billing@d"), c.get("steady@d"))
	}
}

// TestRemovedSessionEndedHookDeadLettered: the same for OnSessionEnded: the
// report is dead-lettered at once (Event "session_report"), no other hook
// receives it, and a replay after the hook is back delivers it to that hook.
func TestRemovedSessionEndedHookDeadLettered(t *testing.T) {
	cfg := testConfig(t)
	var c hookCounter
	a := startReceiver(t, cfg, WithHooks(
		Hooks{Name: "billing", OnSessionEnded: recordingEnded(&c, "billing@a", errors.New("billing is down"))},
		Hooks{OnSessionEnded: recordingEnded(&c, "steady@a", nil)},
	))
	t0 := time.Now().Unix()
	postEvent(t, a.url, roomEvent("EV_endgone0001", "room_started", "r", "RM_endgone", t0))
	postEvent(t, a.url, roomEvent("EV_endgone0002", "room_finished", "r", "RM_endgone", t0+5))
	eventually(t, 15*time.Second, "billing failing", func() bool { return c.get("steady@a") == 1 && c.get("billing@a") >= 1 })

	var errs errorLog
	b := redeploy(t, a, cfg, WithHooks(
		Hooks{OnSessionEnded: recordingEnded(&c, "steady@b", nil)},
		Hooks{Name: "crm", OnSessionEnded: recordingEnded(&c, "crm@b", nil)},
		errs.hooks(),
	))
	var dls []DeadLetter
	eventually(t, 20*time.Second, "dead letter", func() bool {
		dls, _ = b.DeadLetters(context.Background(), 0)
		return len(dls) == 1
	})
	if dls[0].Event != eventSessionReport || dls[0].EventID != "RM_endgone" || !strings.Contains(dls[0].Error, `"billing/OnSessionEnded"`) {
		t.Fatalf("dead letter %+v", dls[0])
	}
	if n := c.get("steady@b") + c.get("crm@b"); n != 0 {
		t.Fatalf("another hook received the report (%d calls)", n)
	}
	eventually(t, 5*time.Second, "OnError told", func() bool { return errs.has(ErrUnknownHook) })

	d := redeploy(t, b, cfg, WithHooks(
		Hooks{Name: "billing", OnSessionEnded: recordingEnded(&c, "billing@d", nil)},
		Hooks{OnSessionEnded: recordingEnded(&c, "steady@d", nil)},
	))
	if n, err := d.Replay(context.Background(), "RM_endgone"); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	eventually(t, 10*time.Second, "report delivered", func() bool {
		rec := storedRecord(t, d.Receiver, "RM_endgone")
		return rec != nil && rec.Delivered
	})
	if c.get("billing@d") != 1 || c.get("steady@d") != 0 {
		t.Fatalf("after replay billing=%d steady=%d", c.get("billing@d"), c.get("steady@d"))
	}
}

// TestOldRecordRetriedThroughTodaysOrder: a retry an older version recorded
// by position runs the hook at that position, with a warning.
func TestOldRecordRetriedThroughTodaysOrder(t *testing.T) {
	cfg := testConfig(t)
	var c hookCounter
	a := startReceiver(t, cfg, WithHooks(
		Hooks{OnRoomStarted: recordingHook(&c, "first@a", nil)},
		Hooks{OnRoomStarted: recordingHook(&c, "second@a", errors.New("down"))},
	))
	postEvent(t, a.url, roomEvent("EV_oldrec00001", "room_started", "r", "RM_oldrec", time.Now().Unix()))
	eventually(t, 10*time.Second, "second failing", func() bool { return c.get("first@a") == 1 && c.get("second@a") >= 1 })

	// Rewrite the record as an older version stored it: position 1 (the
	// second registration's OnRoomStarted) owed. The failing hook writes
	// nothing, so the compare-and-set holds.
	kv := testKV(t, a.engine(), engine.BucketRooms)
	key := engine.ProjectPrefix(testKey) + engine.Key("RM_oldrec")
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw["p"]), `"OnRoomStarted#2"`) {
		t.Fatalf("stored pending %s", raw["p"])
	}
	raw["p"] = json.RawMessage(`{"EV_oldrec00001":[1]}`)
	b, _ := json.Marshal(raw)
	if _, err := kv.Update(context.Background(), key, b, e.Revision()); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	nb := redeploy(t, a, cfg, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))), WithHooks(
		Hooks{OnRoomStarted: recordingHook(&c, "first@b", nil)},
		Hooks{OnRoomStarted: recordingHook(&c, "second@b", nil)},
	))
	eventually(t, 15*time.Second, "second retried", func() bool { return c.get("second@b") == 1 })
	eventually(t, 5*time.Second, "no hook owed", noEventHooksOwed(t, nb.Receiver, "RM_oldrec"))
	if c.get("first@b") != 0 {
		t.Fatal("first hook called again")
	}
	if !strings.Contains(logs.String(), `"hook":"OnRoomStarted#2"`) {
		t.Fatalf("no warning naming the hook: %s", logs.String())
	}
}
