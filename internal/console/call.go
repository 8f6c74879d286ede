package console

import (
	"cmp"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Bounds of one call page: a room with more stored events shows the first
// maxEvents (a LiveKit room sends a few per participant).
const (
	maxEvents = 1000
	maxTrail  = 5000
)

// callPage is one call.
type callPage struct {
	R        Report
	Active   bool
	TraceID  string
	TraceURL string
	Timeline []timelineRow
	// ReportHooks are the OnSessionEnded calls; Other are trail facts of
	// events not stored under the room (or expired from the stream).
	ReportHooks []hookCall
	Other       []TrailEntry
	Truncated   bool
	Kinds       []kindSeconds
	// Phone are the participants that stand for a phone call (SIP).
	Phone []Participant
}

type kindSeconds struct {
	Kind    string
	Seconds float64
}

// timelineRow is one stored event and what happened to it.
type timelineRow struct {
	E          StoredEvent
	Raw        string
	CreatedAt  time.Time
	Lag        string
	AppliedAt  time.Time
	Duplicates []TrailEntry
	Late       bool
	DeadLetter *TrailEntry
	Hooks      []hookCall
	Summary    string
}

// hookCall is one call of a hook, numbered per (event, hook).
type hookCall struct {
	Hook    string
	Attempt int
	Error   string
	At      time.Time
}

func (c *Console) serveCall(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := ctxOf(req)
	defer cancel()
	sid, project := req.URL.Query().Get("sid"), req.URL.Query().Get("project")
	raw, tp, ok, err := c.src.Session(ctx, project, sid)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	if !ok || sid == "" {
		c.write(w, http.StatusNotFound, "denied", page{Title: "Unknown call", Nav: "calls", Data: "No call with room sid " + strconv.Quote(sid) + "."})
		return
	}
	r, _ := decodeReport(raw)
	d := callPage{R: r, Active: r.EndedAt.IsZero(), TraceID: traceID(tp)}
	if d.TraceID != "" && c.o.TraceURL != "" {
		d.TraceURL = strings.ReplaceAll(c.o.TraceURL, "{trace_id}", d.TraceID)
	}
	for k, s := range r.ParticipantSecondsByKind {
		d.Kinds = append(d.Kinds, kindSeconds{k, s})
	}
	sort.Slice(d.Kinds, func(i, j int) bool { return d.Kinds[i].Kind < d.Kinds[j].Kind })
	for _, p := range r.Participants {
		if p.SIP != nil {
			d.Phone = append(d.Phone, p)
		}
	}
	events, err := c.src.RoomEvents(ctx, r.RoomName, r.RoomSID, maxEvents)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	trail, err := c.src.Trail(ctx, cmp.Or(r.Project, project), r.RoomSID, maxTrail)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	d.Truncated = len(events) >= maxEvents
	d.Timeline, d.ReportHooks, d.Other = timeline(events, trail)
	c.write(w, http.StatusOK, "call", page{Title: "Call " + r.RoomName, Nav: "calls", Data: d})
}

// timeline joins the stored events with the trail, in LiveKit's createdAt
// order (stream order among equals).
func timeline(events []StoredEvent, trail []TrailEntry) ([]timelineRow, []hookCall, []TrailEntry) {
	rows := make([]timelineRow, len(events))
	byID := make(map[string]*timelineRow, len(events))
	for i, e := range events {
		row := &rows[i]
		row.E, row.Raw = e, string(redact(e.Body))
		row.CreatedAt, row.Summary = describe(e.Body)
		if !row.CreatedAt.IsZero() {
			row.Lag = fmtLag(e.StoredAt.Sub(row.CreatedAt))
		}
		if e.ID != "" {
			if _, dup := byID[e.ID]; !dup {
				byID[e.ID] = row
			}
		}
	}
	var report []hookCall
	var other []TrailEntry
	attempts := map[string]int{}
	for _, t := range trail {
		row := byID[t.EventID]
		if t.Kind == "hook" {
			key := t.EventID + "\x00" + t.Hook
			attempts[key]++
			hc := hookCall{Hook: t.Hook, Attempt: attempts[key], Error: t.Error, At: t.At}
			switch {
			case t.Event == "session_report":
				report = append(report, hc)
			case row != nil:
				row.Hooks = append(row.Hooks, hc)
			default:
				other = append(other, t)
			}
			continue
		}
		if row == nil {
			other = append(other, t)
			continue
		}
		switch t.Kind {
		case "applied":
			if row.AppliedAt.IsZero() {
				row.AppliedAt = t.At
			}
		case "duplicate":
			row.Duplicates = append(row.Duplicates, t)
		case "late":
			row.Late = true
		case "dead_letter":
			row.DeadLetter = &t
		default:
			other = append(other, t)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i].CreatedAt, rows[j].CreatedAt
		if !a.Equal(b) {
			return a.Before(b)
		}
		return rows[i].E.Seq < rows[j].E.Seq
	})
	return rows, report, other
}

// describe reads an event's createdAt and a one-line summary (participant
// identity, kind, SIP call status and disconnect reason; track; egress;
// agent job) without keeping anything else of it.
func describe(body []byte) (time.Time, string) {
	var ev struct {
		CreatedAt   json.RawMessage `json:"createdAt"`
		Participant *struct {
			Identity         string            `json:"identity"`
			Kind             string            `json:"kind"`
			DisconnectReason string            `json:"disconnectReason"`
			Attributes       map[string]string `json:"attributes"`
		} `json:"participant"`
		Job *struct {
			ID        string `json:"id"`
			AgentName string `json:"agentName"`
			State     *struct {
				Status string `json:"status"`
			} `json:"state"`
		} `json:"job"`
		EgressInfo *struct {
			EgressID string `json:"egressId"`
			Status   string `json:"status"`
		} `json:"egressInfo"`
		Track *struct {
			Sid  string `json:"sid"`
			Type string `json:"type"`
		} `json:"track"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return time.Time{}, ""
	}
	var at time.Time
	if s := strings.Trim(string(ev.CreatedAt), `"`); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			at = time.Unix(n, 0).UTC()
		}
	}
	var parts []string
	if p := ev.Participant; p != nil && p.Identity != "" {
		s := p.Identity
		if p.Kind != "" {
			s += " (" + strings.ToLower(p.Kind) + ")"
		}
		if st := p.Attributes["sip.callStatus"]; st != "" {
			s += " " + st
		}
		parts = append(parts, s)
		if p.DisconnectReason != "" && p.DisconnectReason != "UNKNOWN_REASON" {
			parts = append(parts, p.DisconnectReason)
		}
	}
	if t := ev.Track; t != nil && t.Sid != "" {
		parts = append(parts, "track "+t.Sid+" "+strings.ToLower(t.Type))
	}
	if e := ev.EgressInfo; e != nil && e.EgressID != "" {
		parts = append(parts, strings.TrimSpace("egress "+e.EgressID+" "+e.Status))
	}
	if j := ev.Job; j != nil && j.ID != "" {
		s := "job " + j.ID
		if j.AgentName != "" {
			s += " " + j.AgentName
		}
		if j.State != nil && j.State.Status != "" {
			s += " " + j.State.Status
		}
		parts = append(parts, s)
	}
	return at, strings.Join(parts, ", ")
}

// traceID is the trace id of a W3C traceparent ("" if malformed).
func traceID(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || strings.Trim(parts[1], "0") == "" {
		return ""
	}
	for _, c := range parts[1] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return ""
		}
	}
	return parts[1]
}
