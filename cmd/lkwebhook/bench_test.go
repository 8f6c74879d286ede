package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
