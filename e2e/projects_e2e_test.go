package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// project is one LiveKit project of TestTwoProjects: its own livekit-server
// with its own key pair, posting to the shared serve and to its recorder.
type project struct {
	name, key, secret string
	lk                *lkserver.Server
	rec               *recorder
	room              *livekit.Room
	caller            interface{ Disconnect() }
	callerSID         string
}

// TestTwoProjects: two LiveKit projects post to one `lkwebhook serve`. Two
// livekit-servers, each with its own API key, sign their webhooks with it;
// serve knows both keys and names them (projects: APIacme → acme,
// APIglobex → globex). Both create a room named call-1 at the same time and
// a real participant with the same identity joins each. serve must keep
// two sessions, each with its own participant, api_key and project; the
// sessions API filters with ?project= (a name or a key), and GET
// sessions/call-1 without it answers 409 naming both projects.
func TestTwoProjects(t *testing.T) {
	lkserver.Binary(t)
	const room, caller = "call-1", "caller"
	ps := []*project{
		{name: "acme", key: "APIacme", secret: servetest.RandomSecret()},
		{name: "globex", key: "APIglobex", secret: servetest.RandomSecret()},
	}
	sv := servetest.Start(t, servetest.Options{
		APIKey: ps[0].key, APISecret: ps[0].secret,
		Args: []string{"--finalize-grace", "1s"},
		Env: []string{
			"LIVEKIT_KEYS=" + ps[1].key + ": " + ps[1].secret,
			"BELUGA_LIVEKIT_WEBHOOK_PROJECTS=" + ps[0].key + ": " + ps[0].name + "\n" + ps[1].key + ": " + ps[1].name,
		},
	})
	for _, p := range ps {
		p.rec = &recorder{t: t, start: time.Now(), provider: auth.NewSimpleKeyProvider(p.key, p.secret)}
		hook := httptest.NewServer(p.rec)
		t.Cleanup(hook.Close)
		p.lk = lkserver.Start(t, lkserver.Options{
			APIKey: p.key, APISecret: p.secret,
			WebhookURLs: []string{sv.WebhookURL(), hook.URL + webhookPath},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The same room name in both projects at once, a caller in each.
	for _, p := range ps {
		var err error
		if p.room, err = p.lk.RoomService().CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 60}); err != nil {
			t.Fatalf("%s: CreateRoom: %v", p.name, err)
		}
	}
	for _, p := range ps {
		p.rec.wait(t, stepTimeout, p.name+" room_started", isEvent(webhook.EventRoomStarted, room, ""))
		p.caller = lkserver.Join(t, p.lk, room, caller, livekit.ParticipantInfo_STANDARD, true)
	}
	for _, p := range ps {
		joined := p.rec.wait(t, stepTimeout, p.name+" participant_joined", isEvent(webhook.EventParticipantJoined, room, caller))
		p.callerSID = joined.Event.GetParticipant().GetSid()
		p.rec.wait(t, stepTimeout, p.name+" track_published", isEvent(webhook.EventTrackPublished, room, caller))
	}
	if ps[0].room.Sid == ps[1].room.Sid || ps[0].callerSID == ps[1].callerSID {
		t.Fatalf("the two servers gave the same sids: rooms %s/%s, callers %s/%s", ps[0].room.Sid, ps[1].room.Sid, ps[0].callerSID, ps[1].callerSID)
	}

	// While both calls run.
	for _, p := range ps {
		sv.WaitActive(t, stepTimeout, p.name+" "+room, func(s servetest.Session) bool {
			return s.RoomSID == p.room.Sid && len(s.Participants) == 1
		})
	}
	active, _ := sv.Sessions(t)
	checkProjectSessions(t, "active", ps, active)
	checkProjectAPI(t, sv, ps, room, func(l servetest.SessionList) []servetest.Session { return l.Active })

	// Both hang up, both rooms are deleted.
	for _, p := range ps {
		p.caller.Disconnect()
	}
	for _, p := range ps {
		p.rec.wait(t, stepTimeout, p.name+" participant_left", isEvent(webhook.EventParticipantLeft, room, caller))
		if _, err := p.lk.RoomService().DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
			t.Fatalf("%s: DeleteRoom: %v", p.name, err)
		}
	}
	for _, p := range ps {
		p.rec.wait(t, stepTimeout, p.name+" room_finished", isEvent(webhook.EventRoomFinished, room, ""))
		sv.WaitEnded(t, stepTimeout, p.name+" "+room, servetest.ByRoomSID(p.room.Sid))
	}
	_, ended := sv.Sessions(t)
	checkProjectSessions(t, "ended", ps, ended)
	checkProjectAPI(t, sv, ps, room, func(l servetest.SessionList) []servetest.Session { return l.Ended })
	for _, p := range ps {
		for _, s := range ended {
			if s.RoomSID != p.room.Sid {
				continue
			}
			if s.Disposition != "completed" || s.EventsApplied != countSent(p.rec, p.room.Sid) {
				t.Errorf("%s report: disposition %q, events_applied %d; want completed, %d (events its server sent)",
					p.name, s.Disposition, s.EventsApplied, countSent(p.rec, p.room.Sid))
			}
		}
	}
	m := sv.Metrics(t)
	if got := m.Sum(metricRefusals, nil); got != 0 {
		t.Errorf("%s = %v, want 0 (serve knows both keys)", metricRefusals, got)
	}
	if got := m.Sum(metricReports, map[string]string{"disposition": "completed"}); got != 2 {
		t.Errorf("%s{disposition=completed} = %v, want 2", metricReports, got)
	}
}

// countSent is the number of distinct events a recorder saw for a room sid.
func countSent(rec *recorder, roomSID string) int {
	ids := map[string]bool{}
	for _, c := range rec.snapshot() {
		if c.Event != nil && c.Event.GetRoom().GetSid() == roomSID {
			ids[c.Event.GetId()] = true
		}
	}
	return len(ids)
}

// checkProjectSessions: list holds one session of each project's room, with
// session id call-1, the project's api_key and name, and only its own
// participant.
func checkProjectSessions(t *testing.T, what string, ps []*project, list []servetest.Session) {
	t.Helper()
	for _, p := range ps {
		var got []servetest.Session
		for _, s := range list {
			if s.RoomSID == p.room.Sid {
				got = append(got, s)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: %d sessions of %s's room %s, want 1: %s", what, len(got), p.name, p.room.Sid, dump(list))
			continue
		}
		s := got[0]
		if s.SessionID != p.room.Name || s.RoomName != p.room.Name || s.APIKey != p.key || s.Project != p.name {
			t.Errorf("%s session of %s = session_id %q room %q api_key %q project %q; want %q %q %q %q",
				what, p.name, s.SessionID, s.RoomName, s.APIKey, s.Project, p.room.Name, p.room.Name, p.key, p.name)
		}
		if len(s.Participants) != 1 || s.Participants[0].SID != p.callerSID || s.Participants[0].Identity != "caller" {
			t.Errorf("%s session of %s has participants %s, want only its own caller %s", what, p.name, dump(s.Participants), p.callerSID)
		}
	}
}

// checkProjectAPI checks the sessions API's project filter and the 409 of
// an id two projects use; pick selects the active or the ended list.
func checkProjectAPI(t *testing.T, sv *servetest.Serve, ps []*project, id string, pick func(servetest.SessionList) []servetest.Session) {
	t.Helper()
	get := func(path string, v any) int {
		t.Helper()
		code, body, err := sv.Get(path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if code == http.StatusOK || code == http.StatusConflict {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, body)
			}
		}
		return code
	}

	var amb struct {
		Error     string   `json:"error"`
		Reason    string   `json:"reason"`
		SessionID string   `json:"session_id"`
		Projects  []string `json:"projects"`
	}
	if code := get(servetest.SessionsPath+"/"+url.PathEscape(id), &amb); code != http.StatusConflict ||
		amb.Reason != "ambiguous_session" || amb.SessionID != id || !slices.Equal(amb.Projects, []string{"acme", "globex"}) {
		t.Errorf("GET sessions/%s = %d %+v; want 409 ambiguous_session naming acme and globex", id, code, amb)
	}
	for _, p := range ps {
		for _, q := range []string{p.name, p.key} { // a project by its name or one of its keys
			var s servetest.Session
			if code := get(servetest.SessionsPath+"/"+url.PathEscape(id)+"?project="+url.QueryEscape(q), &s); code != http.StatusOK ||
				s.RoomSID != p.room.Sid || s.Project != p.name {
				t.Errorf("GET sessions/%s?project=%s = %d room %s project %q; want 200 room %s project %s",
					id, q, code, s.RoomSID, s.Project, p.room.Sid, p.name)
			}
			var l servetest.SessionList
			if code := get(servetest.SessionsPath+"?limit=1000&project="+url.QueryEscape(q), &l); code != http.StatusOK {
				t.Errorf("GET sessions?project=%s = %d", q, code)
				continue
			}
			if got := pick(l); len(got) != 1 || got[0].RoomSID != p.room.Sid || len(l.Active)+len(l.Ended) != 1 {
				t.Errorf("GET sessions?project=%s = %s\nwant only %s's room %s", q, dump(l), p.name, p.room.Sid)
			}
		}
	}
	var l servetest.SessionList
	if code := get(servetest.SessionsPath+"?project=initech", &l); code != http.StatusOK || len(l.Active)+len(l.Ended) != 0 {
		t.Errorf("GET sessions?project=initech = %d %s, want 200 and nothing", code, dump(l))
	}
	if code, _, _ := sv.Get(servetest.SessionsPath + "/" + url.PathEscape(id) + "?project=initech"); code != http.StatusNotFound {
		t.Errorf("GET sessions/%s?project=initech = %d, want 404", id, code)
	}
}
