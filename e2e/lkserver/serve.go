package lkserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
)

// Environment variables understood by StartServe.
const (
	// EnvServeBinary names a prebuilt lkwebhook binary to run instead of
	// building ./cmd/lkwebhook of the main module.
	EnvServeBinary = "LKWEBHOOK_E2E_SERVE_BIN"
	// EnvServeRace=0 builds lkwebhook without -race even when the tests run
	// with -race (=1 forces -race). By default the binary follows the test
	// binary, so `go test -race` also race-checks `lkwebhook serve`.
	EnvServeRace = "LKWEBHOOK_E2E_SERVE_RACE"
)

// mainModule is the module path of the receiver, built by StartServe.
const mainModule = "github.com/beluga-ai-contrib/beluga-livekit"

// Default paths of `lkwebhook serve`.
const (
	DefaultWebhookPath  = "/voice/livekit/webhooks"
	DefaultSessionsPath = "/voice/livekit/sessions"
)

// ServeOptions configures an `lkwebhook serve` started by StartServe.
type ServeOptions struct {
	// Args are extra flags after `serve --addr ADDR --data DIR`, e.g.
	// {"--finalize-grace", "1s"}.
	Args []string
	// Data is the engine data directory. Default: a new t.TempDir().
	Data string
	// Env are extra KEY=VALUE variables (e.g.
	// BELUGA_LIVEKIT_WEBHOOK_CORRELATION=metadata:session_id). The process
	// gets the test's environment without LIVEKIT_*, BELUGA_LIVEKIT_WEBHOOK_*
	// and LKWEBHOOK_ADMIN_TOKEN, then LIVEKIT_API_KEY/LIVEKIT_API_SECRET, then
	// these.
	Env []string
	// APIKey and APISecret are the signing key, given to serve as
	// LIVEKIT_API_KEY/LIVEKIT_API_SECRET: start the livekit-server with the
	// same pair (Serve.APIKey, Serve.APISecret). Defaults: DefaultAPIKey and
	// a random 48-char secret.
	APIKey    string
	APISecret string
	// AdminToken is passed as --admin-token and sent by the sessions and
	// metrics helpers. Empty: no token (loopback clients only).
	AdminToken string
	// StartTimeout bounds the wait for GET /healthz = 200. Default: 60 s.
	StartTimeout time.Duration
}

// Session mirrors the JSON of the receiver's sessions API and reports
// (livekitwebhook.Session, a public contract). It is declared here, not
// imported, so that the e2e suite checks the wire format.
type Session struct {
	SessionID                string             `json:"session_id"`
	RoomName                 string             `json:"room_name"`
	RoomSID                  string             `json:"room_sid"`
	BelugaSessionID          string             `json:"beluga_session_id,omitempty"`
	Unmapped                 bool               `json:"unmapped,omitempty"`
	StartedAt                time.Time          `json:"started_at"`
	EndedAt                  *time.Time         `json:"ended_at,omitempty"`
	DurationSeconds          float64            `json:"duration_seconds"`
	ParticipantSeconds       float64            `json:"participant_seconds"`
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	EndReason                string             `json:"end_reason"`
	Disposition              string             `json:"disposition,omitempty"`
	Participants             []Participant      `json:"participants"`
	EventsApplied            int                `json:"events_applied"`
}

// Participant mirrors one participant of a Session.
type Participant struct {
	SID              string     `json:"sid"`
	Identity         string     `json:"identity"`
	Kind             string     `json:"kind"`
	State            string     `json:"state"`
	JoinedAt         time.Time  `json:"joined_at"`
	LeftAt           *time.Time `json:"left_at,omitempty"`
	Seconds          float64    `json:"seconds"`
	DisconnectReason string     `json:"disconnect_reason,omitempty"`
}

// Participant returns the participant with the given identity, or nil.
func (s *Session) Participant(identity string) *Participant {
	for i := range s.Participants {
		if s.Participants[i].Identity == identity {
			return &s.Participants[i]
		}
	}
	return nil
}

// Serve is a running (or stopped, see Restart) `lkwebhook serve`.
type Serve struct {
	// URL is the base URL (http://127.0.0.1:PORT).
	URL string
	// WebhookURL is where LiveKit must post (URL + the webhook path).
	WebhookURL string
	// SessionsURL is the sessions API.
	SessionsURL string
	Port        int
	// DataDir is the engine data directory, kept across Restart.
	DataDir   string
	APIKey    string
	APISecret string
	// LogPath collects stdout and stderr of every run (appended on Restart).
	LogPath string

	t      testing.TB
	bin    string
	opts   ServeOptions
	client *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	runs    int
}

// StartServe builds lkwebhook (once per test binary; see EnvServeBinary),
// starts `lkwebhook serve` on a loopback port the kernel picks, waits until
// GET /healthz answers 200 and registers a cleanup that stops it (SIGTERM, then SIGKILL)
// and prints the tail of its log if the test failed. A race report in the
// log fails the test.
func StartServe(t testing.TB, opts ServeOptions) *Serve {
	t.Helper()
	bin := serveBinary(t)
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.APISecret == "" {
		opts.APISecret = randomSecret()
	}
	if opts.Data == "" {
		opts.Data = t.TempDir()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	s := &Serve{
		DataDir:   opts.Data,
		APIKey:    opts.APIKey,
		APISecret: opts.APISecret,
		LogPath:   filepath.Join(t.TempDir(), "lkwebhook.log"),
		t:         t,
		bin:       bin,
		opts:      opts,
		client:    &http.Client{Timeout: 10 * time.Second},
	}
	t.Cleanup(func() {
		s.Stop()
		if strings.Contains(s.log(), "WARNING: DATA RACE") {
			t.Errorf("lkwebhook serve reported a data race, see %s", s.LogPath)
			s.logTail(t, 200)
		} else if t.Failed() {
			s.logTail(t, 80)
		}
	})

	// Port 0: the kernel picks a free port and serve says which, so no
	// other process can take it in between (Restart keeps it).
	if err := s.start(); err != nil {
		s.logTail(t, 60)
		t.Fatalf("lkserver: could not start lkwebhook serve: %v", err)
	}
	return s
}

func (s *Serve) setPort(port int) {
	s.Port = port
	s.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	path := DefaultWebhookPath
	for i, a := range s.opts.Args {
		switch {
		case (a == "--path" || a == "-path") && i+1 < len(s.opts.Args):
			path = s.opts.Args[i+1]
		case strings.HasPrefix(a, "--path="), strings.HasPrefix(a, "-path="):
			path = a[strings.Index(a, "=")+1:]
		}
	}
	s.WebhookURL = s.URL + path
	s.SessionsURL = s.URL + DefaultSessionsPath
}

// start runs the process and waits for /healthz.
func (s *Serve) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		select {
		case <-s.exited:
		default:
			s.mu.Unlock()
			return errors.New("lkwebhook serve is already running")
		}
	}
	s.runs++
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	runStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		_ = logf.Close()
		s.mu.Unlock()
		return err
	}
	listen := "127.0.0.1:" + strconv.Itoa(s.Port) // port 0 on the first run
	fmt.Fprintf(logf, "=== run %d: lkwebhook serve on %s (data %s)\n", s.runs, listen, s.DataDir)
	args := []string{"serve", "--addr", listen, "--data", s.DataDir}
	if s.opts.AdminToken != "" {
		args = append(args, "--admin-token", s.opts.AdminToken)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(serveEnv(), "LIVEKIT_API_KEY="+s.APIKey, "LIVEKIT_API_SECRET="+s.APISecret)
	cmd.Env = append(cmd.Env, s.opts.Env...)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	s.mu.Unlock()

	if s.Port == 0 {
		if err := s.waitListening(exited, runStart); err != nil {
			s.Kill()
			return err
		}
	}
	if err := s.waitHealthy(exited); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// listeningOn precedes the address in the line serve prints on stdout once
// it listens: "lkwebhook: listening on http://ADDR/path".
const listeningOn = "lkwebhook: listening on http://"

// waitListening reads the address serve bound from its output since offset
// runStart of the log, and sets the port and URLs.
func (s *Serve) waitListening(exited chan struct{}, runStart int64) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	for {
		out := s.log()
		if int64(len(out)) >= runStart {
			out = out[runStart:]
		}
		if i := strings.Index(out, listeningOn); i >= 0 {
			hostPort, _, _ := strings.Cut(out[i+len(listeningOn):], "/")
			_, p, err := net.SplitHostPort(hostPort)
			port, perr := strconv.Atoi(p)
			if err != nil || perr != nil {
				return fmt.Errorf("lkwebhook serve printed an unreadable address %q", hostPort)
			}
			s.setPort(port)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("lkwebhook serve exited before listening: %v", s.ExitErr())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lkwebhook serve not listening within %v", s.opts.StartTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Serve) waitHealthy(exited chan struct{}) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	client := &http.Client{Timeout: time.Second}
	var last string
	for {
		select {
		case <-exited:
			return fmt.Errorf("lkwebhook serve exited before becoming healthy: %v", s.ExitErr())
		default:
		}
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s/healthz not 200 within %v (last: %s)", s.URL, s.opts.StartTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether the process is running.
func (s *Serve) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// ExitErr is the result of the last run's Wait (nil while running or after
// a clean exit).
func (s *Serve) ExitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitErr
}

// Kill ends the process with SIGKILL (a crash: no drain, no clean engine
// shutdown) and waits for it. No-op when it is not running.
func (s *Serve) Kill() {
	s.signal(syscall.SIGKILL, 0)
}

// Stop ends the process with SIGTERM (graceful: drain, then stop the
// engine) and waits for it; after 45 s it is killed and the test fails.
// No-op when it is not running.
func (s *Serve) Stop() {
	if s.signal(syscall.SIGTERM, 45*time.Second) {
		s.t.Errorf("lkserver: lkwebhook serve did not stop within 45 s of SIGTERM; killed it")
	}
}

// signal sends sig and waits; after grace (if > 0) it sends SIGKILL and
// reports true.
func (s *Serve) signal(sig syscall.Signal, grace time.Duration) (killed bool) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return false
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			killed = true
		}
	}
	<-exited
	return killed
}

// Restart stops the process if it is running (SIGTERM) and starts it again
// on the same port and data directory, failing the test if it does not
// become healthy.
func (s *Serve) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.logTail(s.t, 60)
		s.t.Fatalf("lkserver: restart lkwebhook serve: %v", err)
	}
}

// Healthy reports whether GET /healthz answers 200 now.
func (s *Serve) Healthy() bool {
	resp, err := s.client.Get(s.URL + "/healthz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// get performs an admin GET and returns status and body.
func (s *Serve) get(path string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if s.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.AdminToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// HeaderOutcome is the header of a 2xx answer that says what intake did
// (spelled out: this package tests the wire format, not the Go API).
const HeaderOutcome = "Lkwh-Outcome"

// Post signs ev as livekit-server does (HS256 JWT by the API key, sha256
// claim of the raw body, no Bearer prefix), posts it to WebhookURL and
// returns the HTTP status and the outcome header of the answer ("accepted",
// "duplicate", "ignored"; "" for refusals). Errors fail the test; from other
// goroutines use TryPost.
func (s *Serve) Post(t testing.TB, ev *livekit.WebhookEvent) (code int, outcome string) {
	t.Helper()
	code, outcome, err := s.TryPost(ev)
	if err != nil {
		t.Fatalf("lkserver: %v", err)
	}
	return code, outcome
}

// TryPost is Post without the test.
func (s *Serve) TryPost(ev *livekit.WebhookEvent) (code int, outcome string, err error) {
	body, err := protojson.Marshal(ev)
	if err != nil {
		return 0, "", fmt.Errorf("marshal event: %w", err)
	}
	sum := sha256.Sum256(body)
	token, err := auth.NewAccessToken(s.APIKey, s.APISecret).
		SetValidFor(5 * time.Minute).
		SetSha256(base64.StdEncoding.EncodeToString(sum[:])).
		ToJWT()
	if err != nil {
		return 0, "", fmt.Errorf("sign event: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, s.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/webhook+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", ev.GetEvent(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get(HeaderOutcome), nil
}

// SessionsList is the answer of GET /voice/livekit/sessions.
type SessionsList struct {
	Active []Session `json:"active"`
	Ended  []Session `json:"ended"`
}

// TrySessions reads the sessions API (up to 1000 ended sessions).
func (s *Serve) TrySessions() (SessionsList, error) {
	var out SessionsList
	code, body, err := s.get(DefaultSessionsPath + "?limit=1000")
	if err != nil {
		return out, err
	}
	if code != http.StatusOK {
		return out, fmt.Errorf("GET sessions: %d %s", code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("GET sessions: %w: %s", err, body)
	}
	return out, nil
}

// Sessions returns the active and ended sessions; it fails the test on error.
func (s *Serve) Sessions(t testing.TB) (active, ended []Session) {
	t.Helper()
	l, err := s.TrySessions()
	if err != nil {
		t.Fatalf("lkserver: %v", err)
	}
	return l.Active, l.Ended
}

// Session returns the session with the given id (GET sessions/{id}): false
// on 404; other errors fail the test.
func (s *Serve) Session(t testing.TB, id string) (Session, bool) {
	t.Helper()
	sess, found, err := s.TrySession(id)
	if err != nil {
		t.Fatalf("lkserver: %v", err)
	}
	return sess, found
}

// TrySession is Session without the test.
func (s *Serve) TrySession(id string) (Session, bool, error) {
	var out Session
	code, body, err := s.get(DefaultSessionsPath + "/" + url.PathEscape(id))
	switch {
	case err != nil:
		return out, false, err
	case code == http.StatusNotFound:
		return out, false, nil
	case code != http.StatusOK:
		return out, false, fmt.Errorf("GET session %s: %d %s", id, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, false, fmt.Errorf("GET session %s: %w: %s", id, err, body)
	}
	return out, true, nil
}

// SessionJSON returns the raw JSON object of GET sessions/{id}, to check
// the wire format itself.
func (s *Serve) SessionJSON(t testing.TB, id string) map[string]any {
	t.Helper()
	code, body, err := s.get(DefaultSessionsPath + "/" + url.PathEscape(id))
	if err != nil || code != http.StatusOK {
		t.Fatalf("lkserver: GET session %s: %d %v %s", id, code, err, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("lkserver: GET session %s: %v", id, err)
	}
	return m
}

// WaitEnded polls the sessions API until a session matching match is in
// the ended list, and returns it; it fails the test after timeout.
func (s *Serve) WaitEnded(t testing.TB, timeout time.Duration, what string, match func(Session) bool) Session {
	t.Helper()
	return s.wait(t, timeout, what+" (ended)", func(l SessionsList) []Session { return l.Ended }, match)
}

// WaitActive polls the sessions API until a session matching match is in
// the active list, and returns it; it fails the test after timeout.
func (s *Serve) WaitActive(t testing.TB, timeout time.Duration, what string, match func(Session) bool) Session {
	t.Helper()
	return s.wait(t, timeout, what+" (active)", func(l SessionsList) []Session { return l.Active }, match)
}

func (s *Serve) wait(t testing.TB, timeout time.Duration, what string, list func(SessionsList) []Session, match func(Session) bool) Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got Session
	var last SessionsList
	var lastErr error
	err := WaitFor(ctx, func() bool {
		l, err := s.TrySessions()
		if err != nil {
			lastErr = err
			return false
		}
		last = l
		for _, x := range list(l) {
			if match(x) {
				got = x
				return true
			}
		}
		return false
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", "  ")
		t.Fatalf("lkserver: no session %s within %v (last error: %v); last sessions:\n%s", what, timeout, lastErr, b)
	}
	return got
}

// BySessionID matches a session by its session id.
func BySessionID(id string) func(Session) bool {
	return func(x Session) bool { return x.SessionID == id }
}

// ByRoomSID matches a session by its room sid.
func ByRoomSID(sid string) func(Session) bool {
	return func(x Session) bool { return x.RoomSID == sid }
}

// Sample is one sample of the Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics reads GET /metrics and parses it.
func (s *Serve) Metrics(t testing.TB) []Sample {
	t.Helper()
	code, body, err := s.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("lkserver: GET /metrics: %d %v %s", code, err, body)
	}
	samples, err := ParseMetrics(body)
	if err != nil {
		t.Fatalf("lkserver: /metrics: %v", err)
	}
	return samples
}

// Metric sums the samples named name whose labels include every pair of
// labels (0 when none).
func Metric(samples []Sample, name string, labels map[string]string) float64 {
	var sum float64
next:
	for _, x := range samples {
		if x.Name != name {
			continue
		}
		for k, v := range labels {
			if x.Labels[k] != v {
				continue next
			}
		}
		sum += x.Value
	}
	return sum
}

// ParseMetrics parses the Prometheus text format (0.0.4): comment lines
// are skipped, samples are `name{k="v",...} value [timestamp]`.
func ParseMetrics(text []byte) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		x := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i < 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		} else {
			x.Name, rest = rest[:i], rest[i:]
		}
		if strings.HasPrefix(rest, "{") {
			var err error
			if rest, err = parseLabels(rest[1:], x.Labels); err != nil {
				return nil, fmt.Errorf("line %d: %v: %q", n, err, line)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %v", n, err)
		}
		x.Value = v
		out = append(out, x)
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",...}` into m and returns what follows the '}'.
func parseLabels(s string, m map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.Index(s, "=\"")
		if eq <= 0 {
			return "", errors.New("bad label")
		}
		key := s[:eq]
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", errors.New("unterminated label value")
		}
		m[key] = val.String()
		s = s[i+1:]
	}
}

// Log returns everything the process wrote so far (all runs).
func (s *Serve) Log() string { return s.log() }

func (s *Serve) log() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// LogTail returns the last n lines of the log.
func (s *Serve) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Serve) logTail(t testing.TB, n int) {
	t.Helper()
	t.Logf("lkserver: last %d lines of %s:\n%s", n, s.LogPath, s.LogTail(n))
}

// serveEnv is the test's environment without the variables that would
// change serve's configuration behind the test's back.
func serveEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIVEKIT_") || strings.HasPrefix(kv, "BELUGA_LIVEKIT_WEBHOOK_") ||
			strings.HasPrefix(kv, "LKWEBHOOK_ADMIN_TOKEN=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// The lkwebhook binary, built once per test binary into buildDir. Call
// CleanupServeBuild from TestMain to remove it.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// ServeBinary returns the lkwebhook binary StartServe runs, building it on
// first use; a build failure fails the test.
func ServeBinary(t testing.TB) string {
	t.Helper()
	return serveBinary(t)
}

func serveBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(EnvServeBinary); p != "" {
			if _, err := os.Stat(p); err != nil {
				buildErr = fmt.Errorf("%s=%s: %w", EnvServeBinary, p, err)
			}
			buildBin = p
			return
		}
		buildBin, buildErr = build()
	})
	if buildErr != nil {
		t.Fatalf("lkserver: lkwebhook binary: %v", buildErr)
	}
	return buildBin
}

func build() (string, error) {
	root, err := mainModuleRoot()
	if err != nil {
		return "", err
	}
	buildDir, err = os.MkdirTemp("", "lkwebhook-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(buildDir, "lkwebhook")
	args := []string{"build", "-o", bin}
	race := raceEnabled
	switch os.Getenv(EnvServeRace) {
	case "0":
		race = false
	case "1":
		race = true
	}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/lkwebhook")
	// The test binaries of `go test ./...` run in parallel and would all
	// compile the same packages; one at a time, the later ones hit the
	// build cache.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "lkwebhook-e2e-build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
	}
	return bin, nil
}

// CleanupServeBuild removes the lkwebhook binary built by StartServe. Call
// it from TestMain after m.Run.
func CleanupServeBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// mainModuleRoot finds the directory of the main module's go.mod, walking up
// from the working directory (a package directory of the e2e module).
func mainModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == mainModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", mainModule)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// lockFile takes an exclusive flock on path (created if needed) and returns
// its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
