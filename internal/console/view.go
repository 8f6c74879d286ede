package console

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Report is the console's view of a session or report JSON: the public
// fields, and those the SIP, recordings, agent jobs and projects work adds
// (rendered when present). Unknown fields are ignored; a field of an
// unexpected type is left empty rather than failing the page.
type Report struct {
	SessionID                string             `json:"session_id"`
	RoomName                 string             `json:"room_name"`
	RoomSID                  string             `json:"room_sid"`
	BelugaSessionID          string             `json:"beluga_session_id"`
	Unmapped                 bool               `json:"unmapped"`
	StartedAt                Time               `json:"started_at"`
	EndedAt                  Time               `json:"ended_at"`
	DurationSeconds          float64            `json:"duration_seconds"`
	ParticipantSeconds       float64            `json:"participant_seconds"`
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	EndReason                string             `json:"end_reason"`
	Disposition              string             `json:"disposition"`
	Participants             []Participant      `json:"participants"`
	EventsApplied            int                `json:"events_applied"`
	ExpireReason             string             `json:"expire_reason"`

	Project    string      `json:"project"`
	APIKey     string      `json:"api_key"`
	Recordings []Recording `json:"recordings"`
	AgentJobs  []AgentJob  `json:"agent_jobs"`
	Anomalies  []Anomaly   `json:"anomalies"`
	Active     bool        `json:"-"` // not reported yet
	// ShowProject: the calls list names each call's project (there are
	// several).
	ShowProject bool   `json:"-"`
	Cursor      uint64 `json:"-"` // where the next page of ended calls starts
}

// Participant is one participant of a Report.
type Participant struct {
	SID              string   `json:"sid"`
	Identity         string   `json:"identity"`
	Kind             string   `json:"kind"`
	State            string   `json:"state"`
	JoinedAt         Time     `json:"joined_at"`
	LeftAt           Time     `json:"left_at"`
	Seconds          float64  `json:"seconds"`
	DisconnectReason string   `json:"disconnect_reason"`
	SIP              *SIPCall `json:"sip"`
}

// SIPCall is a SIP participant's call.
type SIPCall struct {
	CallID           string  `json:"call_id"`
	TrunkID          string  `json:"trunk_id"`
	RuleID           string  `json:"rule_id"`
	PhoneNumber      string  `json:"phone_number"`
	TrunkPhoneNumber string  `json:"trunk_phone_number"`
	Direction        string  `json:"direction"`
	CallStatus       string  `json:"call_status"`
	Outcome          string  `json:"outcome"`
	AnsweredAt       Time    `json:"answered_at"`
	TalkSeconds      float64 `json:"talk_seconds"`
}

// Recording is one egress of the room.
type Recording struct {
	EgressID        string  `json:"egress_id"`
	Status          string  `json:"status"`
	StartedAt       Time    `json:"started_at"`
	EndedAt         Time    `json:"ended_at"`
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error"`
	Files           []File  `json:"files"`
}

// File is one file of a recording.
type File struct {
	Filename        string  `json:"filename"`
	Location        string  `json:"location"`
	Size            int64   `json:"size"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// AgentJob is one agent job of the room.
type AgentJob struct {
	JobID     string `json:"job_id"`
	AgentName string `json:"agent_name"`
	Status    string `json:"status"`
	StartedAt Time   `json:"started_at"`
	EndedAt   Time   `json:"ended_at"`
	Error     string `json:"error"`
}

// Anomaly is something the events did not close by themselves.
type Anomaly struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
}

// decodeReport decodes a session or report JSON, field by field where the
// whole does not decode, so that one odd field never hides the call.
func decodeReport(b []byte) (Report, bool) {
	var r Report
	if err := json.Unmarshal(b, &r); err == nil {
		return r, true
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return Report{}, false
	}
	r = Report{}
	for k, v := range fields {
		one, _ := json.Marshal(map[string]json.RawMessage{k: v})
		_ = json.Unmarshal(one, &r) // a field that fails stays empty
	}
	return r, true
}

// Identities joins the participants' identities (for filtering).
func (r *Report) Identities() []string {
	out := make([]string, 0, len(r.Participants))
	for _, p := range r.Participants {
		out = append(out, p.Identity)
	}
	return out
}

// Time is a time in a report: RFC 3339, or Unix seconds or milliseconds
// as a number; null or absent is the zero time.
type Time struct{ time.Time }

// UnmarshalJSON reads any of the forms.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil || s == "" {
			return nil
		}
		if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
			t.Time = v
		}
		return nil
	}
	n, err := strconv.ParseFloat(string(b), 64)
	if err != nil || n <= 0 {
		return nil
	}
	if n > 1e11 { // milliseconds
		t.Time = time.UnixMilli(int64(n))
	} else {
		t.Time = time.Unix(int64(n), 0)
	}
	return nil
}
