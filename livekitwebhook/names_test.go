package livekitwebhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// A name of any length LiveKit can send (livekit-server takes any room name
// when its room-name limit is 0, and metadata up to 512 KiB) must never
// become a NATS subject or key past the server's control line (4096 bytes):
// NATS closes the connection, and before the names were bounded the service
// stayed down, also after a restart (issue 12). Each case sends a session
// under the hostile name, then checks that the service stays healthy and
// reports it, then that a normal session still goes through, before and
// after a restart on the same data directory.
func TestHostileNamesKeepServiceUp(t *testing.T) {
	cases := []struct {
		name        string
		correlation string
		room        string
		metadata    string
		session     string // the session id the report must carry
	}{
		{name: "room_name_5000", room: strings.Repeat("R", 5000)},
		// Dots are hex-encoded in keys: 2,100 characters make 4,200.
		{name: "dotted_room_name_2100", room: strings.Repeat("a.", 1050)},
		{name: "metadata_session_id_5000", correlation: "metadata:call", room: "meta-room",
			metadata: `{"call":"` + strings.Repeat("S", 5000) + `"}`, session: strings.Repeat("S", 5000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.session == "" {
				c.session = c.room
			}
			cfg := testConfig(t)
			cfg.Correlation = c.correlation
			var hc hookCounter
			tr := startReceiver(t, cfg, WithHooks(hc.hooks()))

			t0 := time.Now().Add(-time.Minute).Unix()
			started := roomEvent("EV_hostile0001", "room_started", c.room, "RM_hostile", t0)
			started.Room.Metadata = c.metadata
			for _, ev := range []*livekit.WebhookEvent{started, roomEvent("EV_hostile0002", "room_finished", c.room, "RM_hostile", t0+30)} {
				if code, resp := postEvent(t, tr.url, ev); code != http.StatusOK {
					t.Fatalf("%s: %d %s", ev.Event, code, resp)
				}
			}
			waitReport(t, &hc, c.session)
			assertHealthy(t, tr)
			if got := sessionStatus(t, tr, c.session); got != http.StatusOK {
				t.Fatalf("GET the hostile session: %d, want 200", got)
			}
			normalSession(t, tr, &hc, "normal-1")

			tr.srv.Close()
			if err := tr.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			var hc2 hookCounter
			tr2 := startReceiver(t, cfg, WithHooks(hc2.hooks()))
			assertHealthy(t, tr2)
			if got := sessionStatus(t, tr2, c.session); got != http.StatusOK {
				t.Fatalf("after restart, GET the hostile session: %d, want 200", got)
			}
			normalSession(t, tr2, &hc2, "normal-2")
		})
	}
}

// Journal entries written before names were bounded (the room name whole in
// the Lkwh-Room header too) are handed on at start: before, each start
// replayed them into a closed connection.
func TestJournaledHostileNamesReplayedAtStart(t *testing.T) {
	for _, room := range []string{strings.Repeat("R", 5000), strings.Repeat("a.", 1050)} {
		t.Run(fmt.Sprint(len(room)), func(t *testing.T) {
			cfg := testConfig(t)
			eng, err := engine.Open(context.Background(), engine.Config{DataDir: cfg.DataDir,
				MaxMessageBytes: cfg.MaxBodyBytes, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().Add(-time.Minute).Unix()
			for _, ev := range []*livekit.WebhookEvent{
				roomEvent("EV_journal0001", "room_started", room, "RM_journal", t0),
				roomEvent("EV_journal0002", "room_finished", room, "RM_journal", t0+30),
			} {
				hdr := map[string][]string{engine.HeaderEventID: {ev.Id}, engine.HeaderRoomKey: {room}, engine.HeaderRoomSID: {"RM_journal"}}
				a := engine.Accepted{ID: ev.Id, Room: room, Event: ev.Event, Body: marshal(t, ev), Header: hdr}
				if _, err := eng.Accept(context.Background(), a); err != nil {
					t.Fatal(err)
				}
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			var hc hookCounter
			tr := startReceiver(t, cfg, WithHooks(hc.hooks()))
			waitReport(t, &hc, room)
			assertHealthy(t, tr)
			normalSession(t, tr, &hc, "normal-1")
		})
	}
}

// Ids are LiveKit's own (a prefix and 12 characters): a signed event with
// an absurd one is refused for good, and the service stays up.
func TestAbsurdIDsRefused(t *testing.T) {
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithHooks(hc.hooks()))
	long := strings.Repeat("I", 5000)
	now := time.Now().Unix()
	for name, ev := range map[string]*livekit.WebhookEvent{
		"event id":        roomEvent(long, "room_started", "r", "RM_ids", now),
		"room sid":        roomEvent("EV_ids00000001", "room_started", "r", long, now),
		"participant sid": participantEvent("EV_ids00000002", "participant_joined", "r", "RM_ids", long, "p", livekit.ParticipantInfo_STANDARD, now, now),
	} {
		code, resp := postEvent(t, tr.url, ev)
		if code != http.StatusBadRequest || !strings.Contains(resp, `"id_too_long"`) {
			t.Errorf("%s of 5000 bytes: %d %s, want 400 id_too_long", name, code, resp)
		}
		if strings.Contains(resp, long) {
			t.Errorf("%s: the answer echoes the id", name)
		}
	}
	assertHealthy(t, tr)
	normalSession(t, tr, &hc, "normal-1")
}

// A session indexed by a version before keys were bounded, under a legacy
// key longer than the bound, is still found by its id.
func TestSessionFoundByLegacyKey(t *testing.T) {
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithHooks(hc.hooks()))
	normalSession(t, tr, &hc, "legacy-room")
	id := strings.Repeat("s.", 200)
	legacy, ok := engine.LegacyKey(id)
	if !ok || engine.Key(id) == legacy {
		t.Fatalf("no legacy key for a %d-byte id", len(id))
	}
	// In the project's names (entries of versions before projects are read
	// the same way, unprefixed, during the legacy window).
	if _, err := testKV(t, tr.engine(), engine.BucketNames).Put(context.Background(), engine.ProjectPrefix(testKey)+"session."+legacy, []byte("RM_legacy-room")); err != nil {
		t.Fatal(err)
	}
	s, ok, err := tr.SessionByID(context.Background(), id)
	if err != nil || !ok || s.RoomSID != "RM_legacy-room" {
		t.Fatalf("SessionByID through the legacy key: %v %v %+v", ok, err, s)
	}
}

// An unsigned GET of a session id past the control line answered 500 and
// closed the engine's connection; it is a plain 404.
func TestSessionsAPILongIDIsNotFound(t *testing.T) {
	var hc hookCounter
	tr := startReceiver(t, testConfig(t), WithHooks(hc.hooks()))
	for _, id := range []string{strings.Repeat("S", 4100), strings.Repeat("s.", 2050)} {
		if got := sessionStatus(t, tr, id); got != http.StatusNotFound {
			t.Fatalf("GET a %d-byte unknown session id: %d, want 404", len(id), got)
		}
		assertHealthy(t, tr)
	}
	normalSession(t, tr, &hc, "normal-1")
}

// waitReport waits for the final report of session id.
func waitReport(t *testing.T, hc *hookCounter, id string) Report {
	t.Helper()
	var rep Report
	eventually(t, 20*time.Second, fmt.Sprintf("the report of a %d-byte session id", len(id)), func() bool {
		for _, r := range hc.ended() {
			if r.SessionID == id {
				rep = r
				return true
			}
		}
		return false
	})
	return rep
}

// assertHealthy checks what /healthz of `lkwebhook serve` answers from.
func assertHealthy(t *testing.T, tr *testReceiver) {
	t.Helper()
	if h := tr.Health(); h.Status != "healthy" || !tr.engine().Ready() {
		t.Fatalf("health %s (%s), engine ready %v", h.Status, h.Message, tr.engine().Ready())
	}
}

// sessionStatus GETs the sessions API for id (unsigned, from loopback).
func sessionStatus(t *testing.T, tr *testReceiver, id string) int {
	t.Helper()
	var s Session
	code := getJSON(t, tr.base+"/voice/livekit/sessions/"+url.PathEscape(id), &s)
	if code == http.StatusOK && s.SessionID != id {
		t.Fatalf("GET session of %d bytes: got session %.40q", len(id), s.SessionID)
	}
	return code
}

// normalSession sends a short ordinary session and waits for its report.
func normalSession(t *testing.T, tr *testReceiver, hc *hookCounter, room string) {
	t.Helper()
	t0 := time.Now().Add(-time.Minute).Unix()
	for _, ev := range []*livekit.WebhookEvent{
		roomEvent("EV_"+room+"-1", "room_started", room, "RM_"+room, t0),
		roomEvent("EV_"+room+"-2", "room_finished", room, "RM_"+room, t0+10),
	} {
		if code, resp := postEvent(t, tr.url, ev); code != http.StatusOK {
			t.Fatalf("normal %s: %d %s", ev.Event, code, resp)
		}
	}
	waitReport(t, hc, room)
}
