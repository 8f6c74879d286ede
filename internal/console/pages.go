package console

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// deadLetters is the dead letters page.
type deadLetters struct {
	List     []DeadLetter
	Fragment bool
}

func (d deadLetters) fragment() bool { return d.Fragment }

func (c *Console) serveDeadLetters(w http.ResponseWriter, req *http.Request) {
	c.renderDeadLetters(w, req, "", false)
}

func (c *Console) renderDeadLetters(w http.ResponseWriter, req *http.Request, flash string, ok bool) {
	ctx, cancel := ctxOf(req)
	defer cancel()
	list, err := c.src.DeadLetters(ctx)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	c.write(w, http.StatusOK, "deadletters", page{Title: "Dead letters", Flash: flash, FlashOK: ok,
		Data: deadLetters{List: list, Fragment: req.Method == http.MethodGet && req.URL.Query().Get("fragment") == "1"}})
}

// replayResult is the answer to a replay posted by the page's script.
type replayResult struct {
	Replayed int    `json:"replayed"`
	Error    string `json:"error,omitempty"`
	Message  string `json:"message"`
}

// serveReplay replays one dead letter (form field id) or all (all=1). The
// page's script asks for JSON (Accept: application/json) and stays on the
// page; a plain form post gets the page back with the result.
func (c *Console) serveReplay(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := ctxOf(req)
	defer cancel()
	id := req.PostFormValue("id")
	all := req.PostFormValue("all") == "1"
	res := replayResult{}
	status := http.StatusOK
	if id == "" && !all {
		res.Error, status = "name a dead letter (id) or all", http.StatusBadRequest
	} else {
		n, err := c.src.Replay(ctx, id)
		res.Replayed = n
		if err != nil {
			res.Error, status = err.Error(), http.StatusConflict
		}
	}
	switch {
	case res.Error != "":
		res.Message = fmt.Sprintf("Replay failed after %d replayed: %s", res.Replayed, res.Error)
	case res.Replayed == 1:
		res.Message = "Replayed 1 dead letter: it is being processed again."
	default:
		res.Message = fmt.Sprintf("Replayed %d dead letters: they are being processed again.", res.Replayed)
	}
	if strings.Contains(req.Header.Get("Accept"), "application/json") {
		writeJSON(w, status, res)
		return
	}
	c.renderDeadLetters(w, req, res.Message, res.Error == "")
}

// intake is the intake page.
type intake struct {
	Refusals []Refusal
	ByReason []reasonCount
	Total    int
	G        Gauges
	Verdict  *Verdict
	Fragment bool
}

func (d intake) fragment() bool { return d.Fragment }

func (c *Console) serveIntake(w http.ResponseWriter, req *http.Request) {
	c.renderIntake(w, req, nil)
}

func (c *Console) renderIntake(w http.ResponseWriter, req *http.Request, v *Verdict) {
	ctx, cancel := ctxOf(req)
	defer cancel()
	g, err := c.src.Gauges(ctx)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	rs := c.src.Refusals()
	d := intake{Refusals: rs, G: g, Verdict: v, Fragment: req.Method == http.MethodGet && req.URL.Query().Get("fragment") == "1"}
	d.ByReason, d.Total = refusalsByReason(rs, c.o.Now().Add(-time.Hour))
	c.write(w, http.StatusOK, "intake", page{Title: "Intake", Data: d})
}

// serveVerify explains a captured request: the form's Authorization value
// and body, checked as intake would now. Neither is shown back.
func (c *Console) serveVerify(w http.ResponseWriter, req *http.Request) {
	auth := strings.TrimSpace(req.PostFormValue("authorization"))
	if k, v, ok := strings.Cut(auth, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "authorization") {
		auth = strings.TrimSpace(v)
	}
	// A textarea posts line breaks as CRLF; a captured body has none of
	// its own unless it was pretty-printed, which the verdict explains.
	body := strings.ReplaceAll(req.PostFormValue("body"), "\r\n", "\n")
	v := c.src.Verify(auth, []byte(body))
	v.Event = string(redact([]byte(v.Event)))
	c.renderIntake(w, req, &v)
}

func fmtTime(t any) string {
	v := timeOf(t)
	if v.IsZero() {
		return "—"
	}
	return v.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtClock is the time of day of t (where the day is said once, e.g. in
// a table's caption).
func fmtClock(t any) string {
	v := timeOf(t)
	if v.IsZero() {
		return "—"
	}
	return v.UTC().Format("15:04:05Z")
}

func fmtDay(t any) string {
	v := timeOf(t)
	if v.IsZero() {
		return "—"
	}
	return v.UTC().Format("2006-01-02")
}

func timeOf(t any) time.Time {
	var v time.Time
	switch x := t.(type) {
	case time.Time:
		v = x
	case Time:
		v = x.Time
	case *time.Time:
		if x != nil {
			v = *x
		}
	}
	return v
}

func fmtSeconds(s float64) string {
	if s < 60 {
		return fmt.Sprintf("%.1fs", s)
	}
	d := time.Duration(math.Round(s)) * time.Second
	return d.String()
}

// fmtBytes is a file size for reading (decimal units, as storage bills).
func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "—"
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

func fmtLag(d time.Duration) string {
	if d < 0 {
		return "−" + fmtLag(-d)
	}
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func fmtAgo(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
