package console

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// callsQuery is the calls page's filter and position.
type callsQuery struct {
	Room, Identity, Disposition string
	// Project is a project name or one of its API keys, as ?project= of
	// the sessions API.
	Project          string
	From, To         time.Time
	FromText, ToText string
	Cursor           uint64
}

func (q callsQuery) Filtered() bool {
	return q.Room != "" || q.Identity != "" || q.Project != "" || q.Disposition != "" || !q.From.IsZero() || !q.To.IsZero()
}

// match: the room name and identities contain the filters (case
// insensitive), the disposition is equal ("active" for open calls), and
// the call overlaps [From, To].
func (q callsQuery) match(r *Report) bool {
	if q.Room != "" && !containsFold(r.RoomName, q.Room) && !containsFold(r.SessionID, q.Room) {
		return false
	}
	if q.Identity != "" && !slices.ContainsFunc(r.Participants, func(p Participant) bool { return containsFold(p.Identity, q.Identity) }) {
		return false
	}
	if q.Project != "" && r.Project != q.Project && r.APIKey != q.Project {
		return false
	}
	if q.Disposition != "" {
		d := r.Disposition
		if r.Active {
			d = "active"
		}
		if d != q.Disposition {
			return false
		}
	}
	if !q.To.IsZero() && r.StartedAt.After(q.To) {
		return false
	}
	if !q.From.IsZero() && !r.Active && !r.EndedAt.IsZero() && r.EndedAt.Before(q.From) {
		return false
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// calls is the calls page's data.
type calls struct {
	Q            callsQuery
	Dispositions []string
	// Projects are the configured projects, offered as a filter when there
	// are several.
	Projects []string
	Counts   counts
	Active   []Report
	Ended    []Report
	// Next resumes with older calls; Scanned is how many stored reports
	// this page read, Exhausted whether the window ran out before the page
	// filled (then Next continues the search).
	Next      string
	Scanned   int
	Window    int
	Exhausted bool
	First     bool
	Fragment  bool
	ReadError string
}

func (c calls) fragment() bool { return c.Fragment }

type counts struct {
	Active, EndedLastHour, DeadLetters int
	Refusals                           []reasonCount
	RefusalsTotal                      int
}

type reasonCount struct {
	Reason string
	Count  int
}

// parseCallsQuery reads the filter; bad times are ignored (and shown
// back as typed).
func parseCallsQuery(v url.Values) callsQuery {
	q := callsQuery{Room: strings.TrimSpace(v.Get("room")), Identity: strings.TrimSpace(v.Get("identity")),
		Disposition: strings.TrimSpace(v.Get("disposition")), Project: strings.TrimSpace(v.Get("project")), FromText: v.Get("from"), ToText: v.Get("to")}
	q.From, q.To = parseWhen(q.FromText), parseWhen(q.ToText)
	q.Cursor, _ = strconv.ParseUint(v.Get("before"), 10, 64)
	return q
}

// parseWhen reads a datetime-local value (taken as UTC) or RFC 3339.
func parseWhen(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (q callsQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("room", q.Room)
	set("identity", q.Identity)
	set("disposition", q.Disposition)
	set("project", q.Project)
	set("from", q.FromText)
	set("to", q.ToText)
	return v
}

// serveCalls: open calls (first page only), then ended calls newest first
// by publication of their report, PageSize at a time. Without a filter a
// page reads exactly PageSize reports from the store (direct reads by
// sequence, backwards); with one it reads at most ScanWindow.
func (c *Console) serveCalls(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := ctxOf(req)
	defer cancel()
	q := parseCallsQuery(req.URL.Query())
	d := calls{Q: q, First: q.Cursor == 0, Window: c.o.ScanWindow, Fragment: req.URL.Query().Get("fragment") == "1",
		Dispositions: []string{"active", "completed", "no_answer", "rejected", "failed", "no_show", "connection_failed", "expired"}}
	if len(c.o.Projects) > 1 {
		d.Projects = c.o.Projects
	}
	now := c.o.Now()

	active, err := c.src.ActiveSessions(ctx)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	d.Counts.Active = len(active)
	if d.First {
		for _, b := range active {
			r, ok := decodeReport(b)
			if !ok {
				continue
			}
			r.Active = r.EndedAt.IsZero()
			if q.match(&r) {
				d.Active = append(d.Active, r)
			}
		}
		sort.SliceStable(d.Active, func(i, j int) bool { return d.Active[i].StartedAt.After(d.Active[j].StartedAt.Time) })
	}
	if q.Disposition != "active" {
		var last uint64
		err = c.src.EndedBefore(ctx, q.Cursor, func(cursor uint64, b []byte) bool {
			d.Scanned++
			last = cursor
			if r, ok := decodeReport(b); ok && q.match(&r) {
				r.Cursor = cursor
				d.Ended = append(d.Ended, r)
			}
			return len(d.Ended) < c.o.PageSize && d.Scanned < c.o.ScanWindow
		})
		if err != nil {
			c.unavailable(w, err)
			return
		}
		if len(d.Ended) == c.o.PageSize || d.Scanned >= c.o.ScanWindow {
			d.Exhausted = len(d.Ended) < c.o.PageSize
			v := q.values()
			v.Set("before", strconv.FormatUint(last, 10))
			d.Next = c.o.Path + "/?" + v.Encode()
		}
	}
	markProjects(len(c.o.Projects) > 1, d.Active, d.Ended)
	if d.Counts.EndedLastHour, err = c.src.EndedSince(ctx, now.Add(-time.Hour)); err != nil {
		c.unavailable(w, err)
		return
	}
	if d.Counts.DeadLetters, err = c.src.DeadLetterCount(ctx); err != nil {
		c.unavailable(w, err)
		return
	}
	d.Counts.Refusals, d.Counts.RefusalsTotal = refusalsByReason(c.src.Refusals(), now.Add(-time.Hour))
	c.write(w, http.StatusOK, "calls", page{Title: "Calls", Data: d})
}

// markProjects has the rows name their project when the receiver has
// several, or when the rows show more than one.
func markProjects(several bool, lists ...[]Report) {
	seen := map[string]bool{}
	for _, l := range lists {
		for _, r := range l {
			seen[r.Project] = true
		}
	}
	if !several && len(seen) < 2 {
		return
	}
	for _, l := range lists {
		for i := range l {
			l[i].ShowProject = true
		}
	}
}

// refusalsByReason counts the refusals since t by reason, most first.
func refusalsByReason(rs []Refusal, since time.Time) ([]reasonCount, int) {
	m := map[string]int{}
	total := 0
	for _, r := range rs {
		if !r.At.Before(since) {
			m[r.Reason]++
			total++
		}
	}
	out := make([]reasonCount, 0, len(m))
	for k, v := range m {
		out = append(out, reasonCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out, total
}
