package livekitwebhook

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"golang.org/x/net/html"
)

// TestConsoleAccessible checks every console page as served, with data in
// it (a phone call, a dead letter, a refusal, a verdict): the document has
// a language and a skip link to the main content; every form control has
// a label (<label for>, or aria-label); every button has a name; every
// table header says what it heads (scope); and the colours the stylesheet
// sets for text on a background have a contrast of at least 4.5:1 (WCAG
// AA), the focus ring at least 3:1.
func TestConsoleAccessible(t *testing.T) {
	const token = "a11y-admin-token-0123456789"
	cfg := testConfig(t)
	cfg.AdminToken, cfg.MaxAttempts = token, 1
	cfg.Keys = globexKey + ": " + globexSecret // two projects: the project filter shows
	tr := startReceiver(t, cfg, WithHooks(Hooks{OnParticipantJoined: func(_ context.Context, ev *livekit.WebhookEvent, _ Session) error {
		if ev.GetParticipant().GetIdentity() == "dl-guest" {
			return errors.New("crm down")
		}
		return nil
	}}))
	c := phoneCall{name: "a11y-call", sid: "RM_a11ycall", t0: time.Now().Add(-5 * time.Minute).Truncate(time.Second)}
	evs := c.events()
	mustPost(t, tr.url, evs...)
	eventually(t, 20*time.Second, "the call reported", func() bool {
		s, ok, err := tr.SessionByRoomSID(context.Background(), c.sid)
		return err == nil && ok && s.Disposition != "" && s.EventsApplied == len(evs)
	})
	mustPost(t, tr.url, participantEvent("EV_a11y_dl", "participant_joined", "dl-room", "RM_dlroom", "PA_dl", "dl-guest",
		livekit.ParticipantInfo_STANDARD, time.Now().Unix(), time.Now().Unix()))
	eventually(t, 20*time.Second, "the failed hook dead-lettered", func() bool {
		dl, err := tr.DeadLetters(context.Background(), 0)
		return err == nil && len(dl) == 1
	})
	body := marshal(t, evs[0])
	if code, _, _ := post(t, tr.url, body, map[string]string{"Authorization": "Bearer nope"}); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}

	bearer := map[string]string{"Authorization": "Bearer " + token}
	pages := map[string]string{}
	for _, p := range []string{"/", "/call?sid=" + c.sid, "/deadletters", "/intake", "/login"} {
		code, page, _ := consoleGet(t, tr, p, bearer)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
		pages[p] = page
	}
	form := map[string][]string{"authorization": {"x"}, "body": {"{}"}, "csrf": {csrfOf(t, pages["/intake"])}}
	if code, page, _ := consolePost(t, tr, "/intake/verify", form, bearer); code == http.StatusOK {
		pages["/intake/verify"] = page
	} else {
		t.Fatalf("verify: %d", code)
	}
	if !strings.Contains(pages["/"], `id="f-project"`) || !strings.Contains(pages["/deadletters"], "crm down") {
		t.Fatal("the pages lack the data this test means to check")
	}
	for p, page := range pages {
		for _, problem := range a11yProblems(t, page) {
			t.Errorf("%s: %s", p, problem)
		}
	}

	_, css, _ := consoleGet(t, tr, "/static/console.css", nil)
	pairs := cssColourPairs(t, css)
	if len(pairs) < 10 {
		t.Fatalf("only %d colour pairs read from the stylesheet", len(pairs))
	}
	for _, p := range pairs {
		if r := contrast(p.fg, p.bg); r < p.min {
			t.Errorf("%s: %s on %s has contrast %.2f, want ≥ %.1f", p.what, p.fg, p.bg, r, p.min)
		}
	}
}

// a11yProblems lists what a page lacks (see TestConsoleAccessible).
func a11yProblems(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	labels, ids := map[string]bool{}, map[string]bool{}
	var controls, buttons, ths []*html.Node
	var firstLink *html.Node
	lang := ""
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if id := attr(n, "id"); id != "" {
				ids[id] = true
			}
			switch n.Data {
			case "html":
				lang = attr(n, "lang")
			case "label":
				labels[attr(n, "for")] = true
			case "input":
				if attr(n, "type") != "hidden" {
					controls = append(controls, n)
				}
			case "select", "textarea":
				controls = append(controls, n)
			case "button":
				buttons = append(buttons, n)
			case "th":
				ths = append(ths, n)
			case "a":
				if firstLink == nil {
					firstLink = n
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if lang == "" {
		problems = append(problems, "no lang on <html>")
	}
	if firstLink == nil || !strings.HasPrefix(attr(firstLink, "href"), "#") || !ids[strings.TrimPrefix(attr(firstLink, "href"), "#")] {
		problems = append(problems, "the first link is not a skip link to an element of the page")
	}
	for _, c := range controls {
		if !labels[attr(c, "id")] && attr(c, "aria-label") == "" && attr(c, "aria-labelledby") == "" {
			problems = append(problems, fmt.Sprintf("<%s name=%q> has no label", c.Data, attr(c, "name")))
		}
	}
	for _, b := range buttons {
		if strings.TrimSpace(textOf(b)) == "" && attr(b, "aria-label") == "" {
			problems = append(problems, "a button without a name")
		}
	}
	for _, th := range ths {
		if s := attr(th, "scope"); s != "col" && s != "row" {
			problems = append(problems, fmt.Sprintf("<th> %q without scope", strings.TrimSpace(textOf(th))))
		}
	}
	return problems
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var sb strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		sb.WriteString(textOf(c))
	}
	return sb.String()
}

type colourPair struct {
	what, fg, bg string
	min          float64
}

var (
	cssRule = regexp.MustCompile(`([^{}]+)\{([^{}]*)\}`)
	cssVar  = regexp.MustCompile(`--([a-z]+):(#[0-9a-fA-F]{3,6})`)
	cssDecl = regexp.MustCompile(`(?:^|;)\s*(background|background-color|color|outline|outline-color)\s*:\s*([^;!]+)`)
	cssHex  = regexp.MustCompile(`#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|var\(--[a-z]+\)`)
)

// cssColourPairs reads the console's stylesheet: each rule that sets both
// a text colour and a background gives a pair (text, 4.5:1); the page's
// own text colours on its background and panels; the focus ring colours
// on what they sit on (3:1).
func cssColourPairs(t *testing.T, css string) []colourPair {
	t.Helper()
	css = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(css, "")
	vars := map[string]string{}
	for _, m := range cssVar.FindAllStringSubmatch(css, -1) {
		vars[m[1]] = m[2]
	}
	resolve := func(v string) string {
		v = cssHex.FindString(v)
		if strings.HasPrefix(v, "var(--") {
			return vars[strings.TrimSuffix(strings.TrimPrefix(v, "var(--"), ")")]
		}
		return v
	}
	var out []colourPair
	var focus, topFocus string
	for _, m := range cssRule.FindAllStringSubmatch(css, -1) {
		sel := strings.TrimSpace(m[1])
		decls := map[string]string{}
		for _, d := range cssDecl.FindAllStringSubmatch(m[2], -1) {
			decls[d[1]] = resolve(d[2])
		}
		bg := decls["background"]
		if bg == "" {
			bg = decls["background-color"]
		}
		if fg := decls["color"]; fg != "" && bg != "" {
			out = append(out, colourPair{sel, fg, bg, 4.5})
		}
		switch sel {
		case ":focus-visible":
			focus = decls["outline"]
		case ".top :focus-visible,.skip:focus-visible":
			topFocus = decls["outline-color"]
		}
	}
	for _, text := range []string{"fg", "muted", "accent", "ok", "bad", "warn"} {
		for _, bg := range []string{"bg", "panel"} {
			out = append(out, colourPair{"--" + text + " on --" + bg, vars[text], vars[bg], 4.5})
		}
	}
	if focus == "" || topFocus == "" {
		t.Fatalf("no focus ring rules in the stylesheet (focus %q, header %q)", focus, topFocus)
	}
	out = append(out, colourPair{"focus ring on the page", focus, vars["bg"], 3},
		colourPair{"focus ring on the panels", focus, vars["panel"], 3},
		colourPair{"focus ring in the header", topFocus, topBackground(css), 3})
	return out
}

func topBackground(css string) string {
	m := regexp.MustCompile(`\.top\{background:(#[0-9a-fA-F]{6})`).FindStringSubmatch(css)
	if m == nil {
		return ""
	}
	return m[1]
}

// contrast is the WCAG 2 contrast ratio of two #rgb / #rrggbb colours (0
// if one does not parse).
func contrast(a, b string) float64 {
	la, okA := luminance(a)
	lb, okB := luminance(b)
	if !okA || !okB {
		return 0
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(hex string) (float64, bool) {
	hex = strings.TrimPrefix(hex, "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	if len(hex) != 6 {
		return 0, false
	}
	var c [3]float64
	for i := range c {
		v, err := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
		if err != nil {
			return 0, false
		}
		s := float64(v) / 255
		if s <= 0.04045 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2], true
}
