package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/testport"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// Signing key of every test: the secret is long enough for livekit-server.
const (
	apiKey       = "faultkey"
	apiSecret    = "faulttest-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	webhookPath  = "/voice/livekit/webhooks"
	sessionsPath = "/voice/livekit/sessions"
	modulePath   = "github.com/beluga-ai-contrib/beluga-livekit"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// goTool is the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// raceBuild: LKWEBHOOK_FAULT_RACE=1 builds serve with the race detector.
func raceBuild() bool { return os.Getenv("LKWEBHOOK_FAULT_RACE") == "1" }

// lkwebhookBin builds cmd/lkwebhook once per test binary.
func lkwebhookBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("LKWEBHOOK_FAULT_BIN"); p != "" {
			binPath = p // a prebuilt binary (debugging a snapshot)
			return
		}
		start := time.Now()
		buildDir, buildErr = os.MkdirTemp("", "lkwebhook-faulttest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "lkwebhook")
		args := []string{"build", "-o", binPath}
		if raceBuild() {
			args = append(args, "-race")
		}
		args = append(args, modulePath+"/cmd/lkwebhook")
		cmd := exec.Command(goTool(), args...)
		cmd.Dir = ".." // the module root: tests run in their package directory
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "faulttest: built lkwebhook (race=%v) in %s\n", raceBuild(), time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("build lkwebhook: %v", buildErr)
	}
	return binPath
}

// freePort returns a loopback port that was free a moment ago (see
// testport): only for a port a process must be told in advance (a
// cluster's routes); its caller starts again when the port was taken.
// Every other server binds port 0 and reports what it got.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// childEnv is the environment of child processes: ours, minus anything that
// would configure the receiver behind the test's back.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BELUGA_"), strings.HasPrefix(k, "LIVEKIT_"),
			strings.HasPrefix(k, "OTEL_"), strings.HasPrefix(k, "LKWEBHOOK_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// proc is a child process (serve or nats-server) that can be killed,
// restarted with the same arguments, and is always ended by the test.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	env  []string
	log  *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	starts  int
}

func newProc(t *testing.T, name, bin string, args, env []string) *proc {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, bin: bin, args: args, env: env, log: logf}
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			p.dumpLog(80)
			p.keepLog()
		}
		if raceBuild() && name == "serve" {
			if b, _ := os.ReadFile(logf.Name()); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
				t.Errorf("%s reported a data race; log kept at %s", name, logf.Name())
				p.dumpLog(200)
			}
		}
		_ = logf.Close()
	})
	return p
}

// start launches the process (again).
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			p.t.Fatalf("%s: start while running", p.name)
		}
	}
	p.starts++
	fmt.Fprintf(p.log, "\n===== faulttest: start #%d of %s at %s =====\n", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	// The child dies with the test binary, even on a panic or timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
}

// pinArg sets the value that follows flag in the arguments of the next
// starts (a restart keeps the port the first run was given by the kernel).
func (p *proc) pinArg(flag, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i+1 < len(p.args); i++ {
		if p.args[i] == flag {
			p.args[i+1] = value
			return
		}
	}
	p.t.Fatalf("%s: no %s argument to pin", p.name, flag)
}

// output is what the process printed since its last start.
func (p *proc) output() string {
	p.mu.Lock()
	marker := fmt.Sprintf("===== faulttest: start #%d of %s ", p.starts, p.name)
	p.mu.Unlock()
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	out := string(b)
	if i := strings.LastIndex(out, marker); i >= 0 {
		out = out[i:]
	}
	return out
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// running reports whether the last started process has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// kill sends sig and waits for the exit (SIGKILL after 15 s).
func (p *proc) kill(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	fmt.Fprintf(p.log, "\n===== faulttest: %v to %s (pid %d) at %s =====\n", sig, p.name, cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s did not exit within 15s of %v; killing", p.name, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

// keepLog copies the child's log out of the test's temporary directory.
func (p *proc) keepLog() {
	dir := filepath.Join(os.TempDir(), "lkwebhook-faulttest-logs", strings.ReplaceAll(p.t.Name(), "/", "_"))
	b, err := os.ReadFile(p.log.Name())
	if err != nil || os.MkdirAll(dir, 0o755) != nil {
		return
	}
	dst := filepath.Join(dir, p.name+".log")
	if os.WriteFile(dst, b, 0o644) == nil {
		p.t.Logf("%s log kept at %s", p.name, dst)
	}
}

// dumpLog logs the interesting part of the child's output: markers, warnings,
// errors and anything that is not a JSON log line (panics, race reports).
func (p *proc) dumpLog(lines int) {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" || strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, `"level":"DEBUG"`) ||
			strings.Contains(l, `[INF]`) || strings.Contains(l, `[DBG]`) {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > lines {
		keep = keep[len(keep)-lines:]
	}
	p.t.Logf("%s log (%s), last %d warning/error/other lines:\n%s", p.name, p.log.Name(), len(keep), strings.Join(keep, "\n"))
}

// serve is a running `lkwebhook serve`.
type serve struct {
	*proc
	addr string
	base string // http://addr
}

// anyPort is the listen address of a server started by the tests: the
// kernel picks a free port and the server says which (see resolveAddr), so
// no other process can take the port in between.
const anyPort = "127.0.0.1:0"

// startServe runs `lkwebhook serve` on a fresh loopback port with the given
// extra flags, and waits until /healthz answers 200.
func startServe(t *testing.T, dataDir string, extra ...string) *serve {
	t.Helper()
	bin := lkwebhookBin(t)
	args := append([]string{"serve", "--addr", anyPort, "--data", dataDir, "--finalize-grace", "1s", "--log-level", "info"}, extra...)
	env := childEnv("LIVEKIT_API_KEY="+apiKey, "LIVEKIT_API_SECRET="+apiSecret)
	s := &serve{proc: newProc(t, "serve", bin, args, env)}
	s.start()
	s.waitHealthy(t, 45*time.Second)
	return s
}

// listeningOn precedes the address in the line serve (and hookserve) print
// on stdout once they listen: "lkwebhook: listening on http://ADDR/path".
const listeningOn = "listening on http://"

// resolveAddr learns the address a serve started on anyPort listens on from
// its output, and pins it for restarts, which must keep the URL. It reports
// whether the address is known (serve listens once its engine is up).
func (s *serve) resolveAddr() bool {
	if s.addr != "" {
		return true
	}
	out := s.output()
	i := strings.Index(out, listeningOn)
	if i < 0 {
		return false
	}
	addr := out[i+len(listeningOn):]
	if j := strings.IndexAny(addr, "/\n"); j >= 0 {
		addr = addr[:j]
	}
	s.pinArg("--addr", addr)
	s.addr, s.base = addr, "http://"+addr
	return true
}

func (s *serve) webhookURL() string { return s.base + webhookPath }

var httpc = &http.Client{Timeout: 10 * time.Second}

// health returns the /healthz status code (0 when unreachable or not yet
// listening).
func (s *serve) health() int {
	if !s.resolveAddr() {
		return 0
	}
	resp, err := httpc.Get(s.base + "/healthz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealthy waits for /healthz 200 and returns how long it took.
func (s *serve) waitHealthy(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	return s.waitHealth(t, http.StatusOK, timeout)
}

func (s *serve) waitHealth(t *testing.T, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	last := -1
	for time.Now().Before(deadline) {
		if !s.running() {
			t.Fatalf("serve exited while waiting for /healthz %d", want)
		}
		if last = s.health(); last == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/healthz still %d after %s, want %d", last, timeout, want)
	return 0
}

// apiParticipant and apiReport decode the sessions API: only the JSON
// contract, not the Go types, is under test.
type apiParticipant struct {
	SID              string     `json:"sid"`
	Identity         string     `json:"identity"`
	Kind             string     `json:"kind"`
	State            string     `json:"state"`
	JoinedAt         time.Time  `json:"joined_at"`
	LeftAt           *time.Time `json:"left_at"`
	Seconds          float64    `json:"seconds"`
	DisconnectReason string     `json:"disconnect_reason"`
}

type apiReport struct {
	SessionID                string             `json:"session_id"`
	RoomName                 string             `json:"room_name"`
	RoomSID                  string             `json:"room_sid"`
	StartedAt                time.Time          `json:"started_at"`
	EndedAt                  *time.Time         `json:"ended_at"`
	DurationSeconds          float64            `json:"duration_seconds"`
	ParticipantSeconds       float64            `json:"participant_seconds"`
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	EndReason                string             `json:"end_reason"`
	Disposition              string             `json:"disposition"`
	Participants             []apiParticipant   `json:"participants"`
	EventsApplied            int                `json:"events_applied"`
}

type apiSessions struct {
	Active []apiReport `json:"active"`
	Ended  []apiReport `json:"ended"`
}

// sessions reads GET /voice/livekit/sessions?limit=1000.
func (s *serve) sessions() (apiSessions, error) {
	var out apiSessions
	resp, err := httpc.Get(s.base + sessionsPath + "?limit=1000")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("sessions: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// metric sums the samples of a Prometheus counter from /metrics whose
// labels contain every one of want (e.g. `reason="engine_unavailable"`).
func (s *serve) metric(name string, want ...string) (float64, error) {
	resp, err := httpc.Get(s.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if i := strings.LastIndexByte(line, ' '); ok && i > 0 {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum, nil
}

// signedRequest builds a webhook request signed exactly as LiveKit does.
func signedRequest(t *testing.T, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", signBody(t, body))
	req.Header.Set("Content-Type", "application/webhook+json")
	req.Header.Set("User-Agent", "LiveKit")
	return req
}

// signBody returns the JWT LiveKit puts in Authorization for body.
func signBody(t *testing.T, body []byte) string {
	t.Helper()
	tok, err := verify.Sign(apiKey, apiSecret, body, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends req and returns status, headers and body.
func post(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b, nil
}

// vmRSS reads VmRSS (bytes) of pid from /proc.
func vmRSS(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			fields := strings.Fields(v)
			if len(fields) < 1 {
				break
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// eventually polls cond every interval until it is true or timeout passes.
func eventually(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(interval)
	}
}
