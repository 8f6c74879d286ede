package servetest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is a scrape of /metrics: the metric families by name (a
// counter's name ends in _total).
type Metrics map[string]*dto.MetricFamily

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Sum adds up the samples of the family name whose labels include every
// pair of labels (nil: all of them); 0 when there are none. A sample is
// the value of a counter, gauge or untyped metric, and the count of a
// histogram or summary.
func (m Metrics) Sum(name string, labels map[string]string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, x := range f.GetMetric() {
		if !hasLabels(x, labels) {
			continue
		}
		switch {
		case x.Counter != nil:
			sum += x.Counter.GetValue()
		case x.Gauge != nil:
			sum += x.Gauge.GetValue()
		case x.Untyped != nil:
			sum += x.Untyped.GetValue()
		case x.Histogram != nil:
			sum += float64(x.Histogram.GetSampleCount())
		case x.Summary != nil:
			sum += float64(x.Summary.GetSampleCount())
		}
	}
	return sum
}

// hasLabels: as in PromQL, an empty value matches an absent label.
func hasLabels(x *dto.Metric, want map[string]string) bool {
	got := make(map[string]string, len(x.GetLabel()))
	for _, l := range x.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TryMetrics reads and parses GET /metrics.
func (s *Serve) TryMetrics() (Metrics, error) {
	req, err := http.NewRequest(http.MethodGet, s.URL()+MetricsPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	code, body, err := s.Do(req)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", code, bytes.TrimSpace(body))
	}
	m, err := ParseMetrics(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return m, nil
}

// Metrics is TryMetrics; an error fails the test.
func (s *Serve) Metrics(t testing.TB) Metrics {
	t.Helper()
	m, err := s.TryMetrics()
	if err != nil {
		t.Fatalf("servetest: %v", err)
	}
	return m
}
