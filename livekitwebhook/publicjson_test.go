package livekitwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/public-json.golden")

const publicJSONGolden = "testdata/public-json.golden"

// TestPublicJSONUnchanged replays the requests captured from a real
// livekit-server and compares every JSON a user sees with what was recorded
// before Session and Report became types of this package: the sessions API
// (a live view, the list, an ended view), the reports published on
// lkwh.reports.<session>, and the Session and Report values hooks get, as
// json.Marshal renders them. The sessions API and the reports subject are a
// contract: a change here must be deliberate (go test -run
// TestPublicJSONUnchanged -update).
func TestPublicJSONUnchanged(t *testing.T) {
	fx := loadFixtures(t)
	keys, err := os.ReadFile(filepath.Join(fixtureDir, "keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	cfg := testConfig(t)
	cfg.APIKey, cfg.APISecret, cfg.Keys = "", "", string(keys)

	var mu sync.Mutex
	got := map[string][]byte{}
	put := func(name string, b []byte) {
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Errorf("%s: not JSON: %v: %s", name, err, b)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got[name] = c.Bytes()
	}
	marshal := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		put(name, b)
	}
	hooks := Hooks{
		OnEvent: func(_ context.Context, ev *livekit.WebhookEvent, s Session) error {
			marshal("hook "+ev.Id, s)
			return nil
		},
		OnSessionEnded: func(_ context.Context, r Report) error {
			marshal("hook report "+r.SessionID, r)
			return nil
		},
	}
	tr := startReceiver(t, cfg, WithHooks(hooks), withClock(func() time.Time { return time.Unix(now.Load(), 0) }))

	reports := make(chan testMsg, 8)
	testSubscribe(t, tr.engine(), "lkwh.reports.>", func(m testMsg) {
		select {
		case reports <- m:
		default: // as a full channel subscription drops
		}
	})

	post := func(f fixture) {
		t.Helper()
		now.Store(f.ReceivedAtUnix)
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, f.request(tr.url))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", f.Name, w.Code, w.Body)
		}
	}
	get := func(name, path string) {
		t.Helper()
		res, err := http.Get(tr.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v %s", path, res.StatusCode, err, b)
		}
		put(name, b)
	}
	applied := func(id string, n int) func() bool {
		return func() bool {
			s, ok, err := tr.SessionByID(context.Background(), id)
			return err == nil && ok && s.EventsApplied == n
		}
	}

	// A live call: started, two participants joined, a track published.
	for _, f := range fx[:4] {
		post(f)
	}
	eventually(t, 15*time.Second, "four events applied", applied("voice-sess-42", 4))
	get("GET sessions/voice-sess-42 live", cfg.SessionsPath+"/voice-sess-42")
	get("GET sessions live", cfg.SessionsPath)

	// The rest: the call ends, an idle room starts and finishes.
	for _, f := range fx[4:] {
		post(f)
	}
	for range 2 {
		select {
		case m := <-reports:
			put("published "+m.Subject, m.Data)
		case <-time.After(30 * time.Second):
			t.Fatal("two reports not published within 30s")
		}
	}
	eventually(t, 15*time.Second, "hooks called", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 4+len(fx)+2
	})
	get("GET sessions/voice-sess-42 ended", cfg.SessionsPath+"/voice-sess-42")
	get("GET sessions ended", cfg.SessionsPath)

	var out bytes.Buffer
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&out, "%s\t%s\n", name, got[name])
	}
	if *updateGolden {
		if err := os.WriteFile(publicJSONGolden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(publicJSONGolden)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := strings.Split(strings.TrimSpace(string(want)), "\n")
	gotLines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i := range max(len(wantLines), len(gotLines)) {
		var w, g string
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if w != g {
			t.Errorf("line %d differs\nwant %s\n got %s", i+1, w, g)
		}
	}
}
