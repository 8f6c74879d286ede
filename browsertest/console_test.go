package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/livekit/protocol/livekit"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const (
	apiKey     = "APIbrowsertest"
	apiSecret  = "a-browser-test-secret-of-32-chars-or-more"
	adminToken = "console-browser-admin-token-42"
)

// chromium finds the browser, or skips (fails when required).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("LKWEBHOOK_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LKWEBHOOK_E2E_REQUIRED") != "" {
		t.Fatal("no chromium found and LKWEBHOOK_E2E_REQUIRED is set (apt-get install -y chromium)")
	}
	t.Skip("no chromium found (apt-get install -y chromium); set LKWEBHOOK_E2E_REQUIRED to make this a failure")
	return ""
}

// browser starts a headless Chromium with a temp profile.
func browser(t *testing.T, width, height int) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser: no timeout on this first call
		cancelC()
		cancelA()
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	return tctx, func() { cancelT(); cancelC(); cancelA() }
}

// receiver is a started receiver served on addr ("127.0.0.1:0" or another
// interface), with every route.
type receiver struct {
	*livekitwebhook.Receiver
	base    string
	webhook string
	console string
}

func startReceiver(t *testing.T, addr, token string, hooks livekitwebhook.Hooks) *receiver {
	t.Helper()
	cfg := livekitwebhook.DefaultConfig()
	cfg.APIKey, cfg.APISecret = apiKey, apiSecret
	cfg.DataDir = t.TempDir()
	cfg.FinalizeGrace = "100ms"
	cfg.MaxAttempts = 1
	cfg.AdminToken = token
	r, err := livekitwebhook.New(cfg, livekitwebhook.WithHooks(hooks), livekitwebhook.WithTracerProvider(sdktrace.NewTracerProvider()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range r.Routes() {
		mux.Handle(p, h)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = r.Stop(context.Background())
	})
	base := "http://" + ln.Addr().String()
	c := r.Config()
	return &receiver{Receiver: r, base: base, webhook: base + c.Path, console: base + c.ConsolePath}
}

// send signs ev as LiveKit does and posts it.
func (r *receiver) send(t *testing.T, ev *livekit.WebhookEvent) {
	t.Helper()
	req, err := livekitwebhooktest.NewRequest(context.Background(), r.webhook, apiKey, apiSecret, ev)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("webhook %s: %d", ev.Event, res.StatusCode)
	}
}

// call sends a whole call that started ago and lasted for: started,
// joined participants, left, finished.
func (r *receiver) call(t *testing.T, room string, ago, lasted time.Duration, identities ...string) string {
	sid := livekitwebhooktest.NewID("RM_")
	start := time.Now().Add(-ago)
	at := func(ev *livekit.WebhookEvent, when time.Time) *livekit.WebhookEvent {
		ev.CreatedAt = when.Unix()
		if ev.Room.CreationTime != 0 {
			ev.Room.CreationTime, ev.Room.CreationTimeMs = start.Unix(), start.UnixMilli()
		}
		return ev
	}
	r.send(t, at(livekitwebhooktest.RoomEvent("room_started", room, sid), start))
	var ps []*livekit.ParticipantInfo
	for i, id := range identities {
		kind := livekit.ParticipantInfo_STANDARD
		if strings.HasPrefix(id, "agent") {
			kind = livekit.ParticipantInfo_AGENT
		}
		joined := start.Add(time.Duration(i+1) * 2 * time.Second)
		p := &livekit.ParticipantInfo{Sid: livekitwebhooktest.NewID("PA_"), Identity: id, Kind: kind,
			JoinedAt: joined.Unix(), JoinedAtMs: joined.UnixMilli()}
		ps = append(ps, p)
		r.send(t, at(livekitwebhooktest.ParticipantEvent("participant_joined", room, sid, p), joined))
	}
	end := start.Add(lasted)
	for _, p := range ps {
		left := livekitwebhooktest.ParticipantEvent("participant_left", room, sid, p)
		left.Participant.DisconnectReason = livekit.DisconnectReason_CLIENT_INITIATED
		r.send(t, at(left, end.Add(-time.Second)))
	}
	r.send(t, at(livekitwebhooktest.RoomEvent("room_finished", room, sid), end))
	return sid
}

// dial is one SIP call of a phone room: who was dialled (or called in),
// when it joined after the room started, when it was answered (0: never),
// when it left and why.
type dial struct {
	number, ruleID     string // ruleID set: an inbound call
	join, answer, left time.Duration
	reason             livekit.DisconnectReason
	lastStatus         string
}

// phoneCall sends a phone room that started ago: an agent joins, the
// dials happen in turn (attributes as livekit-sip sets them: sip.callID,
// sip.trunkID, sip.phoneNumber, sip.trunkPhoneNumber, sip.callStatus,
// lk.sip.answerTime in Unix ms; an inbound call also sip.ruleID), the room
// is recorded to an audio file when record is set, and it finishes after
// lasted.
func (r *receiver) phoneCall(t *testing.T, room string, ago, lasted time.Duration, record bool, dials ...dial) string {
	sid := livekitwebhooktest.NewID("RM_")
	start := time.Now().Add(-ago).Truncate(time.Second) // whole seconds, as createdAt: talk times do not depend on the clock
	at := func(ev *livekit.WebhookEvent, d time.Duration) *livekit.WebhookEvent {
		ev.CreatedAt = start.Add(d).Unix()
		if ev.Room != nil && ev.Room.CreationTime != 0 {
			ev.Room.CreationTime, ev.Room.CreationTimeMs = start.Unix(), start.UnixMilli()
		}
		return ev
	}
	r.send(t, at(livekitwebhooktest.RoomEvent("room_started", room, sid), 0))
	agent := &livekit.ParticipantInfo{Sid: livekitwebhooktest.NewID("PA_"), Identity: "agent-ava", Kind: livekit.ParticipantInfo_AGENT,
		JoinedAt: start.Add(time.Second).Unix(), JoinedAtMs: start.Add(time.Second).UnixMilli()}
	r.send(t, at(livekitwebhooktest.ParticipantEvent("participant_joined", room, sid, agent), time.Second))
	egressID := livekitwebhooktest.NewID("EG_")
	egress := func(event string, status livekit.EgressStatus, d time.Duration) {
		info := &livekit.EgressInfo{EgressId: egressID, RoomId: sid, RoomName: room, Status: status,
			StartedAt: start.Add(2 * time.Second).UnixNano(), UpdatedAt: start.Add(d).UnixNano(),
			Request: &livekit.EgressInfo_RoomComposite{RoomComposite: &livekit.RoomCompositeEgressRequest{RoomName: room, AudioOnly: true}}}
		if status == livekit.EgressStatus_EGRESS_COMPLETE {
			info.EndedAt = start.Add(d).UnixNano()
			info.FileResults = []*livekit.FileInfo{{Filename: "recordings/" + room + ".ogg", Location: "s3://calls-archive/recordings/" + room + ".ogg",
				Size: int64((d - 2*time.Second).Seconds() * 4000), Duration: int64(d - 2*time.Second),
				StartedAt: start.Add(2 * time.Second).UnixNano(), EndedAt: start.Add(d).UnixNano()}}
		}
		r.send(t, at(livekitwebhooktest.EgressEvent(event, info), d))
	}
	if record {
		egress("egress_started", livekit.EgressStatus_EGRESS_STARTING, 2*time.Second)
	}
	for i, d := range dials {
		callID := fmt.Sprintf("SCL_%s%d", strings.ReplaceAll(room, "-", ""), i)
		attrs := func(status string) map[string]string {
			m := map[string]string{"sip.callID": callID, "sip.trunkID": "ST_9vLxQw3Hn8cD", "sip.phoneNumber": d.number,
				"sip.trunkPhoneNumber": "+14155550199", "sip.callStatus": status}
			if d.ruleID != "" {
				m["sip.ruleID"] = d.ruleID
			}
			if d.answer != 0 {
				m["lk.sip.answerTime"] = fmt.Sprint(start.Add(d.answer).UnixMilli())
			}
			return m
		}
		first := "dialing"
		if d.ruleID != "" {
			first = "active"
		}
		joined := start.Add(d.join)
		p := &livekit.ParticipantInfo{Sid: livekitwebhooktest.NewID("PA_"), Identity: "sip_" + d.number, Kind: livekit.ParticipantInfo_SIP,
			JoinedAt: joined.Unix(), JoinedAtMs: joined.UnixMilli(), Attributes: attrs(first)}
		delete(p.Attributes, "lk.sip.answerTime") // set once answered
		r.send(t, at(livekitwebhooktest.ParticipantEvent("participant_joined", room, sid, p), d.join))
		left := livekitwebhooktest.ParticipantEvent("participant_left", room, sid, p)
		left.Participant.Attributes = attrs(d.lastStatus)
		left.Participant.DisconnectReason = d.reason
		r.send(t, at(left, d.left))
	}
	agentLeft := livekitwebhooktest.ParticipantEvent("participant_left", room, sid, agent)
	agentLeft.Participant.DisconnectReason = livekit.DisconnectReason_CLIENT_INITIATED
	r.send(t, at(agentLeft, lasted-time.Second))
	if record {
		egress("egress_ended", livekit.EgressStatus_EGRESS_COMPLETE, lasted)
	}
	finished := livekitwebhooktest.RoomEvent("room_finished", room, sid)
	finished.RoomEndReason = livekit.RoomEndReason_ROOM_END_API_DELETE
	r.send(t, at(finished, lasted))
	return sid
}

// TestConsoleInBrowser is the console's scenario in a real Chromium: log
// in (refused with a wrong token), see a call appear without a reload,
// open it, expand a raw event, see the failed hook dead-lettered, replay
// it from the page and see the result without leaving it; room names with
// HTML are shown as text and never run; the page fits a phone's width.
func TestConsoleInBrowser(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	r := startReceiver(t, "127.0.0.1:0", adminToken, livekitwebhook.Hooks{
		Name: "crm",
		OnParticipantJoined: func(_ context.Context, ev *livekit.WebhookEvent, _ livekitwebhook.Session) error {
			if failing.Load() && ev.GetParticipant().GetIdentity() == "caller-+15550100" {
				return errors.New("crm: 503 Service Unavailable")
			}
			return nil
		},
	})
	ctx, cancel := browser(t, 1280, 800)
	defer cancel()
	do(t, ctx, "viewport", chromedp.EmulateViewport(1280, 800))

	// Some history for the list: web calls and phone calls (answered, not
	// answered, declined, inbound).
	r.call(t, "support-2231", 58*time.Minute, 7*time.Minute+12*time.Second, "agent-ava", "customer-ben")
	r.phoneCall(t, "outreach-0088", 47*time.Minute, 40*time.Second, false,
		dial{number: "+14155550123", join: 2 * time.Second, left: 33 * time.Second, reason: livekit.DisconnectReason_USER_UNAVAILABLE, lastStatus: "ringing"})
	r.phoneCall(t, "reminder-0091", 39*time.Minute, 20*time.Second, false,
		dial{number: "+14155550187", join: 2 * time.Second, left: 9 * time.Second, reason: livekit.DisconnectReason_USER_REJECTED, lastStatus: "ringing"})
	r.phoneCall(t, "support-line", 31*time.Minute, 5*time.Minute+40*time.Second, true,
		dial{number: "+16505550111", ruleID: "SDR_mainline", join: 2 * time.Second, left: 5*time.Minute + 38*time.Second,
			reason: livekit.DisconnectReason_CLIENT_INITIATED, lastStatus: "hangup"})
	// The call of the one-call screenshot: the first number rings out,
	// the second answers; the call is recorded.
	done := r.phoneCall(t, "callback-4711", 22*time.Minute, 4*time.Minute+10*time.Second, true,
		dial{number: "+14155550100", join: 2 * time.Second, left: 33 * time.Second, reason: livekit.DisconnectReason_USER_UNAVAILABLE, lastStatus: "ringing"},
		dial{number: "+14155550142", join: 35 * time.Second, answer: 41*time.Second + 400*time.Millisecond, left: 4*time.Minute + 8*time.Second,
			reason: livekit.DisconnectReason_CLIENT_INITIATED, lastStatus: "hangup"})
	r.call(t, "sales-0419", 12*time.Minute, 35*time.Second, "agent-ava")

	// Without the token: the login form; a wrong token is refused.
	do(t, ctx, "login page",
		chromedp.Navigate(r.console+"/"),
		chromedp.WaitVisible(css(`#token`)),
		chromedp.SendKeys(css(`#token`), "not-the-token"),
		chromedp.Submit(css(`#token`)),
		chromedp.WaitVisible(css(`#result`)),
	)
	if text := run(t, ctx, "result", chromedp.Text(css(`#result`))); !strings.Contains(text, "not the admin token") {
		t.Fatalf("wrong token: %q", text)
	}
	do(t, ctx, "log in",
		chromedp.SendKeys(css(`#token`), adminToken),
		chromedp.Submit(css(`#token`)),
		chromedp.WaitVisible(css(`#live table.calls`)),
	)
	waitText(t, ctx, "#live", "callback-4711")

	// A new call appears without a reload: a mark set on the window
	// survives until the row shows.
	run(t, ctx, "mark", chromedp.Evaluate[int](`window.__noReload = 42`))
	room := `<img src=x onerror="window.__xss=1">support-2240`
	sid := livekitwebhooktest.NewID("RM_")
	r.send(t, livekitwebhooktest.RoomEvent("room_started", room, sid))
	caller := &livekit.ParticipantInfo{Sid: livekitwebhooktest.NewID("PA_"), Identity: "caller-+15550100", Kind: livekit.ParticipantInfo_SIP}
	joined := livekitwebhooktest.ParticipantEvent("participant_joined", room, sid, caller)
	r.send(t, joined)
	r.send(t, joined) // LiveKit's retry: a duplicate
	agent := &livekit.ParticipantInfo{Sid: livekitwebhooktest.NewID("PA_"), Identity: "agent-ava", Kind: livekit.ParticipantInfo_AGENT}
	r.send(t, livekitwebhooktest.ParticipantEvent("participant_joined", room, sid, agent))
	row := fmt.Sprintf(`tr[data-sid=%q]`, sid)
	do(t, ctx, "live row", chromedp.WaitVisible(css(row)))
	if mark := run(t, ctx, "mark", chromedp.Evaluate[int](`window.__noReload || 0`)); mark != 42 {
		t.Fatalf("the page reloaded to show the new call")
	}
	xss := run(t, ctx, "xss", chromedp.Evaluate[bool](`window.__xss === 1`))
	if text := run(t, ctx, "row", chromedp.Text(css(row+` th a`))); xss || text != room {
		t.Fatalf("room name ran or was not shown as text: xss=%v text=%q", xss, text)
	}
	waitText(t, ctx, "#count-dlq", "1")
	shot(t, ctx, "console-calls.png")

	// Open the call; expand a raw event.
	do(t, ctx, "open the call", chromedp.Click(css(row+` th a`)), chromedp.WaitVisible(css(`#h-timeline`)))
	if run(t, ctx, "xss", chromedp.Evaluate[bool](`window.__xss === 1`)) {
		t.Fatal("the room name ran as HTML on the call page")
	}
	const second = `ol.timeline li:nth-child(2) details.raw`
	do(t, ctx, "expand raw", chromedp.Click(css(second+` summary`)), chromedp.WaitVisible(css(second+` pre`)))
	open := run(t, ctx, "open", chromedp.Evaluate[bool](`document.querySelector("`+second+`").open`))
	raw := run(t, ctx, "raw", chromedp.Text(css(second+` pre`)))
	if !open || !strings.Contains(raw, joined.Id) || !strings.Contains(raw, `"participant_joined"`) {
		t.Fatalf("raw event: open=%v %q", open, raw)
	}
	page := run(t, ctx, "call text", chromedp.Text(css(`main`)))
	for _, want := range []string{"duplicate", "crm/OnParticipantJoined attempt 1", "crm: 503 Service Unavailable", "Dead-lettered"} {
		if !strings.Contains(page, want) {
			t.Errorf("call page lacks %q", want)
		}
	}

	// Replay the dead letter from the page.
	failing.Store(false)
	do(t, ctx, "dead letters",
		chromedp.Click(css(`a[href$="/deadletters"]`)),
		chromedp.WaitVisible(css(`table.dlq`)),
	)
	run(t, ctx, "mark", chromedp.Evaluate[int](`window.__noReload = 43`))
	do(t, ctx, "replay", chromedp.Click(css(`table.dlq tbody button`)))
	waitText(t, ctx, "#result", "Replayed 1 dead letter")
	waitText(t, ctx, "table.dlq", "No dead letters.")
	if mark := run(t, ctx, "mark", chromedp.Evaluate[int](`window.__noReload || 0`)); mark != 43 {
		t.Fatal("replaying left the page")
	}
	// The replayed hook call shows on the call page.
	do(t, ctx, "call again", chromedp.Navigate(r.console+"/call?sid="+sid), chromedp.WaitVisible(css(`#h-timeline`)))
	waitText(t, ctx, "main", "crm/OnParticipantJoined attempt 2")

	// The screenshot of one call: a phone call, answered at the second
	// number and recorded.
	do(t, ctx, "phone call", chromedp.Navigate(r.console+"/call?sid="+done), chromedp.WaitVisible(css(`#h-phone`)))
	phone := run(t, ctx, "phone calls", chromedp.Text(css(`table.phone`)))
	for _, want := range []string{"+14155550142", "answered", "+14155550100", "no_answer", "outbound", "3m27s"} {
		if !strings.Contains(phone, want) {
			t.Errorf("phone calls table lacks %q: %q", want, phone)
		}
	}
	if rec := run(t, ctx, "recordings", chromedp.Text(css(`#h-recordings + .scroll`))); !strings.Contains(rec, "EGRESS_COMPLETE") || !strings.Contains(rec, "recordings/callback-4711.ogg") {
		t.Errorf("recordings: %q", rec)
	}
	run(t, ctx, "top", chromedp.Evaluate[int](`window.scrollTo(0, 0), 0`))
	shot(t, ctx, "console-call.png")

	// A phone's width: nothing wider than the screen (tables scroll or
	// stack inside it).
	do(t, ctx, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(r.console+"/"), chromedp.WaitVisible(css(`#live`)))
	if run(t, ctx, "fits", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)) {
		t.Error("the calls page is wider than a phone's screen")
	}

	// Log out: the console asks for the token again.
	do(t, ctx, "logout", chromedp.EmulateViewport(1280, 800), chromedp.Click(css(`.logout button`)), chromedp.WaitVisible(css(`#token`)))
}

// TestConsoleRefusedFromNetworkWithoutToken: without an admin token the
// console answers loopback only: a browser reaching it over another
// interface is refused.
func TestConsoleRefusedFromNetworkWithoutToken(t *testing.T) {
	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	r := startReceiver(t, net.JoinHostPort(ip, "0"), "", livekitwebhook.Hooks{})
	ctx, cancel := browser(t, 1280, 800)
	defer cancel()
	do(t, ctx, "refused", chromedp.Navigate(r.console+"/"))
	if text := run(t, ctx, "text", chromedp.Text(css(`main`))); !strings.Contains(text, "local requests only") || strings.Contains(text, "active calls") {
		t.Fatalf("console over the network without a token: %q", text)
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// waitText polls the text of sel until it contains want (the page's own
// refresh brings it).
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err == nil && strings.Contains(v, want) {
			return
		}
		text = v
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %q in %s: %v", want, sel, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s never showed %q; last: %q", sel, want, text)
}

// shot saves a screenshot of the viewport into ../docs when
// LKWEBHOOK_SCREENSHOTS is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("LKWEBHOOK_SCREENSHOTS") == "" {
		return
	}
	png := run(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	path := filepath.Join("..", "docs", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
