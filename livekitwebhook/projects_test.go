package livekitwebhook

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

const (
	globexKey    = "APIglobex"
	globexSecret = "globex-secret-of-at-least-32-chars!!"
)

// fetchBody GETs url and returns the status and body.
func fetchBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// postAs posts ev signed with key/secret.
func postAs(t *testing.T, url, key, secret string, ev *livekit.WebhookEvent) {
	t.Helper()
	body := marshal(t, ev)
	if code, resp, _ := post(t, url, body, map[string]string{"Authorization": sign(t, key, secret, body, time.Minute)}); code != 200 {
		t.Fatalf("%s %s signed by %s: %d %s", ev.Event, ev.Id, key, code, resp)
	}
}

func identities(ps []Participant) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Identity)
	}
	return out
}

// TestTwoProjectsSameRoomName: two LiveKit projects (two signing keys)
// each run a room named call-1 at the same time through one receiver. They
// get two sessions with their own participants and reports, each naming
// its key and project; ?project= filters (by name or key); the id alone is
// ambiguous (409 naming both projects); no answer holds a secret.
func TestTwoProjectsSameRoomName(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keys = globexKey + ": " + globexSecret
	cfg.Projects = "devkey: acme" // APIglobex is named by its key
	var hc hookCounter
	tr := startReceiver(t, cfg, WithHooks(hc.hooks()))
	acme := func(ev *livekit.WebhookEvent) { postAs(t, tr.url, testKey, testSecret, ev) }
	globex := func(ev *livekit.WebhookEvent) { postAs(t, tr.url, globexKey, globexSecret, ev) }
	t0 := time.Now().Unix()
	const sip, std = livekit.ParticipantInfo_SIP, livekit.ParticipantInfo_STANDARD
	// Interleaved, as two projects' traffic is.
	acme(roomEvent("EV_acme0000001", "room_started", "call-1", "RM_acme", t0))
	globex(roomEvent("EV_glob0000001", "room_started", "call-1", "RM_globex", t0))
	acme(participantEvent("EV_acme0000002", "participant_joined", "call-1", "RM_acme", "PA_alice", "alice", sip, t0+1, t0+1))
	globex(participantEvent("EV_glob0000002", "participant_joined", "call-1", "RM_globex", "PA_bob", "bob", std, t0+2, t0+2))
	globex(participantEvent("EV_glob0000003", "participant_joined", "call-1", "RM_globex", "PA_carol", "carol", std, t0+3, t0+3))

	sessions := tr.base + cfg.SessionsPath
	var bodies []string
	eventually(t, 10*time.Second, "both sessions with their participants", func() bool {
		a, okA, errA := tr.SessionByIDInProject(context.Background(), "acme", "call-1")
		g, okG, errG := tr.SessionByIDInProject(context.Background(), globexKey, "call-1")
		return errA == nil && errG == nil && okA && okG && len(a.Participants) == 1 && len(g.Participants) == 2
	})

	// The id alone names two sessions: 409, naming both projects.
	code, body := fetchBody(t, sessions+"/call-1")
	bodies = append(bodies, body)
	if code != http.StatusConflict {
		t.Fatalf("GET /sessions/call-1: %d %s, want 409", code, body)
	}
	var amb struct {
		Reason    string   `json:"reason"`
		SessionID string   `json:"session_id"`
		Projects  []string `json:"projects"`
	}
	decodeJSON(t, body, &amb)
	if amb.Reason != "ambiguous_session" || amb.SessionID != "call-1" || !slices.Equal(amb.Projects, []string{globexKey, "acme"}) {
		t.Errorf("409 body %s", body)
	}
	if _, _, err := tr.SessionByID(context.Background(), "call-1"); !errors.Is(err, ErrAmbiguousSession) {
		t.Errorf("SessionByID(call-1): %v, want ErrAmbiguousSession", err)
	}

	// With ?project= (a name, or a key), one each.
	for _, c := range []struct {
		q, key, project, sid string
		who                  []string
	}{
		{"acme", testKey, "acme", "RM_acme", []string{"alice"}},
		{testKey, testKey, "acme", "RM_acme", []string{"alice"}},
		{globexKey, globexKey, globexKey, "RM_globex", []string{"bob", "carol"}},
	} {
		code, body := fetchBody(t, sessions+"/call-1?project="+url.QueryEscape(c.q))
		bodies = append(bodies, body)
		var s Session
		decodeJSON(t, body, &s)
		if code != 200 || s.RoomSID != c.sid || s.APIKey != c.key || s.Project != c.project || s.SessionID != "call-1" ||
			!slices.Equal(identities(s.Participants), c.who) {
			t.Errorf("?project=%s: %d %s", c.q, code, body)
		}
		var list sessionsList
		code, body = fetchBody(t, sessions+"?project="+url.QueryEscape(c.q))
		bodies = append(bodies, body)
		decodeJSON(t, body, &list)
		if code != 200 || len(list.Active) != 1 || list.Active[0].RoomSID != c.sid {
			t.Errorf("list ?project=%s: %d %s", c.q, code, body)
		}
	}
	if code, body := fetchBody(t, sessions+"/call-1?project=nobody"); code != 404 {
		t.Errorf("?project=nobody: %d %s, want 404", code, body)
	}
	var all sessionsList
	getJSON(t, sessions, &all)
	if len(all.Active) != 2 {
		t.Errorf("unfiltered list: %d active, want 2", len(all.Active))
	}

	// Both end: a report each, with its own participants.
	acme(participantEvent("EV_acme0000003", "participant_left", "call-1", "RM_acme", "PA_alice", "alice", sip, t0+20, t0+1))
	globex(participantEvent("EV_glob0000004", "participant_left", "call-1", "RM_globex", "PA_bob", "bob", std, t0+30, t0+2))
	globex(roomEvent("EV_glob0000005", "room_finished", "call-1", "RM_globex", t0+31))
	acme(roomEvent("EV_acme0000004", "room_finished", "call-1", "RM_acme", t0+21))
	eventually(t, 15*time.Second, "two reports", func() bool { return len(hc.ended()) == 2 })
	got := map[string]Report{}
	for _, r := range hc.ended() {
		got[r.Project] = r
	}
	if r := got["acme"]; r.RoomSID != "RM_acme" || r.APIKey != testKey || !slices.Equal(identities(r.Participants), []string{"alice"}) ||
		r.ParticipantSeconds != 19 || r.Disposition != DispositionCompleted {
		t.Errorf("acme report %+v", r)
	}
	if r := got[globexKey]; r.RoomSID != "RM_globex" || r.APIKey != globexKey ||
		!slices.Equal(identities(r.Participants), []string{"bob", "carol"}) {
		t.Errorf("globex report %+v", r)
	}
	for _, q := range []string{"acme", globexKey} {
		var list sessionsList
		code, body := fetchBody(t, sessions+"?project="+q)
		bodies = append(bodies, body)
		decodeJSON(t, body, &list)
		if code != 200 || len(list.Active) != 0 || len(list.Ended) != 1 || list.Ended[0].Project != q {
			t.Errorf("ended ?project=%s: %s", q, body)
		}
	}
	code, body = fetchBody(t, sessions+"/call-1")
	bodies = append(bodies, body)
	if code != http.StatusConflict {
		t.Errorf("reported sessions, GET /sessions/call-1: %d, want 409", code)
	}
	b, _ := json.Marshal(hc.ended())
	bodies = append(bodies, string(b))
	for _, s := range bodies {
		for _, secret := range []string{testSecret, globexSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("an answer holds a secret: %s", s)
			}
		}
	}
}

// TestProjectsConfig: projects from "key: name" lines, a JSON object or
// the environment; a key not named is its own project.
func TestProjectsConfig(t *testing.T) {
	var cfg Config
	if err := json.Unmarshal([]byte(`{"projects": {"APIa": "acme", "APIb": "acme", "x:y": "odd name"}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	m, err := cfg.Projects.parse()
	if err != nil || m["APIa"] != "acme" || m["APIb"] != "acme" || m["x:y"] != "odd name" || len(m) != 3 {
		t.Fatalf("object: %v %v", m, err)
	}
	if err := json.Unmarshal([]byte(`{"projects": "APIa: acme\nAPIc: globex"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_PROJECTS", "APIz: zeta")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_API_KEY", "APIz")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_API_SECRET", testSecret)
	env, err := LoadConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	m, err = env.Projects.parse()
	if err != nil || m["APIz"] != "zeta" {
		t.Fatalf("env: %v %v", m, err)
	}
	ps := newProjectSet(map[string]string{"APIa": "acme", "APIb": "acme"}, map[string]string{"APIa": "s", "APIb": "s", "APIc": "s"})
	if !slices.Equal(ps.all, []string{"APIc", "acme"}) || ps.of("APIc") != "APIc" || ps.of("APIb") != "acme" || ps.of("") != "" ||
		ps.resolve("APIa") != "acme" || ps.resolve("acme") != "acme" {
		t.Errorf("project set %+v", ps)
	}
	bad := testConfig(t)
	bad.Projects = "APIa: [not, a, name]"
	if _, err := New(bad); err == nil {
		t.Error("New accepted malformed projects")
	}
}

// untar unpacks a .tar.gz into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("archive entry %q outside %s", h.Name, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}

// TestUpgradeFromStoreBeforeProjects starts on a store written by the
// version before projects (testdata/prevstore): its reported session and
// its open room are found, the open room continues in its own record when
// events signed by a configured key arrive (one session, not two), and a
// second project's room of an old room's name is its own session.
func TestUpgradeFromStoreBeforeProjects(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "prevstore", "store.tar.gz"), dir)
	cfg := DefaultConfig()
	cfg.Dev = true // the capture was signed with livekit-server --dev's devkey/secret
	cfg.APIKey, cfg.APISecret = "devkey", "secret"
	cfg.Keys = globexKey + ": " + globexSecret
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.FinalizeGrace = "200ms"
	cfg.MaxSessionAge, cfg.RecordTTL = "87600h", "876000h" // as captured (see testdata/prevstore)
	var hc hookCounter
	tr := startReceiver(t, cfg, WithHooks(hc.hooks()))
	ctx := context.Background()
	if !tr.engine().LegacyWindowOpen() {
		t.Fatal("a store written before projects did not open the legacy window")
	}

	done, ok, err := tr.SessionByID(ctx, "legacy-done")
	if err != nil || !ok || done.RoomSID != "RM_legacydone" || done.Disposition != DispositionCompleted ||
		!slices.Equal(identities(done.Participants), []string{"bob"}) || done.Project != "" || done.APIKey != "" {
		t.Fatalf("legacy-done: %+v %v %v", done, ok, err)
	}
	for _, q := range []string{"devkey", globexKey} {
		if s, ok, err := tr.SessionByIDInProject(ctx, q, "legacy-done"); err != nil || !ok || s.RoomSID != "RM_legacydone" {
			t.Errorf("legacy-done in project %s: %+v %v %v", q, s, ok, err)
		}
	}
	open, ok, err := tr.SessionByID(ctx, "legacy-open")
	if err != nil || !ok || open.RoomSID != "RM_legacyopen" || open.EndedAt != nil || !slices.Equal(identities(open.Participants), []string{"alice"}) {
		t.Fatalf("legacy-open: %+v %v %v", open, ok, err)
	}
	active, err := tr.ActiveSessions(ctx)
	if err != nil || len(active) != 1 || active[0].RoomSID != "RM_legacyopen" {
		t.Fatalf("active after the upgrade: %+v %v", active, err)
	}

	// The open room goes on, now with events signed by devkey.
	const T = 1767225600
	pa := &livekit.ParticipantInfo{Sid: "PA_alice", Identity: "alice", Kind: livekit.ParticipantInfo_STANDARD, JoinedAt: T + 1}
	room := &livekit.Room{Sid: "RM_legacyopen", Name: "legacy-open"}
	postAs(t, tr.url, "devkey", "secret", &livekit.WebhookEvent{Id: "EV_lo3", Event: "participant_left", CreatedAt: T + 41, Room: room, Participant: pa})
	postAs(t, tr.url, "devkey", "secret", &livekit.WebhookEvent{Id: "EV_lo4", Event: "room_finished", CreatedAt: T + 42, Room: room})
	// Another project's room reuses an old name.
	postAs(t, tr.url, globexKey, globexSecret, roomEvent("EV_gl1", "room_started", "legacy-done", "RM_globexdone", time.Now().Unix()))

	eventually(t, 15*time.Second, "the continued room's report", func() bool { return len(hc.ended()) == 1 })
	rep := hc.ended()[0]
	if rep.RoomSID != "RM_legacyopen" || rep.EventsApplied != 4 || rep.ParticipantSeconds != 40 ||
		!slices.Equal(identities(rep.Participants), []string{"alice"}) || rep.APIKey != "devkey" || rep.Project != "devkey" {
		t.Errorf("continued report %+v, want the old room's four events in one session", rep)
	}
	eventually(t, 10*time.Second, "globex's legacy-done", func() bool {
		s, ok, err := tr.SessionByIDInProject(ctx, globexKey, "legacy-done")
		return err == nil && ok && s.RoomSID == "RM_globexdone"
	})
	// The id now names globex's session (the newer one, as before projects)
	// and devkey's view still has the old one.
	if s, _, err := tr.SessionByID(ctx, "legacy-done"); err != nil || s.RoomSID != "RM_globexdone" {
		t.Errorf("legacy-done after globex reused it: %+v %v", s, err)
	}
	if s, _, err := tr.SessionByIDInProject(ctx, "devkey", "legacy-done"); err != nil || s.RoomSID != "RM_legacydone" {
		t.Errorf("legacy-done in devkey's project: %+v %v", s, err)
	}
	if active, err := tr.ActiveSessions(ctx); err != nil || len(active) != 1 || active[0].RoomSID != "RM_globexdone" {
		t.Errorf("active: %+v %v", active, err)
	}
}

// TestFreshStoreHasNoLegacyWindow: on a store this version created, no
// lookup falls back to unprefixed entries.
func TestFreshStoreHasNoLegacyWindow(t *testing.T) {
	tr := startReceiver(t, testConfig(t))
	if tr.engine().LegacyWindowOpen() {
		t.Fatal("legacy window open on a fresh store")
	}
}

// TestTwoProjectsSameRoomSID: two projects that reuse a room sid (LiveKit's
// sids are random; a misconfigured or replayed project could) still get a
// report each: report timers and stored reports are kept per project.
func TestTwoProjectsSameRoomSID(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keys = globexKey + ": " + globexSecret
	cfg.Projects = "devkey: acme"
	var hc hookCounter
	tr := startReceiver(t, cfg, WithHooks(hc.hooks()))
	t0 := time.Now().Unix()
	for _, p := range []struct{ key, secret, room, id string }{
		{testKey, testSecret, "acme-room", "EV_sidacme"},
		{globexKey, globexSecret, "globex-room", "EV_sidglob"},
	} {
		postAs(t, tr.url, p.key, p.secret, roomEvent(p.id+"1", "room_started", p.room, "RM_shared", t0))
		postAs(t, tr.url, p.key, p.secret, participantEvent(p.id+"2", "participant_joined", p.room, "RM_shared", "PA_"+p.room, "caller", livekit.ParticipantInfo_STANDARD, t0+1, t0+1))
		postAs(t, tr.url, p.key, p.secret, roomEvent(p.id+"3", "room_finished", p.room, "RM_shared", t0+2))
	}
	var reports []Report
	eventually(t, 20*time.Second, "a report per project", func() bool {
		var err error
		reports, err = tr.EndedSessions(context.Background(), 10)
		return err == nil && len(reports) == 2
	})
	got := map[string]string{}
	for _, r := range reports {
		got[r.Project] = r.RoomName
	}
	if got["acme"] != "acme-room" || got[globexKey] != "globex-room" {
		t.Fatalf("reports by project: %v", got)
	}
}
