package servetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

// HeaderOutcome is the header of a 2xx answer that says what intake did:
// "accepted", "duplicate" or "ignored".
const HeaderOutcome = "Lkwh-Outcome"

// Session mirrors the JSON of a session in the sessions API and the
// reports. It is declared here, not imported, so that tests check the wire
// format, a public contract.
type Session struct {
	SessionID                string             `json:"session_id"`
	RoomName                 string             `json:"room_name"`
	RoomSID                  string             `json:"room_sid"`
	BelugaSessionID          string             `json:"beluga_session_id,omitempty"`
	Unmapped                 bool               `json:"unmapped,omitempty"`
	APIKey                   string             `json:"api_key,omitempty"`
	Project                  string             `json:"project,omitempty"`
	StartedAt                time.Time          `json:"started_at"`
	EndedAt                  *time.Time         `json:"ended_at,omitempty"`
	DurationSeconds          float64            `json:"duration_seconds"`
	ParticipantSeconds       float64            `json:"participant_seconds"`
	ParticipantSecondsByKind map[string]float64 `json:"participant_seconds_by_kind"`
	EndReason                string             `json:"end_reason"`
	Disposition              string             `json:"disposition,omitempty"`
	Participants             []Participant      `json:"participants"`
	EventsApplied            int                `json:"events_applied"`
	// The fields of calls, recordings and agent jobs, kept raw: the
	// suites check their presence (livekitwebhook tests check values).
	AgentJobs  []json.RawMessage `json:"agent_jobs,omitempty"`
	Recordings []json.RawMessage `json:"recordings,omitempty"`
	Anomalies  []struct {
		Code  string `json:"code"`
		Count int    `json:"count"`
	} `json:"anomalies,omitempty"`
}

// Participant mirrors one participant of a Session.
type Participant struct {
	SID              string     `json:"sid"`
	Identity         string     `json:"identity"`
	Kind             string     `json:"kind"`
	State            string     `json:"state"`
	JoinedAt         time.Time  `json:"joined_at"`
	LeftAt           *time.Time `json:"left_at,omitempty"`
	Seconds          float64    `json:"seconds"`
	DisconnectReason string     `json:"disconnect_reason,omitempty"`
	Sip              *SIPCall   `json:"sip,omitempty"`
}

// SIPCall mirrors the sip object of a participant of kind sip.
type SIPCall struct {
	CallID           string     `json:"call_id"`
	TrunkID          string     `json:"trunk_id"`
	RuleID           string     `json:"rule_id"`
	PhoneNumber      string     `json:"phone_number"`
	TrunkPhoneNumber string     `json:"trunk_phone_number"`
	Direction        string     `json:"direction"`
	CallStatus       string     `json:"call_status"`
	Outcome          string     `json:"outcome"`
	AnsweredAt       *time.Time `json:"answered_at,omitempty"`
	TalkSeconds      float64    `json:"talk_seconds"`
}

// Participant returns the participant with the given identity, or nil.
func (s *Session) Participant(identity string) *Participant {
	for i := range s.Participants {
		if s.Participants[i].Identity == identity {
			return &s.Participants[i]
		}
	}
	return nil
}

// SessionList is the answer of GET /voice/livekit/sessions.
type SessionList struct {
	Active []Session `json:"active"`
	Ended  []Session `json:"ended"`
}

// Do sends req (with the admin token, if any) and returns the status and
// the body of the answer.
func (s *Serve) Do(req *http.Request) (int, []byte, error) {
	if s.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.AdminToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Get is Do of a GET of path (from the root, with any query).
func (s *Serve) Get(path string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		return 0, nil, err
	}
	return s.Do(req)
}

// TrySessions reads the sessions API (up to 1000 ended sessions).
func (s *Serve) TrySessions() (SessionList, error) {
	var out SessionList
	code, body, err := s.Get(SessionsPath + "?limit=1000")
	if err != nil {
		return out, err
	}
	if code != http.StatusOK {
		return out, fmt.Errorf("GET sessions: %d %s", code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("GET sessions: %w: %s", err, body)
	}
	return out, nil
}

// Sessions returns the active and ended sessions; an error fails the test.
func (s *Serve) Sessions(t testing.TB) (active, ended []Session) {
	t.Helper()
	l, err := s.TrySessions()
	if err != nil {
		t.Fatalf("servetest: %v", err)
	}
	return l.Active, l.Ended
}

// TrySession reads GET sessions/{id}: found is false on 404.
func (s *Serve) TrySession(id string) (sess Session, found bool, err error) {
	code, body, err := s.Get(SessionsPath + "/" + url.PathEscape(id))
	switch {
	case err != nil:
		return sess, false, err
	case code == http.StatusNotFound:
		return sess, false, nil
	case code != http.StatusOK:
		return sess, false, fmt.Errorf("GET session %s: %d %s", id, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &sess); err != nil {
		return sess, false, fmt.Errorf("GET session %s: %w: %s", id, err, body)
	}
	return sess, true, nil
}

// Session is TrySession; errors other than 404 fail the test.
func (s *Serve) Session(t testing.TB, id string) (Session, bool) {
	t.Helper()
	sess, found, err := s.TrySession(id)
	if err != nil {
		t.Fatalf("servetest: %v", err)
	}
	return sess, found
}

// SessionJSON returns the raw JSON object of GET sessions/{id}, to check
// the wire format itself.
func (s *Serve) SessionJSON(t testing.TB, id string) map[string]any {
	t.Helper()
	code, body, err := s.Get(SessionsPath + "/" + url.PathEscape(id))
	if err != nil || code != http.StatusOK {
		t.Fatalf("servetest: GET session %s: %d %v %s", id, code, err, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("servetest: GET session %s: %v", id, err)
	}
	return m
}

// WaitActive polls the sessions API until a session matching match is
// active, and returns it; it fails the test after timeout.
func (s *Serve) WaitActive(t testing.TB, timeout time.Duration, what string, match func(Session) bool) Session {
	t.Helper()
	return s.wait(t, timeout, what+" (active)", func(l SessionList) []Session { return l.Active }, match)
}

// WaitEnded polls the sessions API until a session matching match has
// ended, and returns it; it fails the test after timeout.
func (s *Serve) WaitEnded(t testing.TB, timeout time.Duration, what string, match func(Session) bool) Session {
	t.Helper()
	return s.wait(t, timeout, what+" (ended)", func(l SessionList) []Session { return l.Ended }, match)
}

func (s *Serve) wait(t testing.TB, timeout time.Duration, what string, list func(SessionList) []Session, match func(Session) bool) Session {
	t.Helper()
	var got Session
	var last SessionList
	var lastErr error
	err := poll(context.Background(), timeout, 50*time.Millisecond, func() bool {
		l, err := s.TrySessions()
		if err != nil {
			lastErr = err
			return false
		}
		last = l
		for _, x := range list(l) {
			if match(x) {
				got = x
				return true
			}
		}
		return false
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", "  ")
		t.Fatalf("servetest: no session %s within %v (last error: %v); last sessions:\n%s", what, timeout, lastErr, b)
	}
	return got
}

// BySessionID matches a session by its session id.
func BySessionID(id string) func(Session) bool {
	return func(x Session) bool { return x.SessionID == id }
}

// ByRoomSID matches a session by its room sid.
func ByRoomSID(sid string) func(Session) bool {
	return func(x Session) bool { return x.RoomSID == sid }
}

// PostRaw signs body as LiveKit does (livekitwebhooktest, serve's key) and
// posts it to the webhook URL; it returns the answer's status, header and
// body.
func (s *Serve) PostRaw(body []byte) (code int, header http.Header, answer []byte, err error) {
	req, err := livekitwebhooktest.NewRawRequest(context.Background(), s.WebhookURL(), s.APIKey, s.APISecret, body)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, answer, err
}

// TryPost marshals and signs ev as LiveKit does, posts it, and returns the
// status and outcome of the answer ("" for a refusal).
func (s *Serve) TryPost(ev *livekit.WebhookEvent) (code int, outcome string, err error) {
	body, err := livekitwebhooktest.Marshal(ev)
	if err != nil {
		return 0, "", fmt.Errorf("marshal event: %w", err)
	}
	code, hdr, _, err := s.PostRaw(body)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", ev.GetEvent(), err)
	}
	return code, hdr.Get(HeaderOutcome), nil
}

// Post is TryPost; an error fails the test. Use TryPost from other
// goroutines.
func (s *Serve) Post(t testing.TB, ev *livekit.WebhookEvent) (code int, outcome string) {
	t.Helper()
	code, outcome, err := s.TryPost(ev)
	if err != nil {
		t.Fatalf("servetest: %v", err)
	}
	return code, outcome
}
