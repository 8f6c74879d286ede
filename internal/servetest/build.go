package servetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModulePath is the module whose binaries are built.
const ModulePath = "github.com/beluga-ai-contrib/beluga-livekit"

// Build says how the binaries the tests run are made. The zero value builds
// ./cmd/lkwebhook without the race detector.
type Build struct {
	// Race builds with -race (serve is then several times slower).
	Race bool
	// Binary is a prebuilt lkwebhook to run instead of building one.
	Binary string
}

var (
	config Build

	buildMu  sync.Mutex
	buildDir string
	builds   = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	bin  string
	err  error
}

// Main is the TestMain of a package that runs these binaries: it sets how
// they are made, runs the tests, removes what it built and exits.
func Main(m *testing.M, b Build) {
	config = b
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary returns the lkwebhook binary, built on first use (see Build); a
// failure fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p := config.Binary; p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("servetest: prebuilt lkwebhook: %v", err)
		}
		return p
	}
	return BuildMain(t, "./cmd/lkwebhook")
}

// BuildMain builds a main package of this module (a path from the module
// root, such as "./faulttest/hookserve") once per test binary, with -race
// when Build.Race, and returns the binary; a failure fails the test.
func BuildMain(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	r := builds[pkg]
	if r == nil {
		r = &buildResult{}
		builds[pkg] = r
	}
	buildMu.Unlock()
	r.once.Do(func() { r.bin, r.err = build(pkg, config.Race) })
	if r.err != nil {
		t.Fatalf("servetest: build %s: %v", pkg, r.err)
	}
	return r.bin
}

func build(pkg string, race bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	buildMu.Lock()
	if buildDir == "" {
		buildDir, err = os.MkdirTemp("", "lkwebhook-servetest-")
	}
	dir := buildDir
	buildMu.Unlock()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	// Test binaries of `go test ./...` run in parallel and would compile
	// the same packages together; one at a time, the later ones hit the
	// build cache.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "lkwebhook-servetest-build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, GoTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
	}
	fmt.Fprintf(os.Stderr, "servetest: built %s (race=%v) in %s\n", pkg, race, time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// GoTool is the go command that runs the tests.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// moduleRoot is the directory of this module's go.mod, found above the
// working directory (a package directory of this module or of e2e's).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", ModulePath)
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
