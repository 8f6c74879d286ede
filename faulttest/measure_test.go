package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// Measurements, not assertions: LKWEBHOOK_MEASURE=1 runs TestMeasure, which
// logs a table and, with LKWEBHOOK_MEASURE_OUT=FILE, writes the figures as
// JSON. It sends only to loopback, and every load is bounded in count.
const (
	envMeasure    = "LKWEBHOOK_MEASURE"
	envMeasureOut = "LKWEBHOOK_MEASURE_OUT"
)

// signedEvent is a webhook body and its Authorization header, signed
// before the clock starts.
type signedEvent struct {
	body []byte
	auth string
}

// sendResult is what one load run saw.
type sendResult struct {
	elapsed  time.Duration
	requests int64 // HTTP requests made (retries included)
	retries  int64 // 503/429 answers retried
	failures int64 // other answers or transport errors (not retried)
}

// sendUnits posts every unit with conc concurrent senders; the events of one
// unit are posted in order by one sender (as LiveKit's per-room queue). A
// 503 or 429 is retried after a short pause.
func sendUnits(ctx context.Context, url string, units [][]signedEvent, conc int) sendResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conc, IdleConnTimeout: 30 * time.Second}}
	defer client.CloseIdleConnections()
	var res sendResult
	var requests, retries, failures atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(units) || ctx.Err() != nil {
					return
				}
				for _, ev := range units[i] {
					for attempt := 0; ; attempt++ {
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(ev.body)))
						req.Header.Set("Authorization", ev.auth)
						req.Header.Set("Content-Type", livekitwebhooktest.ContentType)
						req.Header.Set("User-Agent", livekitwebhooktest.UserAgent)
						requests.Add(1)
						resp, err := client.Do(req)
						if err != nil {
							failures.Add(1)
							break
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) && attempt < 50 {
							retries.Add(1)
							time.Sleep(100 * time.Millisecond)
							continue
						}
						if resp.StatusCode != http.StatusOK {
							failures.Add(1)
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests, res.retries, res.failures = requests.Load(), retries.Load(), failures.Load()
	return res
}

// sessionEvents builds n rooms, each a unit of room_started (and, with
// joined, participant_joined): n active sessions once processed.
func sessionEvents(t *testing.T, tag string, n int, joined bool) [][]signedEvent {
	t.Helper()
	now := time.Now().Unix()
	units := make([][]signedEvent, n)
	sign := func(ev *livekit.WebhookEvent) signedEvent {
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := livekitwebhooktest.Sign(apiKey, apiSecret, b)
		if err != nil {
			t.Fatal(err)
		}
		return signedEvent{body: b, auth: tok}
	}
	for i := range units {
		room := &livekit.Room{Sid: fmt.Sprintf("RM_%s%05d%s", tag, i, lkID("")[:4]), Name: fmt.Sprintf("%s-%05d", tag, i),
			CreationTime: now - 60, EmptyTimeout: 300, DepartureTimeout: 20}
		u := []signedEvent{sign(&livekit.WebhookEvent{Id: lkID("EV_"), Event: "room_started", CreatedAt: now - 60, Room: room})}
		if joined {
			u = append(u, sign(&livekit.WebhookEvent{Id: lkID("EV_"), Event: "participant_joined", CreatedAt: now - 55, Room: room,
				Participant: &livekit.ParticipantInfo{Sid: lkID("PA_"), Identity: fmt.Sprintf("caller-%05d", i),
					Kind: livekit.ParticipantInfo_STANDARD, State: livekit.ParticipantInfo_ACTIVE, JoinedAt: now - 55}}))
		}
		units[i] = u
	}
	return units
}

// startTimed starts serve (not yet started) and returns the time from the
// process start to the first /healthz 200, polled every 5 ms.
func startTimed(t *testing.T, s *servetest.Serve, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	s.Start()
	for time.Since(start) < timeout {
		if !s.Running() {
			t.Fatalf("%s exited during start", s.Name())
		}
		if s.Healthy() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s not healthy after %s", s.Name(), timeout)
	return 0
}

// newServe prepares (without starting) a serve process on a port the
// kernel picks.
func newServe(t *testing.T, name, dataDir string, extra ...string) *servetest.Serve {
	t.Helper()
	return servetest.New(t, serveOptions(name, dataDir, "warn", extra...))
}

// waitGauge polls a /metrics gauge until it reaches want; it returns the
// time waited, or fails after timeout.
func waitGauge(t *testing.T, s *servetest.Serve, name string, want float64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last float64
	var err error
	for time.Since(start) < timeout {
		var m servetest.Metrics
		if m, err = s.TryMetrics(); err == nil {
			if last = m.Sum(name, nil); last >= want {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s at %v (err %v) after %s, want %v", s.Name(), name, last, err, timeout, want)
	return 0
}

// activeCount asks the sessions API how many sessions are active.
func activeCount(s *servetest.Serve) (int, error) {
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get(s.URL() + servetest.SessionsPath + "?limit=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("sessions: %d", resp.StatusCode)
	}
	var out struct {
		Active []json.RawMessage `json:"active"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return len(out.Active), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msList(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

// Figures is what TestMeasure writes to LKWEBHOOK_MEASURE_OUT.
type Figures struct {
	When   time.Time `json:"when"`
	GoOS   string    `json:"goos"`
	CPUs   int       `json:"cpus"`
	Commit string    `json:"commit,omitempty"`

	StartupFreshMs       []float64 `json:"startup_fresh_ms"`
	StartupFreshMedianMs float64   `json:"startup_fresh_median_ms"`
	Startup10kMs         []float64 `json:"startup_10k_sessions_ms"`
	Startup10kMedianMs   float64   `json:"startup_10k_sessions_median_ms"`

	RSSIdleBytes       int64   `json:"rss_idle_bytes"`
	RSS10kBytes        int64   `json:"rss_10k_sessions_bytes"`
	HWM10kBytes        int64   `json:"rss_peak_10k_sessions_bytes"`
	RSSPerSessionBytes float64 `json:"rss_per_session_bytes"`
	// The same 17 s after the load instead of 2 s.
	RSS10kSettledBytes   int64   `json:"rss_10k_sessions_settled_bytes"`
	RSSPerSessionSettled float64 `json:"rss_per_session_settled_bytes"`
	Load10kSeconds       float64 `json:"load_10k_sessions_seconds"`
	Load10kRequests      int64   `json:"load_10k_sessions_requests"`
	Load10kRetries       int64   `json:"load_10k_sessions_retries"`
	Drain10kSeconds      float64 `json:"drain_10k_sessions_after_intake_seconds"`

	Embedded IntakeFigures `json:"intake_embedded"`
	Cluster  IntakeFigures `json:"intake_cluster_r3"`
	// ClusterToEmbedded is the cluster's intake rate over the embedded one.
	ClusterToEmbedded      float64 `json:"intake_rate_ratio_cluster_to_embedded"`
	DrainClusterToEmbedded float64 `json:"drain_ratio_cluster_to_embedded"`
}

// IntakeFigures: n unique signed room_started with conc senders.
type IntakeFigures struct {
	Events       int     `json:"events"`
	Concurrency  int     `json:"concurrency"`
	IntakeSec    float64 `json:"intake_seconds"`
	RatePerSec   float64 `json:"intake_rate_per_second"`
	Retries      int64   `json:"retries_503"`
	Failures     int64   `json:"failures"`
	DrainSec     float64 `json:"processing_drain_after_intake_seconds"`
	TotalSec     float64 `json:"first_request_to_all_processed_seconds"`
	ProcessedPSe float64 `json:"processing_rate_per_second"`
}

// TestMeasure measures serve: time to healthy, memory per session, and the
// intake and processing rates of the embedded engine against a 3-node
// cluster with --replicas 3.
func TestMeasure(t *testing.T) {
	if os.Getenv(envMeasure) != "1" {
		t.Skipf("measurements: set %s=1 (and %s=FILE for JSON)", envMeasure, envMeasureOut)
	}
	const (
		runs        = 5
		sessions    = 10_000
		loadConc    = 16
		intakeN     = 10_000
		intakeConc  = 32
		gaugeActive = "livekitwebhook_sessions_active"
		gaugeParts  = "livekitwebhook_participants_active"
	)
	servetest.Binary(t)
	f := Figures{When: time.Now().UTC(), GoOS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU()}
	if out, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output(); err == nil {
		f.Commit = strings.TrimSpace(string(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// (a) time to healthy on a fresh data directory.
	var fresh []time.Duration
	for i := range runs {
		s := newServe(t, fmt.Sprintf("serve-fresh-%d", i), t.TempDir())
		fresh = append(fresh, startTimed(t, s, 60*time.Second))
		s.Stop()
	}
	f.StartupFreshMs, f.StartupFreshMedianMs = msList(fresh), ms(median(fresh))
	t.Logf("start to /healthz 200, fresh data dir: %v ms, median %.1f ms", f.StartupFreshMs, f.StartupFreshMedianMs)

	// (b) RSS idle, then with 10,000 active sessions.
	dir := t.TempDir()
	s := newServe(t, "serve-10k", dir)
	startTimed(t, s, 60*time.Second)
	time.Sleep(2 * time.Second)
	var err error
	if f.RSSIdleBytes, err = vmRSS(s.PID(), "VmRSS"); err != nil {
		t.Fatal(err)
	}
	units := sessionEvents(t, "m", sessions, true)
	load := sendUnits(ctx, s.WebhookURL(), units, loadConc)
	if load.failures > 0 {
		t.Fatalf("load: %d failed requests", load.failures)
	}
	f.Load10kSeconds, f.Load10kRequests, f.Load10kRetries = load.elapsed.Seconds(), load.requests, load.retries
	drain := waitGauge(t, s, gaugeParts, sessions, 5*time.Minute)
	waitGauge(t, s, gaugeActive, sessions, time.Minute)
	f.Drain10kSeconds = drain.Seconds()
	apiStart := time.Now()
	if n, err := activeCount(s); err != nil || n != sessions {
		t.Fatalf("sessions API lists %d active (err %v), want %d", n, err, sessions)
	}
	t.Logf("sessions API listed %d active sessions in %s", sessions, time.Since(apiStart).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if f.RSS10kBytes, err = vmRSS(s.PID(), "VmRSS"); err != nil {
		t.Fatal(err)
	}
	f.HWM10kBytes, _ = vmRSS(s.PID(), "VmHWM")
	f.RSSPerSessionBytes = float64(f.RSS10kBytes-f.RSSIdleBytes) / sessions
	// The heap right after the load still holds its garbage (up to the soft
	// memory limit); read again once the process has been idle a while.
	time.Sleep(15 * time.Second)
	if f.RSS10kSettledBytes, err = vmRSS(s.PID(), "VmRSS"); err != nil {
		t.Fatal(err)
	}
	f.RSSPerSessionSettled = float64(f.RSS10kSettledBytes-f.RSSIdleBytes) / sessions
	t.Logf("%d sessions (%d events) posted by %d senders in %s (%d requests, %d retried), processed %s after the last answer",
		sessions, 2*sessions, loadConc, load.elapsed.Round(time.Millisecond), load.requests, load.retries, drain.Round(time.Millisecond))
	s.Stop()

	// (a) again, on the data directory holding those 10,000 sessions.
	var full []time.Duration
	for range runs {
		full = append(full, startTimed(t, s, 2*time.Minute))
		s.Stop()
	}
	f.Startup10kMs, f.Startup10kMedianMs = msList(full), ms(median(full))
	t.Logf("start to /healthz 200, %d sessions in the data dir: %v ms, median %.1f ms", sessions, f.Startup10kMs, f.Startup10kMedianMs)

	// (c) intake and processing: embedded engine, then one replica on a
	// 3-node cluster with --replicas 3.
	intake := func(name string, s *servetest.Serve) IntakeFigures {
		units := sessionEvents(t, name, intakeN, false)
		res := sendUnits(ctx, s.WebhookURL(), units, intakeConc)
		drain := waitGauge(t, s, gaugeActive, intakeN, 5*time.Minute)
		fig := IntakeFigures{Events: intakeN, Concurrency: intakeConc, IntakeSec: res.elapsed.Seconds(),
			RatePerSec: float64(intakeN) / res.elapsed.Seconds(), Retries: res.retries, Failures: res.failures,
			DrainSec: drain.Seconds(), TotalSec: (res.elapsed + drain).Seconds()}
		fig.ProcessedPSe = float64(intakeN) / fig.TotalSec
		if res.failures > 0 {
			t.Errorf("%s: %d failed requests", name, res.failures)
		}
		return fig
	}
	emb := newServe(t, "serve-embedded", t.TempDir())
	startTimed(t, emb, time.Minute)
	f.Embedded = intake("e", emb)
	emb.Stop()

	cl := startNATSCluster(t, 3)
	rep := newServe(t, "serve-cluster", t.TempDir(), "--nats-url", cl.urls, "--replicas", "3")
	startTimed(t, rep, time.Minute)
	f.Cluster = intake("c", rep)
	rep.Stop()
	for _, n := range cl.nodes {
		n.Stop()
	}
	f.ClusterToEmbedded = f.Cluster.RatePerSec / f.Embedded.RatePerSec
	f.DrainClusterToEmbedded = f.Cluster.TotalSec / f.Embedded.TotalSec

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-58s %s\n", "figure", "value")
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-58s "+format+"\n", append([]any{k}, args...)...)
	}
	row("start -> /healthz 200, fresh data dir (median of 5)", "%.0f ms  %v", f.StartupFreshMedianMs, f.StartupFreshMs)
	row("start -> /healthz 200, 10,000 sessions (median of 5)", "%.0f ms  %v", f.Startup10kMedianMs, f.Startup10kMs)
	row("VmRSS idle", "%.1f MiB", float64(f.RSSIdleBytes)/(1<<20))
	row("VmRSS with 10,000 active sessions", "%.1f MiB (peak VmHWM %.1f MiB)", float64(f.RSS10kBytes)/(1<<20), float64(f.HWM10kBytes)/(1<<20))
	row("RSS per session (delta / 10,000)", "%.0f bytes", f.RSSPerSessionBytes)
	row("VmRSS with 10,000 sessions, idle 17 s after the load", "%.1f MiB (%.0f bytes per session)",
		float64(f.RSS10kSettledBytes)/(1<<20), f.RSSPerSessionSettled)
	row("20,000 events posted (c=16)", "%.2f s, processed %.2f s after", f.Load10kSeconds, f.Drain10kSeconds)
	for _, x := range []struct {
		name string
		f    IntakeFigures
	}{{"embedded", f.Embedded}, {"cluster R3", f.Cluster}} {
		row("intake "+x.name+", 10,000 room_started c=32", "%.0f /s (%.2f s, %d retried)", x.f.RatePerSec, x.f.IntakeSec, x.f.Retries)
		row("processing "+x.name+": drain after intake / total", "%.2f s / %.2f s (%.0f events/s)", x.f.DrainSec, x.f.TotalSec, x.f.ProcessedPSe)
	}
	row("(cluster R3: one serve replica on 3 nats-server nodes)", "")
	row("intake rate ratio cluster / embedded", "%.2f", f.ClusterToEmbedded)
	row("first request -> all processed, cluster / embedded", "%.2f", f.DrainClusterToEmbedded)
	t.Log(b.String())

	if out := os.Getenv(envMeasureOut); out != "" {
		js, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		} else {
			t.Logf("figures written to %s", out)
		}
	}
}
