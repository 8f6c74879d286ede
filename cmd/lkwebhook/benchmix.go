package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// The call mix: what LiveKit sends for one short call with a caller and an
// agent, in this order.
var callMix = []string{"room_started", "participant_joined", "participant_joined",
	"track_published", "track_published", "participant_left", "participant_left", "room_finished"}

// mixLoadCommand is the hidden command bench -mix runs as a child process
// to generate the load, so that this process's CPU is the servers' alone.
// benchChildEnv marks that child (a test binary runs the command line
// instead of its tests; see TestMain).
const (
	mixLoadCommand = "bench-load"
	benchChildEnv  = "LKWEBHOOK_BENCH_CHILD"
)

// mixConfig configures runMixBench.
type mixConfig struct {
	Rooms, C, Rounds int
	Key, Secret      string
	Grace            time.Duration // finalize grace of the receiver
	Hook             bool          // register a no-op hook for every event and OnSessionEnded
	Timeout          time.Duration
	Progress         io.Writer // per-round and summary lines; nil for none
	CPUProfile       string    // file prefix for per-round CPU profiles; "" for none
}

// mixRound is one measured round of the call mix against one server.
type mixRound struct {
	roundStats
	Rooms int `json:"rooms"`
	// CPUSeconds is this process's CPU (the servers; the load comes from a
	// child process) from the first request until the last answer for the
	// baseline, and until the target's backlog is 0 and every room's report
	// is out (DrainSeconds after the last answer).
	CPUSeconds   float64 `json:"cpu_s"`
	CPUPerEvent  float64 `json:"cpu_us_per_event"`
	DrainSeconds float64 `json:"drain_s,omitempty"`
	// The same until the target's backlog (journal and events) was first 0
	// after the last answer: every event applied, some reports not yet out.
	AppliedSeconds     float64 `json:"applied_s,omitempty"`
	CPUAppliedSeconds  float64 `json:"cpu_applied_s,omitempty"`
	CPUPerEventApplied float64 `json:"cpu_applied_us_per_event,omitempty"`
	// EventsConsumers is how many consumers the events stream has at the
	// end (nats-server allows 1,000 per stream by default).
	EventsConsumers int `json:"events_stream_consumers,omitempty"`
	// Writes is the target's durable writes in the round per stream (KV
	// buckets are their KV_<bucket> streams): the growth of each stream's
	// last sequence, so messages a work queue has since removed count.
	Writes         map[string]uint64 `json:"writes,omitempty"`
	WritesPerEvent float64           `json:"writes_per_event,omitempty"`
}

// mixSummary is the median of a server's rounds.
type mixSummary struct {
	CPUPerEvent        float64            `json:"cpu_us_per_event"`
	CPUPerEventApplied float64            `json:"cpu_applied_us_per_event,omitempty"`
	EventsPerSec       float64            `json:"events_per_s"`
	P99                float64            `json:"p99_ms"`
	OK                 int                `json:"ok"`
	Errors             int                `json:"errors"`
	WritesPerEvent     float64            `json:"writes_per_event,omitempty"`
	ByStore            map[string]float64 `json:"writes_per_event_by_store,omitempty"`
}

// mixResult is what runMixBench measured.
type mixResult struct {
	Mix      []string   `json:"mix"`
	Rooms    int        `json:"rooms"`
	Events   int        `json:"events_per_round"`
	C        int        `json:"concurrent_rooms"`
	Rounds   int        `json:"rounds"`
	Grace    string     `json:"finalize_grace"`
	Hook     bool       `json:"hook"`
	Target   mixSummary `json:"target"`
	Baseline mixSummary `json:"baseline"`
	// Ratio is the baseline's CPU per event over the target's (medians):
	// the share of the bare handler's efficiency the whole pipeline keeps.
	Ratio float64 `json:"ratio"`
	// RatioApplied is the same with the target's CPU until its backlog was
	// 0 (how the issue measured from outside; reports not all out).
	RatioApplied float64    `json:"ratio_applied"`
	TargetURL    string     `json:"target_url"`
	Runs         []mixRound `json:"runs"`
}

// addMixFlags declares bench -mix's own flags.
func addMixFlags(fs *flag.FlagSet, cfg *mixConfig) {
	fs.IntVar(&cfg.Rooms, "rooms", 2000, "with -mix calls: rooms per round (8 events each)")
	fs.DurationVar(&cfg.Grace, "grace", time.Second, "with -mix calls: the receiver's finalize grace (reports are waited for)")
	fs.BoolVar(&cfg.Hook, "hook", false, "with -mix calls: register a no-op hook for every event and OnSessionEnded")
}

// runMixCommand is bench -mix calls, after flag parsing; set holds the
// flags given.
func runMixCommand(ctx context.Context, mix string, cfg mixConfig, set map[string]bool, asJSON bool, stdout, stderr io.Writer) int {
	if mix != "calls" {
		fmt.Fprintf(stderr, "lkwebhook bench: unknown -mix %q (calls)\n", mix)
		return 2
	}
	for _, f := range []string{"url", "baseline", "n"} {
		if set[f] {
			fmt.Fprintf(stderr, "lkwebhook bench: -%s does not apply to -mix (it runs its own target and baseline; -rooms sets the size)\n", f)
			return 2
		}
	}
	if !set["timeout"] {
		cfg.Timeout = 20 * time.Minute
	}
	if !asJSON {
		cfg.Progress = stdout
	}
	res, err := runMixBench(ctx, cfg)
	if asJSON && res != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench:", err)
		return 1
	}
	if res.Target.Errors > 0 || res.Baseline.Errors > 0 {
		return 1
	}
	return 0
}

// runMixBench sends the call mix for cfg.Rooms rooms to an in-process
// receiver (configured as serve is) and, in the same run, to a bare
// webhook.ReceiveWebhookEvent handler, alternating, and compares the CPU
// each spends per event. The load comes from a child process.
func runMixBench(ctx context.Context, cfg mixConfig) (*mixResult, error) {
	if cfg.Rooms <= 0 || cfg.C <= 0 {
		return nil, errors.New("-rooms and -c must be positive")
	}
	cfg.C = min(cfg.C, cfg.Rooms)
	cfg.Rounds = max(cfg.Rounds, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Minute
	}
	if cfg.Key == "" || cfg.Secret == "" {
		cfg.Key, cfg.Secret = devKey, devSecret
	}
	progress := cmp.Or[io.Writer](cfg.Progress, io.Discard)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("load generator: %w", err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// As serve: its soft memory limit shapes how often the GC runs.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(defaultMemoryLimit))
	}

	// As serve configures it: metrics recorded into a Prometheus registry,
	// an info-level JSON log (discarded here).
	exporter, err := otelprom.New(otelprom.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = meters.Shutdown(context.Background()) }()
	opts := []livekitwebhook.Option{livekitwebhook.WithLogger(newLogger(io.Discard, "info")), livekitwebhook.WithMeterProvider(meters)}
	if cfg.Hook {
		opts = append(opts, livekitwebhook.WithHooks(noopHooks()))
	}
	targetURL, recv, stop, err := startBenchReceiver(ctx,
		livekitwebhook.Config{APIKey: cfg.Key, APISecret: cfg.Secret, FinalizeGrace: cfg.Grace.String()}, opts...)
	if err != nil {
		return nil, fmt.Errorf("in-process receiver: %w", err)
	}
	defer stop()
	baselineURL, stopBaseline, err := startBaseline(cfg.Key, cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer stopBaseline()

	res := &mixResult{Mix: callMix, Rooms: cfg.Rooms, Events: cfg.Rooms * len(callMix), C: cfg.C, Rounds: cfg.Rounds,
		Grace: cfg.Grace.String(), Hook: cfg.Hook, TargetURL: targetURL}
	fmt.Fprintf(progress, "bench -mix calls: %d rooms × %d events (%s), %d rooms at a time, rounds=%d, GOMAXPROCS=%d\n",
		cfg.Rooms, len(callMix), strings.Join(callMix, ", "), cfg.C, cfg.Rounds, runtime.GOMAXPROCS(0))
	hook := ""
	if cfg.Hook {
		hook = ", a no-op hook on every event and OnSessionEnded"
	}
	fmt.Fprintf(progress, "  target   %s (in-process receiver as serve runs it: embedded engine, metrics, finalize grace %s%s)\n", targetURL, cfg.Grace, hook)
	fmt.Fprintf(progress, "  baseline %s (bare webhook.ReceiveWebhookEvent handler, no persistence)\n", baselineURL)
	fmt.Fprintln(progress, "  load from a child process; CPU is this process's (the servers'): baseline until the last answer,")
	fmt.Fprintln(progress, "  target until its backlog is 0 and every room's report is out (nothing subtracted, grace included)")

	servers := []mixServer{{name: "baseline", url: baselineURL}, {name: "target", url: targetURL, recv: recv}}
	run := randomBase62(5)
	warm := min(cfg.Rooms, 4*cfg.C)
	for _, s := range servers {
		st, err := mixRoundOf(ctx, cfg, exe, s, fmt.Sprintf("%s-w", run), warm, 0)
		if err != nil {
			return res, fmt.Errorf("%s warm-up: %w", s.name, err)
		}
		if st.OK == 0 {
			return res, fmt.Errorf("%s %s: warm-up failed: %s", s.name, s.url, st.FirstError)
		}
	}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, s := range servers {
			st, err := mixRoundOf(ctx, cfg, exe, s, fmt.Sprintf("%s-%d", run, round), cfg.Rooms, round)
			st.Server, st.Round = s.name, round
			if err != nil {
				return res, fmt.Errorf("%s round %d: %w", s.name, round, err)
			}
			res.Runs = append(res.Runs, st)
			fmt.Fprintf(progress, "round %d %-8s %s\n", round, s.name, st.line())
			if len(st.Writes) > 0 {
				fmt.Fprintf(progress, "  writes/event by store: %s\n", byStoreLine(perEvent(st.Writes, st.OK)))
			}
		}
	}

	res.Baseline, res.Target = summarizeMix(res.Runs, "baseline"), summarizeMix(res.Runs, "target")
	if res.Target.CPUPerEvent > 0 {
		res.Ratio = res.Baseline.CPUPerEvent / res.Target.CPUPerEvent
	}
	if res.Target.CPUPerEventApplied > 0 {
		res.RatioApplied = res.Baseline.CPUPerEvent / res.Target.CPUPerEventApplied
	}
	fmt.Fprintf(progress, "median   baseline %s\n", res.Baseline.line())
	fmt.Fprintf(progress, "median   target   %s\n", res.Target.line())
	fmt.Fprintf(progress, "  writes/event by store: %s\n", byStoreLine(res.Target.ByStore))
	fmt.Fprintf(progress, "ratio until backlog 0 (not all reports out) cpu bare/pipeline=%.2f (%.1f µs/event against %.1f)\n",
		res.RatioApplied, res.Baseline.CPUPerEvent, res.Target.CPUPerEventApplied)
	fmt.Fprintf(progress, "ratio until every report is out cpu bare/pipeline=%.2f (%.1f µs/event against %.1f)\n",
		res.Ratio, res.Baseline.CPUPerEvent, res.Target.CPUPerEvent)
	return res, nil
}

// mixServer is a server of the mix bench; recv is set for the target.
type mixServer struct {
	name, url string
	recv      *livekitwebhook.Receiver
}

// mixRoundOf runs one round of rooms against s: a child process signs the
// events, then sends them on a signal, while this process measures its own
// CPU (and for the target, waits for the pipeline to finish and counts
// writes). Round 0 is a warm-up, not profiled.
func mixRoundOf(ctx context.Context, cfg mixConfig, exe string, s mixServer, run string, rooms, round int) (mixRound, error) {
	st := mixRound{Rooms: rooms}
	gen, err := startLoadChild(ctx, exe, s.url, run, rooms, cfg.C, cfg.Key, cfg.Secret)
	if err != nil {
		return st, err
	}
	defer gen.close()
	var before map[string]livekitwebhook.StreamStats
	if s.recv != nil {
		if before, err = s.recv.StoreStats(ctx); err != nil {
			return st, err
		}
	}
	profile := ""
	if round > 0 {
		profile = cfg.CPUProfile
	}
	stopProfile, err := startProfile(profile, s.name, round)
	if err != nil {
		return st, err
	}
	cpu0 := processCPU()
	st.roundStats, err = gen.send()
	var after map[string]livekitwebhook.StreamStats
	if err == nil && s.recv != nil {
		var mark pipelineMark
		mark, after, err = waitPipeline(ctx, cfg.Progress, s.recv, before, uint64(rooms))
		st.AppliedSeconds, st.DrainSeconds = mark.applied.Seconds(), mark.done.Seconds()
		st.CPUAppliedSeconds = (mark.cpu - cpu0).Seconds()
	}
	st.CPUSeconds = (processCPU() - cpu0).Seconds()
	stopProfile()
	if err != nil {
		return st, err
	}
	if s.recv != nil {
		st.Writes = map[string]uint64{}
		for name, a := range after {
			if d := a.Writes - before[name].Writes; d > 0 {
				st.Writes[name] = d
				st.WritesPerEvent += float64(d)
			}
		}
		if st.OK > 0 {
			st.WritesPerEvent /= float64(st.OK)
		}
		st.EventsConsumers = after[streamEvents].Consumers
		if n := st.Writes[streamDLQ]; n > 0 {
			st.Errors += int(n)
			st.FirstError = cmp.Or(st.FirstError, fmt.Sprintf("%d events dead-lettered", n))
		}
	}
	if st.OK > 0 {
		st.CPUPerEvent = st.CPUSeconds / float64(st.OK) * 1e6
		st.CPUPerEventApplied = st.CPUAppliedSeconds / float64(st.OK) * 1e6
	}
	return st, gen.wait()
}

// Streams the bench reads by name (the engine's; KV buckets are streams
// named KV_<bucket>).
const (
	streamJournal = "LKWH_INTAKE"
	streamEvents  = "LKWH_EVENTS"
	streamTasks   = "LKWH_TASKS"
	streamReports = "LKWH_REPORTS"
	streamDLQ     = "LKWH_DLQ"
)

// pipelineMark is when, after the last answer, the target's backlog was
// first 0 (applied, with this process's CPU then) and when it was done.
type pipelineMark struct {
	applied, done time.Duration
	cpu           time.Duration
}

// waitPipeline waits until the receiver has applied everything it accepted
// (backlog 0), the reports stream has grown by reports and no timer task is
// left; it returns the stream states then. Every 10 s it says what it
// waits for on progress (if not nil).
func waitPipeline(ctx context.Context, progress io.Writer, recv *livekitwebhook.Receiver, before map[string]livekitwebhook.StreamStats, reports uint64) (pipelineMark, map[string]livekitwebhook.StreamStats, error) {
	start := time.Now()
	var mark pipelineMark
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastSay := start
	for {
		journal, events, err := recv.Backlog(ctx)
		applied := err == nil && journal == 0 && events == 0
		if applied && mark.applied == 0 {
			mark.applied, mark.cpu = time.Since(start), processCPU()
		}
		var states map[string]livekitwebhook.StreamStats
		if applied || time.Since(lastSay) >= 10*time.Second {
			states, err = recv.StoreStats(ctx)
		}
		if applied && err == nil && states[streamTasks].Messages == 0 &&
			states[streamReports].Writes-before[streamReports].Writes >= reports {
			mark.done = time.Since(start)
			return mark, states, nil
		}
		if progress != nil && states != nil && time.Since(lastSay) >= 10*time.Second {
			lastSay = time.Now()
			fmt.Fprintf(progress, "  … %.0fs: backlog %d+%d, reports %d of %d, open tasks %d, consumers on %s %d\n",
				time.Since(start).Seconds(), journal, events, states[streamReports].Writes-before[streamReports].Writes,
				reports, states[streamTasks].Messages, streamEvents, states[streamEvents].Consumers)
		}
		select {
		case <-ctx.Done():
			return mark, nil, fmt.Errorf("pipeline not done (backlog %d+%d): %w", journal, events, ctx.Err())
		case <-tick.C:
		}
	}
}

func noopHooks() livekitwebhook.Hooks {
	return livekitwebhook.Hooks{
		Name:           "bench",
		OnEvent:        func(context.Context, *livekit.WebhookEvent, livekitwebhook.Session) error { return nil },
		OnSessionEnded: func(context.Context, livekitwebhook.Report) error { return nil },
	}
}

// loadChild is a running load generator: it has signed its events and
// waits for send.
type loadChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *strings.Builder
}

// startLoadChild runs this program's bench-load command and waits until
// its events are signed. The key goes through the environment, never the
// command line.
func startLoadChild(ctx context.Context, exe, url, run string, rooms, c int, key, secret string) (*loadChild, error) {
	cmd := exec.CommandContext(ctx, exe, mixLoadCommand, "-url", url, "-run", run,
		"-rooms", fmt.Sprint(rooms), "-c", fmt.Sprint(c))
	cmd.Env = append(os.Environ(), benchChildEnv+"=1", "LIVEKIT_API_KEY="+key, "LIVEKIT_API_SECRET="+secret)
	var errb strings.Builder
	cmd.Stderr = &errb
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load generator: %w", err)
	}
	g := &loadChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), stderr: &errb}
	if line, err := g.out.ReadString('\n'); err != nil || line != "ready\n" {
		g.close()
		return nil, fmt.Errorf("load generator did not get ready (%q, %v): %s", line, err, strings.TrimSpace(errb.String()))
	}
	return g, nil
}

// send starts the load and returns its figures once every answer is in.
func (g *loadChild) send() (roundStats, error) {
	var st roundStats
	if _, err := io.WriteString(g.stdin, "go\n"); err != nil {
		return st, fmt.Errorf("load generator: %w", err)
	}
	line, err := g.out.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &st)
	}
	if err != nil {
		return st, fmt.Errorf("load generator: %w: %s", err, strings.TrimSpace(g.stderr.String()))
	}
	return st, nil
}

func (g *loadChild) wait() error {
	_ = g.stdin.Close()
	if err := g.cmd.Wait(); err != nil {
		return fmt.Errorf("load generator: %w: %s", err, strings.TrimSpace(g.stderr.String()))
	}
	return nil
}

// close ends the child if it is still running (a failed round).
func (g *loadChild) close() {
	_ = g.stdin.Close()
	if g.cmd.ProcessState == nil {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
	}
}

// runMixLoad is the child side: sign every room's events, print "ready",
// wait for a line on stdin, send (rooms concurrently, each room's events in
// order, one at a time), print the figures as one JSON line.
func runMixLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(mixLoadCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "webhook URL")
	run := fs.String("run", "", "room name prefix")
	rooms := fs.Int("rooms", 1, "rooms")
	c := fs.Int("c", 1, "rooms at a time")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	key, secret, err := signingKey("", "", io.Discard)
	if err == nil && (*url == "" || *rooms <= 0 || *c <= 0) {
		err = errors.New("needs -url, -rooms and -c")
	}
	var groups [][]benchRequest
	if err == nil {
		groups, err = mixRequests(key, secret, *run, *rooms, time.Now())
	}
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench-load:", err)
		return 2
	}
	fmt.Fprintln(stdout, "ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench-load: no go:", err)
		return 1
	}
	client := newBenchClient(*c)
	defer client.CloseIdleConnections()
	st := loadRound(ctx, client, *url, groups, *c)
	b, err := json.Marshal(st)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook bench-load:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}

// mixRequests signs the call mix of each room, as LiveKit would send it for
// a call of about 80 s that ended just now: a caller and an agent join and
// publish their microphones, leave, and the room closes after its
// departure timeout.
func mixRequests(key, secret, run string, rooms int, now time.Time) ([][]benchRequest, error) {
	t0 := now.Add(-90 * time.Second).Unix()
	type step struct {
		at       int64 // seconds after t0
		identity string
		joined   int64
	}
	steps := []step{{0, "", 0}, {1, "caller", 1}, {2, "agent", 2}, {2, "caller", 1}, {3, "agent", 2},
		{60, "caller", 1}, {61, "agent", 2}, {81, "", 0}}
	out := make([][]benchRequest, rooms)
	for i := range out {
		room := fmt.Sprintf("call-%s-%05d", run, i)
		out[i] = make([]benchRequest, len(callMix))
		for j, event := range callMix {
			s := steps[j]
			spec := eventSpec{event: event, room: room, identity: s.identity, createdAt: t0 + s.at}
			if s.identity != "" {
				spec.joinedAt = t0 + s.joined
			}
			if s.identity == "agent" {
				spec.kind = "agent"
			}
			ev, err := buildEvent(spec, now, io.Discard)
			if err != nil {
				return nil, err
			}
			body, err := livekitwebhooktest.Marshal(ev)
			if err != nil {
				return nil, err
			}
			// Longer than LiveKit's 5 minutes: a slow round must not expire.
			token, err := livekitwebhooktest.Signer{Key: key, Secret: secret, ValidFor: 15 * time.Minute}.Sign(body)
			if err != nil {
				return nil, err
			}
			out[i][j] = benchRequest{body: body, token: token}
		}
	}
	return out, nil
}

// perEvent divides each count by events.
func perEvent(counts map[string]uint64, events int) map[string]float64 {
	out := make(map[string]float64, len(counts))
	for k, n := range counts {
		if events > 0 {
			out[k] = float64(n) / float64(events)
		}
	}
	return out
}

// byStoreLine lists writes per event by store, most first.
func byStoreLine(m map[string]float64) string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.3f", n, m[n])
	}
	return strings.Join(parts, "  ")
}

func summarizeMix(runs []mixRound, server string) mixSummary {
	var cpu, cpuApplied, eps, p99, writes []float64
	stores := map[string][]float64{}
	var sum mixSummary
	for _, r := range runs {
		if r.Server != server {
			continue
		}
		sum.OK += r.OK
		sum.Errors += r.Errors
		cpu, eps, p99 = append(cpu, r.CPUPerEvent), append(eps, r.RPS), append(p99, r.P99)
		if r.CPUPerEventApplied > 0 {
			cpuApplied = append(cpuApplied, r.CPUPerEventApplied)
		}
		if r.Writes != nil {
			writes = append(writes, r.WritesPerEvent)
			for k, v := range perEvent(r.Writes, r.OK) {
				stores[k] = append(stores[k], v)
			}
		}
	}
	sum.CPUPerEvent, sum.EventsPerSec, sum.P99 = median(cpu), median(eps), median(p99)
	sum.CPUPerEventApplied = median(cpuApplied)
	if len(writes) > 0 {
		sum.WritesPerEvent = median(writes)
		sum.ByStore = map[string]float64{}
		for k, v := range stores {
			// A store written in only some rounds counts 0 in the others.
			for len(v) < len(writes) {
				v = append(v, 0)
			}
			sum.ByStore[k] = median(v)
		}
	}
	return sum
}

func (s mixRound) line() string {
	l := fmt.Sprintf("%6d ok %3d errors %6.2fs %6.0f ev/s p99 %6.2fms", s.OK, s.Errors, s.Seconds, s.RPS, s.P99)
	l += fmt.Sprintf("  cpu %6.2fs %7.1f µs/event", s.CPUSeconds, s.CPUPerEvent)
	if s.Writes != nil {
		l += fmt.Sprintf(" (%.1f until backlog 0)  then backlog 0 after %.2fs, reports out after %.2fs  %.2f writes/event  %d consumers on %s",
			s.CPUPerEventApplied, s.AppliedSeconds, s.DrainSeconds, s.WritesPerEvent, s.EventsConsumers, streamEvents)
	}
	if s.FirstError != "" {
		l += "  first error: " + s.FirstError
	}
	return l
}

func (s mixSummary) line() string {
	l := fmt.Sprintf("%6d ok %3d errors %6.0f ev/s p99 %6.2fms  cpu %7.1f µs/event", s.OK, s.Errors, s.EventsPerSec, s.P99, s.CPUPerEvent)
	if s.ByStore != nil {
		l += fmt.Sprintf(" (%.1f until backlog 0)  %.2f writes/event", s.CPUPerEventApplied, s.WritesPerEvent)
	}
	return l
}
