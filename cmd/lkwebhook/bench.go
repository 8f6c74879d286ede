package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const benchUsage = `usage: lkwebhook bench [--url URL] [-n 20000] [-c 32] [--baseline] [--json]
       lkwebhook bench -mix calls [-rooms 2000] [-c 32] [-grace 1s] [-hook] [--json]

Posts n correctly signed, unique room_started events with c concurrent
workers over keep-alive connections and reports req/s, p50/p90/p99 latency
and errors. Bodies and tokens are made before the clock starts.

Without --url it starts, in this process, a full receiver (embedded engine
in a temporary directory) and a baseline: a bare handler calling LiveKit's
webhook.ReceiveWebhookEvent that stores nothing. With --url it measures that
receiver, and with --baseline it compares it to the in-process baseline.
Baseline and target run alternately; the medians are compared in a final
line "ratio throughput=X.XX p99=Y.YY" (target/baseline).

With -mix calls it measures the whole pipeline instead: per room
room_started, two participant_joined, two track_published, two
participant_left and room_finished, in order and one at a time per room,
-c rooms at a time, from a child process. It reports this process's CPU
per event (the in-process receiver until its backlog is 0 and every
room's report is out; the bare handler until its last answer), the
receiver's durable writes per event by stream and bucket, and the ratios
"ratio until backlog 0 … cpu bare/pipeline=X.XX" and, last, "ratio until
every report is out cpu bare/pipeline=X.XX".

Flags:
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var cfg benchConfig
	fs.StringVar(&cfg.URL, "url", "", "webhook URL of a running receiver (default: an in-process one)")
	fs.IntVar(&cfg.N, "n", 20000, "requests per round")
	fs.IntVar(&cfg.C, "c", 32, "concurrent workers")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds of each (at least 2 when comparing)")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "compare --url with the in-process baseline")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole bench")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of each measured round to `PREFIX`.<server>.<round> (in-process servers only)")
	apiKey := fs.String("api-key", "", "API key to sign with (as for send)")
	apiSecret := fs.String("api-secret", "", "API secret to sign with")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	mix := fs.String("mix", "", "`calls`: measure the whole pipeline on a call mix (see above)")
	var mixCfg mixConfig
	addMixFlags(fs, &mixCfg)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "lkwebhook bench: unexpected argument %q\n", pos[0])
		return 2
	}
	if cfg.Key, cfg.Secret, err = signingKey(*apiKey, *apiSecret, stderr); err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench:", err)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *mix != "" {
		mixCfg.C, mixCfg.Rounds, mixCfg.Key, mixCfg.Secret = cfg.C, cfg.Rounds, cfg.Key, cfg.Secret
		mixCfg.Timeout, mixCfg.CPUProfile = cfg.Timeout, cfg.CPUProfile
		return runMixCommand(ctx, *mix, mixCfg, set, *asJSON, stdout, stderr)
	}
	for _, f := range []string{"rooms", "grace", "hook"} {
		if set[f] {
			fmt.Fprintf(stderr, "lkwebhook bench: -%s needs -mix calls\n", f)
			return 2
		}
	}
	if !*asJSON {
		cfg.Progress = stdout
	}
	res, err := runBenchmark(ctx, cfg)
	if *asJSON && res != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench:", err)
		return 1
	}
	if res.Target.Errors > 0 || res.Baseline != nil && res.Baseline.Errors > 0 {
		return 1
	}
	return 0
}

// benchConfig configures runBenchmark.
type benchConfig struct {
	URL         string        // target webhook URL; "" starts an in-process receiver
	Baseline    bool          // also measure the bare handler (implied by URL "")
	N, C        int           // requests per round, concurrent workers
	Rounds      int           // rounds of each; at least 2 when comparing
	Key, Secret string        // signing key (and the in-process servers' key)
	Timeout     time.Duration // bounds the whole bench
	Progress    io.Writer     // per-round and summary lines; nil for none
	CPUProfile  string        // file prefix for per-round CPU profiles; "" for none
}

// roundStats is one measured round against one server.
type roundStats struct {
	Server     string         `json:"server"` // "baseline" or "target"
	Round      int            `json:"round"`
	Requests   int            `json:"requests"` // completed (answered or failed)
	OK         int            `json:"ok"`       // 2xx answers
	Errors     int            `json:"errors"`   // everything else, unsent included
	Status     map[string]int `json:"status"`   // count by status code, "error" for transport errors
	FirstError string         `json:"first_error,omitempty"`
	Seconds    float64        `json:"seconds"`
	// BacklogSeconds: how long the in-process receiver then took to finish
	// processing what it accepted (waited for before the next round).
	BacklogSeconds float64 `json:"backlog_seconds,omitempty"`
	// JournalWrites: durable writes the in-process receiver made in the
	// round; requests per write is how well group commit batched them.
	JournalWrites uint64  `json:"journal_writes,omitempty"`
	RPS           float64 `json:"req_per_s"`
	P50           float64 `json:"p50_ms"`
	P90           float64 `json:"p90_ms"`
	P99           float64 `json:"p99_ms"`
}

// benchSummary is the median of a server's rounds (per metric).
type benchSummary struct {
	RPS    float64 `json:"req_per_s"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	OK     int     `json:"ok"`     // over all rounds
	Errors int     `json:"errors"` // over all rounds
}

// benchResult is what runBenchmark measured.
type benchResult struct {
	N        int           `json:"n"`
	C        int           `json:"c"`
	Rounds   int           `json:"rounds"`
	Target   benchSummary  `json:"target"`
	Baseline *benchSummary `json:"baseline,omitempty"`
	// Ratios target/baseline of the medians; 0 without a baseline.
	ThroughputRatio float64      `json:"throughput_ratio,omitempty"`
	P99Ratio        float64      `json:"p99_ratio,omitempty"`
	TargetURL       string       `json:"target_url"`
	InProcess       bool         `json:"in_process_target"`
	Runs            []roundStats `json:"runs"`
}

// runBenchmark measures the target (and the baseline) as configured. It
// always stops within cfg.Timeout, and stops what it started.
func runBenchmark(ctx context.Context, cfg benchConfig) (*benchResult, error) {
	if cfg.N <= 0 || cfg.C <= 0 {
		return nil, errors.New("-n and -c must be positive")
	}
	cfg.C = min(cfg.C, cfg.N)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Key == "" || cfg.Secret == "" {
		cfg.Key, cfg.Secret = devKey, devSecret
	}
	withBaseline := cfg.URL == "" || cfg.Baseline
	if cfg.Rounds <= 0 {
		cfg.Rounds = 1
	}
	if withBaseline {
		cfg.Rounds = max(cfg.Rounds, 2)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	res := &benchResult{N: cfg.N, C: cfg.C, Rounds: cfg.Rounds, TargetURL: cfg.URL}
	targetDesc := cfg.URL
	// settle waits until the in-process receiver has processed its backlog,
	// so that no round pays for the previous one's background work.
	settle := func(context.Context) (time.Duration, error) { return 0, nil }
	// journalSeq counts the in-process receiver's durable writes so far.
	journalSeq := func(context.Context) uint64 { return 0 }
	if cfg.URL == "" {
		url, recv, stop, err := startBenchReceiver(ctx, livekitwebhook.Config{APIKey: cfg.Key, APISecret: cfg.Secret})
		if err != nil {
			return nil, fmt.Errorf("in-process receiver: %w", err)
		}
		defer stop()
		res.TargetURL, res.InProcess = url, true
		targetDesc = url + " (in-process receiver, embedded engine)"
		settle = func(ctx context.Context) (time.Duration, error) { return waitProcessed(ctx, recv, 2*time.Minute) }
		journalSeq = func(ctx context.Context) uint64 {
			st, _ := recv.StoreStats(ctx) // nil on error: no figure for the round
			return st[streamJournal].Writes
		}
	}
	var baselineURL string
	if withBaseline {
		url, stop, err := startBaseline(cfg.Key, cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		defer stop()
		baselineURL = url
	}

	client := newBenchClient(cfg.C)
	defer client.CloseIdleConnections()

	gen := newBenchEvents(cfg.Key, cfg.Secret)
	fmt.Fprintf(progress, "bench: n=%d c=%d rounds=%d GOMAXPROCS=%d\n  target   %s\n", cfg.N, cfg.C, cfg.Rounds, runtime.GOMAXPROCS(0), targetDesc)
	if withBaseline {
		fmt.Fprintf(progress, "  baseline %s (bare webhook.ReceiveWebhookEvent handler, no persistence)\n", baselineURL)
	}

	// Warm both up (connections, engine caches) with unmeasured events.
	warm := min(cfg.N, 10*cfg.C)
	servers := []struct{ name, url string }{{"target", res.TargetURL}}
	if withBaseline {
		servers = []struct{ name, url string }{{"baseline", baselineURL}, {"target", res.TargetURL}}
	}
	for _, s := range servers {
		reqs, err := gen.make(warm)
		if err != nil {
			return nil, err
		}
		if st := loadRound(ctx, client, s.url, singles(reqs), cfg.C); st.OK == 0 {
			return res, fmt.Errorf("%s %s: warm-up failed: %s", s.name, s.url, st.FirstError)
		}
	}
	if _, err := settle(ctx); err != nil {
		return res, fmt.Errorf("warm-up backlog: %w", err)
	}

	for round := 1; round <= cfg.Rounds; round++ {
		for _, s := range servers {
			reqs, err := gen.make(cfg.N) // signed before the clock starts
			if err != nil {
				return res, err
			}
			stopProfile, err := startProfile(cfg.CPUProfile, s.name, round)
			if err != nil {
				return res, err
			}
			seq := journalSeq(ctx)
			st := loadRound(ctx, client, s.url, singles(reqs), cfg.C)
			stopProfile()
			st.Server, st.Round = s.name, round
			if s.name == "target" && ctx.Err() == nil {
				if after := journalSeq(ctx); after > seq {
					st.JournalWrites = after - seq
				}
				d, err := settle(ctx)
				if err != nil {
					return res, fmt.Errorf("target backlog after round %d: %w", round, err)
				}
				st.BacklogSeconds = d.Seconds()
			}
			res.Runs = append(res.Runs, st)
			fmt.Fprintf(progress, "round %d %-8s %s\n", round, s.name, st.line())
			if ctx.Err() != nil {
				return res, fmt.Errorf("stopped by the %s bound: %w", cfg.Timeout, ctx.Err())
			}
		}
	}

	res.Target = summarize(res.Runs, "target")
	fmt.Fprintf(progress, "median   target   %s\n", res.Target.line())
	if withBaseline {
		b := summarize(res.Runs, "baseline")
		res.Baseline = &b
		fmt.Fprintf(progress, "median   baseline %s\n", b.line())
		if b.RPS > 0 {
			res.ThroughputRatio = res.Target.RPS / b.RPS
		}
		if b.P99 > 0 {
			res.P99Ratio = res.Target.P99 / b.P99
		}
		fmt.Fprintf(progress, "ratio throughput=%.2f p99=%.2f\n", res.ThroughputRatio, res.P99Ratio)
	}
	return res, nil
}

// startProfile profiles the CPU of this process (load generator and
// in-process servers) for one measured round; the settle step is left out.
func startProfile(prefix, server string, round int) (stop func(), err error) {
	if prefix == "" {
		return func() {}, nil
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", prefix, server, round))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// benchRequest is one pre-signed webhook.
type benchRequest struct {
	body  []byte
	token string
}

// benchEvents makes unique, signed room_started events.
type benchEvents struct {
	signer livekitwebhooktest.Signer
	run    string
	seq    int
}

func newBenchEvents(key, secret string) *benchEvents {
	// Longer than LiveKit's 5 minutes: a slow round must not expire.
	signer := livekitwebhooktest.Signer{Key: key, Secret: secret, ValidFor: 15 * time.Minute}
	return &benchEvents{signer: signer, run: randomBase62(5)}
}

func (g *benchEvents) make(n int) ([]benchRequest, error) {
	out := make([]benchRequest, n)
	now := time.Now().Unix()
	for i := range out {
		g.seq++
		// Unique ids (EV_ + 12 chars); 1024 room names per run.
		name := fmt.Sprintf("bench-%s-%04d", g.run, g.seq%1024)
		ev := &livekit.WebhookEvent{
			Event:     "room_started",
			Id:        fmt.Sprintf("EV_%s%07d", g.run, g.seq%10_000_000),
			CreatedAt: now,
			Room: &livekit.Room{
				Sid:              derivedID("RM_", "room", name),
				Name:             name,
				CreationTime:     now,
				CreationTimeMs:   now * 1000,
				EmptyTimeout:     300,
				DepartureTimeout: 20,
			},
		}
		body, err := livekitwebhooktest.Marshal(ev)
		if err != nil {
			return nil, err
		}
		token, err := g.signer.Sign(body)
		if err != nil {
			return nil, err
		}
		out[i] = benchRequest{body: body, token: token}
	}
	return out, nil
}

// newBenchClient keeps c connections alive to one host.
func newBenchClient(c int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c
	tr.MaxIdleConns = 4 * c
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// singles makes each request a group of its own.
func singles(reqs []benchRequest) [][]benchRequest {
	out := make([][]benchRequest, len(reqs))
	for i := range reqs {
		out[i] = reqs[i : i+1]
	}
	return out
}

// loadRound posts groups of requests with c workers and measures them. A
// group's requests go in order, one at a time, as LiveKit sends one room's
// events; groups run concurrently. Unsent requests (the context ended)
// count as errors.
func loadRound(ctx context.Context, client *http.Client, url string, groups [][]benchRequest, c int) roundStats {
	first := make([]int, len(groups)) // index of each group's first request
	total := 0
	for i, g := range groups {
		first[i] = total
		total += len(g)
	}
	lat := make([]time.Duration, total)
	codes := make([]int, total) // -1 unsent, 0 transport error, else status
	for i := range codes {
		codes[i] = -1
	}
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				gi := int(next.Add(1)) - 1
				if gi >= len(groups) {
					return
				}
				for j, r := range groups[gi] {
					if ctx.Err() != nil {
						return
					}
					i := first[gi] + j
					t0 := time.Now()
					code, err := postSigned(ctx, client, url, r)
					lat[i] = time.Since(t0)
					codes[i] = code
					if err != nil {
						errOnce.Do(func() { firstErr = err.Error() })
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	st := roundStats{Status: map[string]int{}, Seconds: elapsed.Seconds(), FirstError: firstErr}
	done := make([]time.Duration, 0, total)
	for i, code := range codes {
		switch {
		case code < 0:
			st.Errors++
			st.Status["unsent"]++
			continue
		case code == 0:
			st.Errors++
			st.Status["error"]++
		case code/100 == 2:
			st.OK++
			st.Status[strconv.Itoa(code)]++
		default:
			st.Errors++
			st.Status[strconv.Itoa(code)]++
		}
		st.Requests++
		done = append(done, lat[i])
	}
	if elapsed > 0 {
		st.RPS = float64(st.Requests) / elapsed.Seconds()
	}
	slices.Sort(done)
	st.P50, st.P90, st.P99 = percentile(done, 0.50), percentile(done, 0.90), percentile(done, 0.99)
	return st
}

// postSigned sends one webhook with LiveKit's headers.
func postSigned(ctx context.Context, client *http.Client, url string, r benchRequest) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", r.token)
	req.Header.Set("Content-Type", livekitwebhooktest.ContentType)
	req.Header.Set("User-Agent", livekitwebhooktest.UserAgent)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("status %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// percentile is the nearest-rank percentile of sorted, in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(runs []roundStats, server string) benchSummary {
	var rps, p50, p90, p99 []float64
	var sum benchSummary
	for _, r := range runs {
		if r.Server != server {
			continue
		}
		rps, p50, p90, p99 = append(rps, r.RPS), append(p50, r.P50), append(p90, r.P90), append(p99, r.P99)
		sum.OK += r.OK
		sum.Errors += r.Errors
	}
	sum.RPS, sum.P50, sum.P90, sum.P99 = median(rps), median(p50), median(p90), median(p99)
	return sum
}

func (s roundStats) line() string {
	l := fmt.Sprintf("%6d ok %4d errors %7.2fs %9.0f req/s  p50 %7.2fms  p90 %7.2fms  p99 %7.2fms",
		s.OK, s.Errors, s.Seconds, s.RPS, s.P50, s.P90, s.P99)
	if s.JournalWrites > 0 {
		l += fmt.Sprintf("  %.1f req/write", float64(s.OK)/float64(s.JournalWrites))
	}
	if s.BacklogSeconds > 0 {
		l += fmt.Sprintf("  (processed in %.1fs more)", s.BacklogSeconds)
	}
	if s.FirstError != "" {
		l += "  first error: " + s.FirstError
	}
	return l
}

func (s benchSummary) line() string {
	return fmt.Sprintf("%6d ok %4d errors %8s %9.0f req/s  p50 %7.2fms  p90 %7.2fms  p99 %7.2fms",
		s.OK, s.Errors, "", s.RPS, s.P50, s.P90, s.P99)
}

// startBaseline serves LiveKit's reference receiver with nothing behind it.
func startBaseline(key, secret string) (string, func(), error) {
	kp := auth.NewSimpleKeyProvider(key, secret)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := webhook.ReceiveWebhookEvent(r, kp); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	url, stop, err := serveLoopback(h)
	if err != nil {
		return "", nil, err
	}
	return url + "/voice/livekit/webhooks", stop, nil
}

// startBenchReceiver runs a full receiver with an embedded engine in a
// temporary directory (cfg's key and tuning, opts after a quiet logger),
// served by net/http on loopback.
func startBenchReceiver(ctx context.Context, cfg livekitwebhook.Config, opts ...livekitwebhook.Option) (string, *livekitwebhook.Receiver, func(), error) {
	dir, err := os.MkdirTemp("", "lkwebhook-bench-")
	if err != nil {
		return "", nil, nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Dev: the default key is the dev key devkey/secret; the target is a
	// throwaway on loopback.
	cfg.DataDir, cfg.Dev = dir, true
	recv, err := livekitwebhook.New(cfg, append([]livekitwebhook.Option{livekitwebhook.WithLogger(quiet)}, opts...)...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = recv.Start(sctx)
	cancel()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, nil, err
	}
	mux := http.NewServeMux()
	for p, h := range recv.Routes() {
		mux.Handle(p, h)
	}
	url, stopHTTP, err := serveLoopback(mux)
	if err != nil {
		_ = recv.Stop(context.Background())
		_ = os.RemoveAll(dir)
		return "", nil, nil, err
	}
	stop := func() {
		stopHTTP()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = recv.Stop(sctx)
		cancel()
		_ = os.RemoveAll(dir)
	}
	return url + recv.Config().Path, recv, stop, nil
}

// waitProcessed waits until the receiver's processor has nothing pending
// (bounded), and says how long that took.
func waitProcessed(ctx context.Context, recv *livekitwebhook.Receiver, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		journal, events, err := recv.Backlog(ctx)
		if errors.Is(err, livekitwebhook.ErrEngineUnavailable) {
			return 0, errors.New("receiver stopped")
		}
		if err == nil && journal == 0 && events == 0 {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// serveLoopback serves h on 127.0.0.1:0 and returns its base URL.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}
