package livekitwebhook

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// storageLines returns the level and data_dir of every log record naming
// a data_dir.
func storageLines(t *testing.T, logs string) map[string]string {
	t.Helper()
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec struct {
			Level   string `json:"level"`
			DataDir string `json:"data_dir"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec.DataDir != "" {
			got[rec.Level] = rec.DataDir
		}
	}
	return got
}

// sameDir compares directories through symlinks (a temp dir may be one).
func sameDir(t *testing.T, a, b string) bool {
	t.Helper()
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// TestDataDirUnsetIsAnnounced: an app that enables the plugin from the
// environment without data_dir or nats_url (AutoWire) gets a WARN line at
// Start naming the absolute directory the embedded engine writes, and
// that is where the files are.
func TestDataDirUnsetIsAnnounced(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_ENABLED", "true")
	t.Setenv("LIVEKIT_API_KEY", testKey)
	t.Setenv("LIVEKIT_API_SECRET", testSecret)
	t.Setenv("LIVEKIT_KEYS", "")
	cfg, err := LoadConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r, err := AutoWire(context.Background(), &recordingAdapter{}, "livekit", cfg,
		WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil || r == nil {
		t.Fatalf("AutoWire: %v, %v", r, err)
	}
	defer func() { _ = r.Stop(context.Background()) }()

	want := filepath.Join(wd, "data")
	got := storageLines(t, logs.String())
	if !filepath.IsAbs(got["WARN"]) || !sameDir(t, got["WARN"], want) {
		t.Fatalf("storage log lines %v; want a WARN naming %s\n%s", got, want, logs.String())
	}
	if _, err := os.Stat(filepath.Join(want, "jetstream")); err != nil {
		t.Fatalf("the engine does not store in the directory announced: %v", err)
	}
}

// TestDataDirSetIsNamed: a configured data_dir, relative or not, is named
// as an absolute path at INFO, with no warning.
func TestDataDirSetIsNamed(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	for _, tc := range []struct{ name, dir, want string }{
		{"absolute", filepath.Join(wd, "abs"), filepath.Join(wd, "abs")},
		{"relative", "rel/store", filepath.Join(wd, "rel", "store")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DataDir = tc.dir
			var logs syncBuffer
			r, err := New(cfg, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Stop(context.Background()) }()
			got := storageLines(t, logs.String())
			if _, warned := got["WARN"]; warned || !sameDir(t, got["INFO"], tc.want) || !filepath.IsAbs(got["INFO"]) {
				t.Fatalf("storage log lines %v; want only an INFO naming %s", got, tc.want)
			}
		})
	}
}
