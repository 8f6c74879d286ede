package faulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

const natsServerModule = "github.com/nats-io/nats-server/v2@v2.15.2"

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// natsServerBin installs nats-server into $HOME/.cache/lkwebhook-bin once
// (go install, idempotent) and returns its path. It skips the test when the
// install fails, unless LKWEBHOOK_FAULT_REQUIRED=1.
func natsServerBin(t *testing.T) string {
	t.Helper()
	natsOnce.Do(func() {
		home, err := os.UserHomeDir()
		if err != nil {
			natsErr = err
			return
		}
		dir := filepath.Join(home, ".cache", "lkwebhook-bin")
		p := filepath.Join(dir, "nats-server")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			natsBin = p
			return
		}
		if natsErr = os.MkdirAll(dir, 0o755); natsErr != nil {
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, servetest.GoTool(), "install", natsServerModule)
		cmd.Dir = os.TempDir() // outside any module: pkg@version ignores go.mod
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=-buildvcs=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			natsErr = fmt.Errorf("GOBIN=%s go install %s: %v\n%s", dir, natsServerModule, err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "faulttest: installed nats-server into %s in %s\n", dir, time.Since(start).Round(time.Millisecond))
		natsBin = p
	})
	if natsErr != nil {
		if os.Getenv("LKWEBHOOK_FAULT_REQUIRED") == "1" {
			t.Fatalf("nats-server unavailable: %v", natsErr)
		}
		t.Skipf("nats-server unavailable (set LKWEBHOOK_FAULT_REQUIRED=1 to fail instead): %v", natsErr)
	}
	return natsBin
}

// natsProc is an external nats-server with JetStream on a loopback port.
type natsProc struct {
	*servetest.Proc
	bin      string
	url      string
	portsDir string // where the server writes the ports it bound
}

// errPortTaken: a port a process was told to bind was taken meanwhile.
var errPortTaken = errors.New("port taken before the server bound it")

// newNATSProc prepares a nats-server whose client port the kernel picks
// (-p -1); waitPorts reads it back.
func newNATSProc(t *testing.T, name, bin string, extra ...string) *natsProc {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", dir}, extra...)
	return &natsProc{Proc: servetest.NewProc(t, name, bin, args, servetest.Env()), bin: bin, portsDir: dir}
}

func startNATS(t *testing.T) *natsProc {
	t.Helper()
	n := newNATSProc(t, "nats-server", natsServerBin(t), "-js", "-sd", t.TempDir())
	n.Start()
	if err := n.waitPorts(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	n.waitJetStream(t, 20*time.Second)
	return n
}

// waitPorts waits until the server has bound all its listeners and wrote
// them to its ports file, sets url and pins the client port for restarts.
// It returns errPortTaken when the server exited because a port it was told
// to bind (a route port) was in use.
func (n *natsProc) waitPorts(timeout time.Duration) error {
	file := filepath.Join(n.portsDir, fmt.Sprintf("%s_%d.ports", filepath.Base(n.bin), n.PID()))
	var ports struct {
		Nats []string `json:"nats"`
	}
	ok := eventually(context.Background(), timeout, 20*time.Millisecond, func() bool {
		b, err := os.ReadFile(file)
		// The file is written in place: a partial one is read again.
		return err == nil && json.Unmarshal(b, &ports) == nil && len(ports.Nats) > 0 || !n.Running()
	})
	if !n.Running() {
		if line := servetest.BindFailure(n.Output()); line != "" {
			return fmt.Errorf("%s: %w: %s", n.Name(), errPortTaken, line)
		}
		return fmt.Errorf("%s exited while starting", n.Name())
	}
	if !ok {
		return fmt.Errorf("%s wrote no ports file within %s", n.Name(), timeout)
	}
	n.url = ports.Nats[0]
	_, port, _ := strings.Cut(strings.TrimPrefix(n.url, "nats://"), ":")
	n.SetArg("-p", port)
	return nil
}

// waitJetStream waits until the server answers JetStream API requests.
func (n *natsProc) waitJetStream(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	ok := eventually(context.Background(), timeout, 50*time.Millisecond, func() bool {
		if !n.Running() {
			last = fmt.Errorf("nats-server exited")
			return false
		}
		nc, err := nats.Connect(n.url, nats.Timeout(time.Second), nats.NoReconnect())
		if err != nil {
			last = err
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			last = err
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, last = js.AccountInfo(ctx)
		return last == nil
	})
	if !ok {
		t.Fatalf("nats-server JetStream not ready after %s: %v", timeout, last)
	}
	return time.Since(start)
}

func TestEngineOutage(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := strings.ToLower(strings.ReplaceAll(sig.String(), " ", "_"))
		t.Run(name, func(t *testing.T) { runEngineOutage(t, sig) })
	}
}

// probeEvent is a signed event of a room outside the burst.
func probeEvent(t *testing.T, tag string) []byte {
	t.Helper()
	now := time.Now().Unix()
	ev := &livekit.WebhookEvent{Id: lkID("EV_"), Event: "room_started", CreatedAt: now,
		Room: &livekit.Room{Sid: "RM_probe" + tag + lkID("")[:4], Name: "probe-" + tag, CreationTime: now}}
	b, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runEngineOutage(t *testing.T, sig syscall.Signal) {
	start := time.Now()
	n := startNATS(t)
	s := startServe(t, t.TempDir(), "--nats-url", n.url)
	t.Logf("nats-server and serve ready in %s", time.Since(start).Round(time.Millisecond))

	tag := "e" + strconv.Itoa(int(sig))
	rooms := planRooms(tag, 40)
	b := newBurst(t, s.WebhookURL(), rooms)
	burstStart := time.Now()
	go b.queue()
	select {
	case <-b.after(b.total * 35 / 100):
	case <-time.After(30 * time.Second):
		t.Fatalf("notifier reported only %d of %d events in 30s", b.done.Load(), b.total)
	}

	// Outage.
	n.Signal(sig)
	down := time.Now()
	doneAtDown := b.done.Load()
	t.Logf("nats-server stopped with %v at %d/%d reported events (%s into the burst)", sig, doneAtDown, b.total, time.Since(burstStart).Round(time.Millisecond))
	unhealthy := s.WaitHealth(t, http.StatusServiceUnavailable, 10*time.Second)
	t.Logf("/healthz 503 %s after the stop", unhealthy.Round(time.Millisecond))

	// A hand-signed webhook while the engine is down: 503 + Retry-After, fast.
	reqStart := time.Now()
	code, hdr, body, err := s.PostRaw(probeEvent(t, tag))
	took := time.Since(reqStart)
	switch {
	case err != nil:
		t.Errorf("webhook while NATS is down: %v", err)
	case code != http.StatusServiceUnavailable:
		t.Errorf("webhook while NATS is down: %d %s, want 503", code, body)
	default:
		ra, convErr := strconv.Atoi(hdr.Get("Retry-After"))
		if convErr != nil || ra < 1 {
			t.Errorf("503 without a valid Retry-After (%q)", hdr.Get("Retry-After"))
		}
		var rb struct{ Reason string }
		_ = json.Unmarshal(body, &rb)
		if rb.Reason != "engine_unavailable" {
			t.Errorf("503 reason %q, want engine_unavailable", rb.Reason)
		}
		t.Logf("webhook while down: 503 Retry-After %s reason %s in %s", hdr.Get("Retry-After"), rb.Reason, took.Round(time.Millisecond))
	}
	if took > 6*time.Second {
		t.Errorf("503 took %s: intake should refuse at once when the engine is down", took)
	}

	// Keep it down a little while the notifier retries, then restart NATS
	// on the same store directory and port.
	time.Sleep(max(0, 3*time.Second-time.Since(down)))
	if got := s.Health(); got != http.StatusServiceUnavailable {
		t.Errorf("/healthz %d while NATS is still down, want 503", got)
	}
	n.Start()
	jsReady := n.waitJetStream(t, 20*time.Second)
	recovered := s.WaitHealthy(t, 20*time.Second)
	t.Logf("outage %s; JetStream back %s after restart, serve healthy %s after that",
		time.Since(down).Round(time.Millisecond)-recovered-jsReady, jsReady.Round(time.Millisecond), recovered.Round(time.Millisecond))

	code, _, body, err = s.PostRaw(probeEvent(t, tag+"b"))
	if err != nil || code != http.StatusOK {
		t.Errorf("webhook after recovery: %d %s %v, want 200", code, body, err)
	}

	b.waitAll(45 * time.Second)
	sent, failed, dropped, detail := b.summary()
	t.Logf("notifier: %d sent, %d failed, %d dropped in %s", sent, failed, dropped, time.Since(burstStart).Round(time.Millisecond))
	if failed+dropped > 0 {
		t.Errorf("the notifier lost events:\n%s", detail)
	}
	// The notifier really met the outage: intake refused with 503 and the
	// retries landed (every event above was reported sent). A graceful stop
	// (SIGTERM) can take long enough for a fast intake to take the whole
	// burst first; then only the probe met it.
	want := 2.0
	if doneAtDown >= int64(b.total) {
		want = 1
	}
	m, err := s.TryMetrics()
	if n := m.Sum("livekitwebhook_refusals_total", map[string]string{"reason": "engine_unavailable"}); err != nil || n < want {
		t.Errorf("engine_unavailable refusals: %v (err %v), want at least %v (the probe and, if the burst was not over, notifier attempts)", n, err, want)
	} else {
		t.Logf("intake refused %v requests with 503 engine_unavailable during the outage", n)
	}
	list, waited := waitEnded(t, s, b, endWait())
	t.Logf("waited %s after the last delivery for the reports", waited.Round(time.Millisecond))
	bugs := newBugLog(t)
	checkReports(t, b, list, waited, bugs)
	if !s.Running() {
		t.Fatal("serve exited")
	}
	bugs.finish()
}
