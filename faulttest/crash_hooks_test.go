package faulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// TestCrashMidProcessingHooks kills the receiver with SIGKILL while its
// hooks are working through a backlog, restarts it on the same data, and
// counts: every accepted event is applied to its session exactly once and
// reaches the hook; a hook is called twice only for an event whose call was
// cut off by the kill (at most one per worker).
func TestCrashMidProcessingHooks(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls.log")
	// hookserve: the receiver with a slow hook that appends each call's
	// event id to a file.
	s := servetest.Start(t, servetest.Options{
		Command: []string{servetest.BuildMain(t, "./faulttest/hookserve")}, Name: "hookserve",
		Data: filepath.Join(dir, "data"), Args: []string{"--calls", calls, "--hook-delay", "40ms"},
		APIKey: apiKey, APISecret: apiSecret, StartTimeout: 45 * time.Second, StopTimeout: 15 * time.Second, KillAtEnd: true,
	})

	const rooms = 30
	t0 := time.Now().Unix()
	var ids []string
	for r := 0; r < rooms; r++ {
		room := &livekit.Room{Sid: fmt.Sprintf("RM_hook%03d", r), Name: fmt.Sprintf("hook-%d", r), CreationTime: t0}
		pi := &livekit.ParticipantInfo{Sid: fmt.Sprintf("PA_hook%03d", r), Identity: "caller", JoinedAt: t0 + 1}
		for i, name := range []string{"room_started", "participant_joined", "participant_left"} {
			ev := &livekit.WebhookEvent{Id: fmt.Sprintf("EV_h%03d_%d", r, i), Event: name, CreatedAt: t0 + int64(i), Room: room}
			if i > 0 {
				ev.Participant = pi
			}
			body, _ := protojson.Marshal(ev)
			code, _, b, err := s.PostRaw(body)
			if err != nil || code != 200 {
				t.Fatalf("post %s: %d %s %v", ev.Id, code, b, err)
			}
			ids = append(ids, ev.Id)
		}
	}
	// 90 hook calls of 40 ms over 8 workers take about half a second: kill
	// in the middle of it.
	time.Sleep(150 * time.Millisecond)
	before := countLines(t, calls)
	s.Kill()
	if before == 0 || before >= len(ids) {
		t.Logf("kill landed at %d/%d hook calls", before, len(ids))
	}
	s.Start()
	s.WaitHealthy(t, 45*time.Second)

	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	for {
		got = map[string]int{}
		for _, line := range readLines(t, calls) {
			got[line]++
		}
		if len(got) == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	dups := 0
	for _, id := range ids {
		switch n := got[id]; {
		case n == 0:
			t.Errorf("event %s never reached the hook", id)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("killed after %d hook calls; %d events, %d duplicate hook calls after the restart", before, len(ids), dups)
	if dups > 8 {
		t.Errorf("%d duplicate hook calls: more than one per worker was cut off by the kill", dups)
	}
	list, err := s.TrySessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Active) != rooms {
		t.Fatalf("%d active sessions, want %d", len(list.Active), rooms)
	}
	for _, r := range list.Active {
		if r.EventsApplied != 3 || len(r.Participants) != 1 || r.Participants[0].State != "left" {
			t.Errorf("room %s: events_applied %d, participants %+v", r.RoomName, r.EventsApplied, r.Participants)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func countLines(t *testing.T, path string) int { return len(readLines(t, path)) }
