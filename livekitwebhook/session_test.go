package livekitwebhook

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// fill sets every field reachable from v to a non-zero value, so that a
// field the conversion forgets shows in the JSON.
func fill(t *testing.T, v reflect.Value, seed int) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + itoa(int64(seed)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(seed))
	case reflect.Float64:
		v.SetFloat(float64(seed) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), seed)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, seed)
		fill(t, e, seed)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), seed*10+i)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.UnixMilli(1_800_000_000_000 + int64(seed)).UTC()))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), seed*100+i)
		}
	default:
		t.Fatalf("fill: no rule for %s", v.Type())
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSessionAndReportJSONAsLifecycle: Session and Report render exactly as
// the state machine's session does (the JSON the sessions API and the
// reports subject carried when they were aliases of it), with every field
// set, for a live and for an ended session; a stored report reads back
// into a Report and renders the same bytes.
func TestSessionAndReportJSONAsLifecycle(t *testing.T) {
	var full lifecycle.Session
	fill(t, reflect.ValueOf(&full).Elem(), 1)
	if want, got := mustJSON(t, full), mustJSON(t, sessionOf(full)); !bytes.Equal(want, got) {
		t.Errorf("every field set, Session:\nwant %s\n got %s", want, got)
	}
	if want, got := mustJSON(t, full), mustJSON(t, reportOf(full)); !bytes.Equal(want, got) {
		t.Errorf("every field set, Report:\nwant %s\n got %s", want, got)
	}

	// From the state machine: a live call, then the same call ended.
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Unix()
	st := lifecycle.NewState("RM_1", "call-1")
	st.SessionID = "call-1"
	for _, ev := range []*livekit.WebhookEvent{
		roomEvent("EV_1", "room_started", "call-1", "RM_1", t0),
		participantEvent("EV_2", "participant_joined", "call-1", "RM_1", "PA_1", "agent", livekit.ParticipantInfo_AGENT, t0+1, t0+1),
		participantEvent("EV_3", "participant_joined", "call-1", "RM_1", "PA_2", "caller", livekit.ParticipantInfo_SIP, t0+2, t0+2),
		participantEvent("EV_4", "participant_left", "call-1", "RM_1", "PA_2", "caller", livekit.ParticipantInfo_SIP, t0+30, t0+2),
	} {
		st, _ = lifecycle.Apply(st, ev)
	}
	live := st.Session()
	if live.EndedAt != nil {
		t.Fatal("live view ended")
	}
	if want, got := mustJSON(t, live), mustJSON(t, sessionOf(live)); !bytes.Equal(want, got) {
		t.Errorf("live Session:\nwant %s\n got %s", want, got)
	}
	fin := roomEvent("EV_5", "room_finished", "call-1", "RM_1", t0+40)
	st, _ = lifecycle.Apply(st, fin)
	ended := st.Session()
	if ended.EndedAt == nil || ended.Disposition == "" {
		t.Fatalf("ended view %+v", ended)
	}
	stored := mustJSON(t, ended) // what the reports subject carried
	for name, v := range map[string]any{"ended Session": sessionOf(ended), "Report": reportOf(ended)} {
		if got := mustJSON(t, v); !bytes.Equal(stored, got) {
			t.Errorf("%s:\nwant %s\n got %s", name, stored, got)
		}
	}
	var back Report
	if err := json.Unmarshal(stored, &back); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, back); !bytes.Equal(stored, got) {
		t.Errorf("stored report read back:\nwant %s\n got %s", stored, got)
	}
	if !back.EndedAt.Equal(*ended.EndedAt) || back.Disposition != DispositionCompleted {
		t.Errorf("report read back: ended %v disposition %q", back.EndedAt, back.Disposition)
	}
}

// TestPublicTypesAreOwn: Session, Report and Participant are types of this
// package (go doc shows their fields), and a live view and a final report
// are different types.
func TestPublicTypesAreOwn(t *testing.T) {
	pkg := reflect.TypeFor[Receiver]().PkgPath()
	for _, typ := range []reflect.Type{reflect.TypeFor[Session](), reflect.TypeFor[Report](), reflect.TypeFor[Participant]()} {
		if typ.PkgPath() != pkg {
			t.Errorf("%s is declared in %s, want %s", typ, typ.PkgPath(), pkg)
		}
	}
	if reflect.TypeFor[Session]() == reflect.TypeFor[Report]() {
		t.Error("Session and Report are the same type")
	}
}
