package livekitwebhook

import (
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// lagPoints returns the livekitwebhook.delivery.lag data points by event.
func lagPoints(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, m := range collectMetrics(t, reader) {
		h, ok := m.Data.(metricdata.Histogram[float64])
		if !ok || m.Name != "livekitwebhook.delivery.lag" {
			continue
		}
		for _, dp := range h.DataPoints {
			ev, _ := dp.Attributes.Value("event")
			out[ev.AsString()] = dp
		}
	}
	return out
}

// TestDeliveryLag: an event created some seconds ago is recorded once, by
// event, with its age at receipt; a duplicate of it is not recorded again,
// and a createdAt in the future (clock skew) counts as 0, not negative.
func TestDeliveryLag(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tr := startReceiver(t, testConfig(t), WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	const age = 12
	before := time.Now()
	old := roomEvent("EV_lag000000001", "room_started", "lag-room", "RM_lag", before.Unix()-age)
	for range 2 { // the second is a duplicate (a retry)
		if code, resp := postEvent(t, tr.url, old); code != 200 {
			t.Fatalf("post: %d %s", code, resp)
		}
	}
	future := roomEvent("EV_lag000000002", "room_finished", "lag-room", "RM_lag", time.Now().Unix()+30)
	if code, resp := postEvent(t, tr.url, future); code != 200 {
		t.Fatalf("post: %d %s", code, resp)
	}
	after := time.Now()

	points := lagPoints(t, reader)
	started, ok := points["room_started"]
	if !ok {
		t.Fatalf("no lag recorded for room_started (points: %v)", points)
	}
	if started.Count != 1 {
		t.Errorf("room_started lag count %d, want 1 (a duplicate is not measured again)", started.Count)
	}
	// createdAt is whole seconds: the lag is age plus the part of a second
	// before.Unix() dropped, plus the time the requests took.
	lo, hi := float64(age), float64(age)+1+after.Sub(before).Seconds()
	if started.Sum < lo || started.Sum > hi {
		t.Errorf("room_started lag %.3f s, want within [%.0f, %.3f]", started.Sum, lo, hi)
	}
	// 12 s falls in the (10, 15] bucket.
	for i, b := range started.Bounds {
		if b == 15 && started.BucketCounts[i] != 1 {
			t.Errorf("bucket le=15 holds %d, want 1 (bounds %v counts %v)", started.BucketCounts[i], started.Bounds, started.BucketCounts)
		}
	}
	finished, ok := points["room_finished"]
	if !ok || finished.Count != 1 || finished.Sum != 0 {
		t.Errorf("future createdAt: %+v, want one observation of 0", finished)
	}
}
