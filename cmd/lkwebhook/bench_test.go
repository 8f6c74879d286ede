package main

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/webhook"
)

func TestBenchInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var progress bytes.Buffer
	prof := filepath.Join(t.TempDir(), "cpu")
	res, err := runBenchmark(ctx, benchConfig{N: 300, C: 8, Rounds: 2, Key: "devkey", Secret: "secret",
		Timeout: 45 * time.Second, Progress: &progress, CPUProfile: prof})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Baseline == nil || !res.InProcess {
		t.Fatalf("want an in-process target and a baseline: %+v", res)
	}
	if res.Target.OK != 600 || res.Target.Errors != 0 || res.Baseline.OK != 600 || res.Baseline.Errors != 0 {
		t.Fatalf("not all 2xx: target %+v baseline %+v", res.Target, *res.Baseline)
	}
	if len(res.Runs) != 4 || res.Runs[0].Server != "baseline" || res.Runs[1].Server != "target" {
		t.Fatalf("rounds must alternate baseline, target: %+v", res.Runs)
	}
	for _, r := range res.Runs {
		if r.Status["200"] != 300 || r.RPS <= 0 || r.P50 <= 0 || r.P50 > r.P90 || r.P90 > r.P99 {
			t.Errorf("round %+v", r)
		}
		// Each of the target's events is in exactly one durable write.
		if r.Server == "target" && (r.JournalWrites == 0 || r.JournalWrites > uint64(r.OK)) {
			t.Errorf("target round %d: %d journal writes for %d requests", r.Round, r.JournalWrites, r.OK)
		}
		if r.Server == "baseline" && r.JournalWrites != 0 {
			t.Errorf("baseline round %d counts journal writes", r.Round)
		}
	}
	if !strings.Contains(progress.String(), " req/write") {
		t.Error("target rounds do not print requests per write")
	}
	if res.ThroughputRatio <= 0 || res.P99Ratio <= 0 {
		t.Fatalf("ratios %v %v", res.ThroughputRatio, res.P99Ratio)
	}
	for _, name := range []string{"baseline.1", "target.1", "baseline.2", "target.2"} {
		b, err := os.ReadFile(prof + "." + name)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof files are gzipped
			t.Errorf("CPU profile %s: %v, %d bytes", name, err, len(b))
		}
	}
	last := strings.TrimSpace(progress.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "ratio throughput=") || !strings.Contains(last, " p99=") {
		t.Errorf("final line %q", last)
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Error(m)
	}
	if m := median([]float64{4, 1}); m != 2.5 {
		t.Error(m)
	}
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	if p := percentile(d, 0.99); p != 99 {
		t.Error(p)
	}
	if p := percentile(d, 0.5); p != 50 {
		t.Error(p)
	}
}

func TestBenchMixCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	prof := filepath.Join(t.TempDir(), "cpu")
	const rooms = 5
	res, err := runMixBench(ctx, mixConfig{Rooms: rooms, C: 3, Rounds: 1, Key: "devkey", Secret: "secret",
		Grace: 100 * time.Millisecond, Timeout: 90 * time.Second, Progress: &progress, CPUProfile: prof})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	events := rooms * len(callMix)
	if res.Events != events || len(res.Runs) != 2 || res.Runs[0].Server != "baseline" || res.Runs[1].Server != "target" {
		t.Fatalf("want one baseline and one target round of %d events: %+v", events, res)
	}
	for _, r := range res.Runs {
		if r.OK != events || r.Errors != 0 || r.CPUSeconds <= 0 || r.CPUPerEvent <= 0 {
			t.Errorf("%s round: %+v", r.Server, r)
		}
	}
	base, target := res.Runs[0], res.Runs[1]
	if base.Writes != nil || base.DrainSeconds != 0 {
		t.Errorf("the baseline stores nothing and has nothing to wait for: %+v", base)
	}
	// The target is waited for until every room is reported, exactly once.
	if got := target.Writes[streamReports]; got != rooms {
		t.Errorf("reports published in the round: %d, want %d (writes %v)", got, rooms, target.Writes)
	}
	var sum uint64
	for _, n := range target.Writes {
		sum += n
	}
	if sum < uint64(events) || math.Abs(target.WritesPerEvent-float64(sum)/float64(events)) > 1e-9 {
		t.Errorf("writes %v: %d in all, %.3f per event; every event is stored durably at least once", target.Writes, sum, target.WritesPerEvent)
	}
	if target.CPUPerEventApplied <= 0 || target.CPUPerEventApplied > target.CPUPerEvent || target.AppliedSeconds > target.DrainSeconds {
		t.Errorf("backlog 0 must come before the reports: %+v", target)
	}
	if res.Target.ByStore[streamReports] != float64(rooms)/float64(events) {
		t.Errorf("median reports per event %v", res.Target.ByStore)
	}
	if want := res.Baseline.CPUPerEvent / res.Target.CPUPerEvent; res.Ratio != want || res.Ratio <= 0 {
		t.Errorf("ratio %v, want %v", res.Ratio, want)
	}
	for _, name := range []string{"baseline.1", "target.1"} {
		b, err := os.ReadFile(prof + "." + name)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("CPU profile %s: %v, %d bytes", name, err, len(b))
		}
	}
	out := progress.String()
	if !strings.Contains(out, "writes/event by store: ") || !strings.Contains(out, "KV_lkwh_rooms ") {
		t.Error("no per-store write breakdown")
	}
	last := strings.TrimSpace(out)
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "ratio until every report is out cpu bare/pipeline=") {
		t.Errorf("final line %q", last)
	}
}

// The mix's load generator sends what LiveKit would: each room's events in
// the mix's order, one at a time, correctly signed, rooms concurrently.
func TestMixLoadSendsRoomsInOrder(t *testing.T) {
	const rooms, c = 12, 4
	groups, err := mixRequests("devkey", "secret", "order", rooms, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp := auth.NewSimpleKeyProvider("devkey", "secret")
	var (
		mu       sync.Mutex
		got      = map[string][]string{} // room -> events in arrival order
		inFlight = map[string]int{}
		ids      = map[string]bool{}
		last     = map[string]int64{}
		overlap  bool // more than one room in flight at once
		problems []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := webhook.ReceiveWebhookEvent(r, kp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		room := ev.GetRoom().GetName()
		mu.Lock()
		inFlight[room]++
		busy := 0
		for _, n := range inFlight {
			busy += min(n, 1)
		}
		overlap = overlap || busy > 1
		if inFlight[room] > 1 {
			problems = append(problems, room+": two events in flight")
		}
		if ids[ev.Id] {
			problems = append(problems, "event id used twice: "+ev.Id)
		}
		if ev.CreatedAt < last[room] {
			problems = append(problems, room+": createdAt goes back")
		}
		ids[ev.Id], last[room] = true, ev.CreatedAt
		got[room] = append(got[room], ev.Event)
		mu.Unlock()
		time.Sleep(time.Millisecond) // keep the room in flight a moment
		mu.Lock()
		inFlight[room]--
		mu.Unlock()
	}))
	defer srv.Close()
	client := newBenchClient(c)
	defer client.CloseIdleConnections()
	st := loadRound(context.Background(), client, srv.URL, groups, c)
	if st.OK != rooms*len(callMix) || st.Errors != 0 {
		t.Fatalf("round %+v", st)
	}
	if len(got) != rooms {
		t.Fatalf("%d rooms arrived, want %d", len(got), rooms)
	}
	for room, evs := range got {
		if !slices.Equal(evs, callMix) {
			t.Errorf("room %s: %v, want %v", room, evs, callMix)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if !overlap {
		t.Log("no two rooms were in flight at the same time (a busy machine can serialise them)")
	}
}

func TestBenchMixFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "-mix", "calls", "-url", "http://127.0.0.1:1/x"},
		{"bench", "-mix", "calls", "-n", "10"},
		{"bench", "-mix", "nope"},
		{"bench", "-rooms", "5"},
		{"bench", "-hook"},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// BenchmarkCallMix is bench -mix calls as a Go benchmark: b.N rounds of
// 2,000 rooms; it reports the medians of its last call (-benchtime 1x: one
// round; Nx: one, then N).
//
//	go test -run '^$' -bench CallMix -benchtime 1x ./cmd/lkwebhook
func BenchmarkCallMix(b *testing.B) {
	res, err := runMixBench(context.Background(), mixConfig{Rooms: 2000, C: 32, Rounds: b.N,
		Grace: time.Second, Timeout: time.Duration(b.N) * 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Target.CPUPerEvent, "cpu_µs/event")
	b.ReportMetric(res.Target.CPUPerEventApplied, "cpu_applied_µs/event")
	b.ReportMetric(res.Baseline.CPUPerEvent, "bare_cpu_µs/event")
	b.ReportMetric(res.Ratio, "bare/pipeline")
	b.ReportMetric(res.RatioApplied, "bare/applied")
	b.ReportMetric(res.Target.WritesPerEvent, "writes/event")
	for store, v := range res.Target.ByStore {
		b.ReportMetric(v, store+"_writes/event")
	}
}
