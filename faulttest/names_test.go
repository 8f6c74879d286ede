package faulttest

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// TestHostileNames: names of any length LiveKit can send once made a NATS
// subject or key past the control line, NATS closed the connection, and
// serve stayed unhealthy, also after a restart (issue 12). Against the
// real binary: each hostile session is reported, /healthz stays 200, normal
// webhooks go through, also after a kill -9 and restart on the same data.
func TestHostileNames(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"correlation": "metadata:call"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, "--config", cfg)

	send := func(sid, room, metadata string) {
		t.Helper()
		t0 := time.Now().Add(-time.Minute).Unix()
		for i, name := range []string{"room_started", "room_finished"} {
			ev := &livekit.WebhookEvent{Id: lkID("EV_"), Event: name, CreatedAt: t0 + int64(30*i),
				Room: &livekit.Room{Sid: sid, Name: room, CreationTime: t0, Metadata: metadata}}
			body, err := protojson.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			code, _, resp, err := s.PostRaw(body)
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s of %s (%d-byte name): %d %s %v", name, sid, len(room), code, resp, err)
			}
		}
	}
	waitReported := func(ids ...string) {
		t.Helper()
		ok := eventually(context.Background(), 30*time.Second, 100*time.Millisecond, func() bool {
			got, err := s.TrySessions()
			if err != nil {
				return false
			}
			seen := map[string]bool{}
			for _, r := range got.Ended {
				seen[r.SessionID] = true
			}
			for _, id := range ids {
				if !seen[id] {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("sessions not reported within 30s (healthz %d)", s.Health())
		}
	}
	healthy := func(when string) {
		t.Helper()
		if h := s.Health(); h != http.StatusOK || !s.Running() {
			t.Fatalf("%s: healthz %d, running %v", when, h, s.Running())
		}
	}

	long := strings.Repeat("R", 5000)
	dotted := strings.Repeat("a.", 1050)
	meta := strings.Repeat("S", 5000)
	send("RM_long", long, "")
	send("RM_dotted", dotted, "")
	send("RM_meta", "meta-room", `{"call":"`+meta+`"}`)
	if got := getStatus(t, s, servetest.SessionsPath+"/"+strings.Repeat("S", 4100)); got != http.StatusNotFound {
		t.Fatalf("unsigned GET of a 4100-byte session id: %d, want 404", got)
	}
	waitReported(long, dotted, meta)
	healthy("after the hostile names")
	send("RM_normal1", "normal-1", "")
	waitReported("normal-1")

	// A hostile session killed in flight is handed on from the journal at
	// the next start.
	long2 := strings.Repeat("Q", 5000)
	send("RM_long2", long2, "")
	s.Kill()
	s.Start()
	s.WaitHealthy(t, 45*time.Second)
	send("RM_normal2", "normal-2", "")
	waitReported(long, dotted, meta, long2, "normal-2")
	healthy("after the restart")
	if got := getStatus(t, s, servetest.SessionsPath+"/"+url.PathEscape(meta)); got != http.StatusOK {
		t.Fatalf("GET the 5000-byte metadata session after the restart: %d", got)
	}
}

func getStatus(t *testing.T, s *servetest.Serve, path string) int {
	t.Helper()
	code, _, err := s.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	return code
}
