package livekitwebhook

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metricPoint is one data point: the value of a sum, the count and sum of
// a histogram, with its attributes.
type metricPoint struct {
	attrs     attribute.Set
	value     float64 // sum: value; histogram: sum of the observations
	count     uint64  // histogram only
	histogram bool
}

// metricPoints returns the data points of one metric.
func metricPoints(t testing.TB, reader *sdkmetric.ManualReader, name string) []metricPoint {
	t.Helper()
	var out []metricPoint
	for _, m := range collectMetrics(t, reader) {
		if m.Name != name {
			continue
		}
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				out = append(out, metricPoint{attrs: p.Attributes, value: float64(p.Value)})
			}
		case metricdata.Sum[float64]:
			for _, p := range d.DataPoints {
				out = append(out, metricPoint{attrs: p.Attributes, value: p.Value})
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				out = append(out, metricPoint{attrs: p.Attributes, value: p.Sum, count: p.Count, histogram: true})
			}
		default:
			t.Fatalf("%s: unexpected data %T", name, m.Data)
		}
	}
	return out
}

// pointsByLabels maps each data point of name to a "k=v,k=v" key of its
// attributes (sorted by key), its value (a histogram: its count).
func pointsByLabels(t testing.TB, reader *sdkmetric.ManualReader, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, p := range metricPoints(t, reader, name) {
		k := ""
		for i, kv := range p.attrs.ToSlice() {
			if i > 0 {
				k += ","
			}
			k += string(kv.Key) + "=" + kv.Value.Emit()
		}
		if p.histogram {
			out[k] += float64(p.count)
		} else {
			out[k] += p.value
		}
	}
	return out
}

func sameLabels(t *testing.T, reader *sdkmetric.ManualReader, name string, want map[string]float64) {
	t.Helper()
	got := pointsByLabels(t, reader, name)
	for k, v := range got {
		if v == 0 {
			delete(got, k) // an Add(0) leaves a zero point
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s = %v\nwant %v", name, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v\nwant %v", name, got, want)
			return
		}
	}
}

// TestReportMetrics sends SIP calls, agent jobs, recordings (one ended
// before the report, one after it) and an unclosed participant through a
// receiver with two projects, and reads what the report metrics say: SIP
// calls by direction and outcome, talk time, agent jobs, recordings and
// anomalies, each by project. Running a reported room's report task again
// (as a redelivery does) and redelivering its events count nothing twice.
func TestReportMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := testConfig(t)
	cfg.Keys = globexKey + ": " + globexSecret
	cfg.Projects = "devkey: acme" // APIglobex is named by its key
	cfg.FinalizeGrace, cfg.EgressWait = "100ms", "300ms"
	var h egressHooks
	tr := startReceiver(t, cfg, WithMeterProvider(mp), WithHooks(h.hooks()))
	ctx := context.Background()

	// acme: the constructed SIP and agent job fixtures.
	for _, f := range []string{"sip-outbound-answered.json", "sip-outbound-no-answer.json", "agent-job-failed.json"} {
		postBodies(t, tr.url, loadConstructed(t, f))
	}
	// globex: the answered call again, same room name (its own session
	// in its project); event ids and room sids are unique across projects,
	// as LiveKit's are.
	answered := constructedFixtures()["sip-outbound-answered.json"].events
	for _, ev := range answered {
		ev.Id += "_globex"
		ev.Room.Sid = "RM_sip-out-ok_globex"
	}
	for _, ev := range answered {
		postAs(t, tr.url, globexKey, globexSecret, ev)
	}
	// acme: a recording that ends before room_finished, one still running
	// at the report, and a participant whose leave never arrives.
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	ok := egressScenario{sid: "RM_mrec_ok", name: "mrec-ok", egressID: "EG_mok", t0: t0}
	late := egressScenario{sid: "RM_mrec_late", name: "mrec-late", egressID: "EG_mlate", t0: t0}
	mustPost(t, tr.url,
		ok.room("EV_mok_rs", "room_started", 0),
		ok.event("EV_mok_e1", "egress_started", livekit.EgressStatus_EGRESS_STARTING, time.Second),
		ok.event("EV_mok_e2", "egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, 20*time.Second),
		ok.room("EV_mok_rf", "room_finished", 30*time.Second),
		late.room("EV_mlate_rs", "room_started", 0),
		late.event("EV_mlate_e1", "egress_started", livekit.EgressStatus_EGRESS_STARTING, time.Second),
		late.event("EV_mlate_e2", "egress_updated", livekit.EgressStatus_EGRESS_ACTIVE, 2*time.Second),
		late.room("EV_mlate_rf", "room_finished", 30*time.Second),
		roomEvent("EV_mleft_rs", "room_started", "mleft", "RM_mleft", t0.Unix()),
		participantEvent("EV_mleft_pj", "participant_joined", "mleft", "RM_mleft", "PA_ml", "ml", livekit.ParticipantInfo_STANDARD, t0.Unix()+1, t0.Unix()+1),
		roomEvent("EV_mleft_rf", "room_finished", "mleft", "RM_mleft", t0.Unix()+30),
	)
	eventually(t, 20*time.Second, "7 reports", func() bool { return len(h.got()) == 7 })

	acmeOut := "direction=outbound,project=acme"
	check := func(t *testing.T, recordings map[string]float64) {
		t.Helper()
		sameLabels(t, reader, "livekitwebhook.sip.calls", map[string]float64{
			"direction=outbound,outcome=answered,project=acme": 1, "direction=outbound,outcome=no_answer,project=acme": 1,
			"direction=outbound,outcome=answered,project=APIglobex": 1,
		})
		// Talk time: answered calls only, 60.6 s each.
		sameLabels(t, reader, "livekitwebhook.sip.talk", map[string]float64{acmeOut: 1, "direction=outbound,project=APIglobex": 1})
		for _, p := range metricPoints(t, reader, "livekitwebhook.sip.talk") {
			if p.value < 60.59 || p.value > 60.61 {
				t.Errorf("talk seconds %v: %v, want 60.6", p.attrs.ToSlice(), p.value)
			}
		}
		sameLabels(t, reader, "livekitwebhook.agent_jobs", map[string]float64{"project=acme,status=JS_FAILED": 1})
		sameLabels(t, reader, "livekitwebhook.report.anomalies", map[string]float64{
			"code=egress_never_ended,project=acme": 1, "code=participant_never_left,project=acme": 1,
		})
		sameLabels(t, reader, "livekitwebhook.recordings", recordings)
		sameLabels(t, reader, "livekitwebhook.reports", map[string]float64{
			"disposition=completed,project=acme": 3, "disposition=completed,project=APIglobex": 1,
			"disposition=no_answer,project=acme": 1, "disposition=no_show,project=acme": 2,
		})
	}
	t.Run("at report time", func(t *testing.T) {
		// The running recording is not counted yet: egress_never_ended.
		check(t, map[string]float64{"project=acme,status=EGRESS_COMPLETE": 1})
	})

	// The running recording fails after the report (delivered twice):
	// counted once, with its terminal status.
	failed := late.event("EV_mlate_e3", "egress_ended", livekit.EgressStatus_EGRESS_FAILED, 90*time.Second)
	failed.EgressInfo.Error = "upload failed"
	mustPost(t, tr.url, failed)
	eventually(t, 10*time.Second, "late recording counted", func() bool {
		return pointsByLabels(t, reader, "livekitwebhook.recordings")["project=acme,status=EGRESS_FAILED"] == 1
	})
	// A late event of a recording that had ended before the report
	// changes no count.
	mustPost(t, tr.url, failed, ok.event("EV_mok_e3", "egress_updated", livekit.EgressStatus_EGRESS_COMPLETE, 95*time.Second))

	// Redelivered report tasks of reported rooms (finalize and expire)
	// and every event again.
	p := tr.processorRef()
	for _, r := range h.got() {
		for _, kind := range []string{taskFinalize, taskExpire} {
			tk := task{Kind: kind, SID: r.RoomSID, Project: r.Project, DueMs: time.Now().Add(-time.Minute).UnixMilli()}
			if err := p.finalize(ctx, tk, newRecordCache(1)); err != nil {
				t.Fatalf("finalize %s %s again: %v", kind, r.RoomSID, err)
			}
		}
	}
	postBodies(t, tr.url, loadConstructed(t, "sip-outbound-answered.json"))
	for _, ev := range answered {
		postAs(t, tr.url, globexKey, globexSecret, ev)
	}
	eventually(t, 10*time.Second, "backlog drained", func() bool {
		j, n, err := tr.Backlog(ctx)
		return err == nil && j == 0 && n == 0
	})
	t.Run("after redeliveries", func(t *testing.T) {
		check(t, map[string]float64{"project=acme,status=EGRESS_COMPLETE": 1, "project=acme,status=EGRESS_FAILED": 1})
	})
	if n := len(h.got()); n != 7 {
		t.Fatalf("%d reports, want 7", n)
	}
}

// TestReportMetricsWithoutProjects: without Config.Projects the report
// metrics carry no project label (a key id is no dashboard dimension),
// and a value outside the fixed sets is "other".
func TestReportMetricsWithoutProjects(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithMeterProvider(mp), WithHooks(hc.hooks()))
	postBodies(t, tr.url, loadConstructed(t, "sip-outbound-no-answer.json"))
	eventually(t, 15*time.Second, "report", func() bool { return len(hc.ended()) == 1 })
	sameLabels(t, reader, "livekitwebhook.sip.calls", map[string]float64{"direction=outbound,outcome=no_answer": 1})
	sameLabels(t, reader, "livekitwebhook.sip.talk", map[string]float64{})

	if got := oneOf("voicemail", "answered", "no_answer"); got != "other" {
		t.Errorf("oneOf(unknown) = %q", got)
	}
	if got := jobStatusLabel("7"); got != "other" {
		t.Errorf("jobStatusLabel(7) = %q", got)
	}
	if recordingTerminal("EGRESS_ACTIVE") || recordingTerminal("bogus") || !recordingTerminal("EGRESS_LIMIT_REACHED") {
		t.Error("recordingTerminal")
	}
}
