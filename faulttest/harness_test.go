package faulttest

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/testport"
)

// Signing key of every test: the secret is long enough for livekit-server.
const (
	apiKey    = "faultkey"
	apiSecret = "faulttest-secret-0123456789abcdefghijklmnopqrstuvwxyz"
)

func TestMain(m *testing.M) {
	servetest.Main(m, servetest.Build{Race: raceBuild(), Binary: os.Getenv("LKWEBHOOK_FAULT_BIN")})
}

// raceBuild: LKWEBHOOK_FAULT_RACE=1 builds serve with the race detector.
func raceBuild() bool { return os.Getenv("LKWEBHOOK_FAULT_RACE") == "1" }

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

// serveOptions are the options of a serve (named name, on dataDir, "" for
// a new one) with the test key, a short finalize grace, the log level and
// extra flags; a stop that takes over 15 s fails the test, and the end of
// the test kills it (the state a fault test leaves can hold a stop up).
func serveOptions(name, dataDir, logLevel string, extra ...string) servetest.Options {
	return servetest.Options{
		Name: name, Data: dataDir, APIKey: apiKey, APISecret: apiSecret,
		Args:         append([]string{"--finalize-grace", "1s", "--log-level", cmp.Or(logLevel, "info")}, extra...),
		StartTimeout: 45 * time.Second,
		StopTimeout:  15 * time.Second,
		KillAtEnd:    true,
	}
}

// startServe runs `lkwebhook serve` with the given extra flags on a port
// the kernel picks, and waits until /healthz answers 200.
func startServe(t *testing.T, dataDir string, extra ...string) *servetest.Serve {
	t.Helper()
	return servetest.Start(t, serveOptions("serve", dataDir, "info", extra...))
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
