package lifecycle

import (
	"strconv"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
)

// SIP call outcomes (Participant.Sip.Outcome).
const (
	SIPAnswered  = "answered"
	SIPNoAnswer  = "no_answer"
	SIPRejected  = "rejected"
	SIPFailed    = "failed"
	SIPCancelled = "cancelled"
)

// SIP call directions (Participant.Sip.Direction).
const (
	SIPInbound  = "inbound"
	SIPOutbound = "outbound"
)

// Session dispositions of a room whose only callers were SIP calls that were
// never answered: the outcome of the call that ended last. A cancelled call
// gives DispositionNoShow.
const (
	DispositionNoAnswer = "no_answer"
	DispositionRejected = "rejected"
	DispositionFailed   = "failed"
)

// sipActive is the sip.callStatus value livekit-sip sets once the call is
// answered (its other values: dialing, ringing, automation, hangup).
const sipActive = "active"

// sipStatusRank orders the sip.callStatus values livekit-sip sets by the
// progress of a call, to break ties between events of the same second.
// Unknown values rank lowest and are kept as they are.
func sipStatusRank(s string) int {
	switch s {
	case "dialing":
		return 1
	case "ringing":
		return 2
	case "automation":
		return 3
	case sipActive:
		return 4
	case "hangup":
		return 5
	}
	return 0
}

// SIPState is the folded SIP attributes of one participant (see
// livekit.AttrSIP*). It is the zero value when no SIP attribute was seen.
type SIPState struct {
	// On is true once an event carried any sip.* or lk.sip.* attribute.
	On bool `json:"on,omitempty"`
	// CallID, TrunkID, RuleID, Phone and TrunkPhone are the sip.callID,
	// sip.trunkID, sip.ruleID, sip.phoneNumber and sip.trunkPhoneNumber
	// attributes (smallest non-empty value seen).
	CallID     string `json:"cid,omitempty"`
	TrunkID    string `json:"tid,omitempty"`
	RuleID     string `json:"rid,omitempty"`
	Phone      string `json:"ph,omitempty"`
	TrunkPhone string `json:"tph,omitempty"`
	// Status is the sip.callStatus of the event with the latest createdAt
	// that carried one (StatusSec); ties go to the later call stage, then to
	// the larger string.
	Status    string `json:"st,omitempty"`
	StatusSec int64  `json:"sts,omitempty"`
	// ActiveSec is the earliest createdAt of an event whose sip.callStatus
	// was "active" (0: none).
	ActiveSec int64 `json:"act,omitempty"`
	// AnswerMs is the earliest lk.sip.answerTime seen, unix ms (0: none or
	// not a number).
	AnswerMs int64 `json:"ans,omitempty"`
}

// hasSIPAttr reports whether attrs hold a SIP attribute.
func hasSIPAttr(attrs map[string]string) bool {
	for k := range attrs {
		if strings.HasPrefix(k, livekit.AttrSIPPrefix) || strings.HasPrefix(k, "lk.sip.") {
			return true
		}
	}
	return false
}

// fold merges the SIP attributes of one event (createdAt at) into s.
// Every field is combined order-independently.
func (s *SIPState) fold(attrs map[string]string, at int64) {
	if !hasSIPAttr(attrs) {
		return
	}
	s.On = true
	s.CallID = minNonEmpty(s.CallID, attrs[livekit.AttrSIPCallID])
	s.TrunkID = minNonEmpty(s.TrunkID, attrs[livekit.AttrSIPTrunkID])
	s.RuleID = minNonEmpty(s.RuleID, attrs[livekit.AttrSIPDispatchRuleID])
	s.Phone = minNonEmpty(s.Phone, attrs[livekit.AttrSIPPhoneNumber])
	s.TrunkPhone = minNonEmpty(s.TrunkPhone, attrs[livekit.AttrSIPTrunkNumber])
	if st := attrs[livekit.AttrSIPCallStatus]; st != "" {
		at := max(at, 0)
		if s.Status == "" || sipStatusAfter(at, st, s.StatusSec, s.Status) {
			s.Status, s.StatusSec = st, at
		}
		if st == sipActive {
			s.ActiveSec = minPos(s.ActiveSec, at)
		}
	}
	if v := attrs[livekit.AttrSIPAnswerTime]; v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.AnswerMs = minPos(s.AnswerMs, ms)
		}
	}
}

// sipStatusAfter reports whether status a seen at aSec supersedes status b
// seen at bSec: later createdAt, then later call stage, then the larger
// string.
func sipStatusAfter(aSec int64, a string, bSec int64, b string) bool {
	if aSec != bSec {
		return aSec > bSec
	}
	if ra, rb := sipStatusRank(a), sipStatusRank(b); ra != rb {
		return ra > rb
	}
	return a > b
}

// SIP is the SIP call of a participant of kind sip that carried SIP
// attributes, in the Session view. Its JSON field names are a public
// contract.
type SIP struct {
	// CallID is LiveKit's SIP call id (sip.callID).
	CallID string `json:"call_id"`
	// TrunkID is the SIP trunk used (sip.trunkID).
	TrunkID string `json:"trunk_id"`
	// RuleID is the dispatch rule of an inbound call (sip.ruleID).
	RuleID string `json:"rule_id"`
	// PhoneNumber is the number outside LiveKit: caller (inbound) or callee
	// (outbound) (sip.phoneNumber).
	PhoneNumber string `json:"phone_number"`
	// TrunkPhoneNumber is the trunk's number (sip.trunkPhoneNumber).
	TrunkPhoneNumber string `json:"trunk_phone_number"`
	// Direction is inbound when a dispatch rule id is present, else outbound.
	Direction string `json:"direction"`
	// CallStatus is the sip.callStatus of the latest event that carried one.
	CallStatus string `json:"call_status"`
	// Outcome is answered, no_answer, rejected, failed or cancelled; empty
	// while an unanswered call is still ringing in an active view.
	Outcome string `json:"outcome"`
	// AnsweredAt is when the call was answered; absent if it never was.
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	// TalkSeconds is left (or the view's reference time) minus AnsweredAt.
	TalkSeconds float64 `json:"talk_seconds"`
}

// answeredMs is the answer time of a SIP call in unix ms (0: never
// answered), see the package documentation.
func (s SIPState) answeredMs(joinedMs int64) int64 {
	switch {
	case s.AnswerMs > 0:
		return s.AnswerMs
	case s.RuleID != "":
		return joinedMs
	case s.ActiveSec > 0:
		return s.ActiveSec * 1000
	}
	return 0
}

// sipOutcome is the outcome of an unanswered call from how it ended:
// reason is the disconnect reason of its leave (else of its abort).
func sipOutcome(reason int32, left, aborted, ended bool) string {
	switch livekit.DisconnectReason(reason) {
	case livekit.DisconnectReason_USER_UNAVAILABLE:
		return SIPNoAnswer
	case livekit.DisconnectReason_USER_REJECTED:
		return SIPRejected
	case livekit.DisconnectReason_SIP_TRUNK_FAILURE, livekit.DisconnectReason_MEDIA_FAILURE,
		livekit.DisconnectReason_JOIN_FAILURE, livekit.DisconnectReason_CONNECTION_TIMEOUT:
		return SIPFailed
	}
	switch {
	case aborted && !left:
		return SIPFailed
	case left || ended:
		return SIPCancelled
	}
	return ""
}

// sipDisposition maps the outcome of the last unanswered call to the
// session disposition.
func sipDisposition(outcome string) string {
	switch outcome {
	case SIPNoAnswer:
		return DispositionNoAnswer
	case SIPRejected:
		return DispositionRejected
	case SIPFailed:
		return DispositionFailed
	}
	return DispositionNoShow
}

// sipCall is the SIP view of a participant of kind sip that carried SIP
// attributes, and its talk time in ms; ok is false for any other
// participant. joinedMs is its join time, endMs where its time runs to
// (left_at, or the view's reference time; 0 for an aborted one).
func (p ParticipantState) sipCall(joinedMs, endMs int64, ended bool) (call *SIP, talkMs int64, ok bool) {
	if !p.SIP.On || livekit.ParticipantInfo_Kind(p.Kind) != livekit.ParticipantInfo_SIP {
		return nil, 0, false
	}
	s := p.SIP
	call = &SIP{
		CallID:           s.CallID,
		TrunkID:          s.TrunkID,
		RuleID:           s.RuleID,
		PhoneNumber:      s.Phone,
		TrunkPhoneNumber: s.TrunkPhone,
		Direction:        SIPOutbound,
		CallStatus:       s.Status,
	}
	if s.RuleID != "" {
		call.Direction = SIPInbound
	}
	if ans := s.answeredMs(joinedMs); ans > 0 {
		t := msTime(ans)
		call.AnsweredAt, call.Outcome = &t, SIPAnswered
		talkMs = max(endMs-ans, 0)
		call.TalkSeconds = msSeconds(talkMs)
		return call, talkMs, true
	}
	reason := p.AbortReason
	if p.Left {
		reason = p.LeftReason
	}
	call.Outcome = sipOutcome(reason, p.Left, p.Aborted, ended)
	return call, 0, true
}

// unansweredCall is the unanswered SIP call that ended last (latest
// left_at, else join time for an aborted one; ties: larger SID).
type unansweredCall struct {
	endMs   int64
	sid     string
	outcome string
}

func (c unansweredCall) later(p Participant, joinedMs int64) unansweredCall {
	end := joinedMs
	if p.LeftAt != nil {
		end = p.LeftAt.UnixMilli()
	}
	if c.sid == "" || end > c.endMs || (end == c.endMs && p.SID > c.sid) {
		return unansweredCall{endMs: end, sid: p.SID, outcome: p.Sip.Outcome}
	}
	return c
}
