package lkserver

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// A SIP call's participant, joined the way livekit-sip joins a room for an
// outbound call (github.com/livekit/sip at be5d3f5, pkg/sip/room.go Connect
// and pkg/sip/outbound.go), or for an inbound one (pkg/sip/inbound.go, read
// at 0032012: sip.ruleID among the attributes, "ringing" at join): no SIP
// service runs here, but livekit-server sees exactly the participant
// livekit-sip would be.
//
//   - The token is protocol's sip.BuildSIPToken (sipToken) (kind SIP,
//     canUpdateOwnMetadata) carrying only the attributes livekit-sip puts in
//     it: sip.callID, sip.trunkID, sip.ruleID, sip.trunkPhoneNumber,
//     sip.phoneNumber.
//   - The join request carries every attribute (lksdk.WithExtraAttributes),
//     among them sip.callStatus "dialing" (outbound connectToRoom), and the
//     SDK sets them again once joined (LocalParticipant.SetAttributes).
//   - It publishes its audio track at once (livekit-sip creates it early to
//     play a dial tone while the SIP side rings).
//   - Status changes are LocalParticipant.SetAttributes of sip.callStatus
//     (setStatus): "ringing" on a 18x, "active" once answered, "hangup"
//     when it hangs up; an unavailable or rejecting callee sets none.
//   - It leaves with Room.DisconnectWithReason of the call's end
//     (CallStatus.DisconnectReason: CLIENT_INITIATED for a hang-up,
//     USER_UNAVAILABLE, USER_REJECTED), a leave request livekit-server
//     1.13.5 maps to that reason in participant_left.

// SIPCall describes the call of JoinSIP.
type SIPCall struct {
	CallID, TrunkID string
	// RuleID is the dispatch rule of an inbound call (sip.ruleID, set by
	// the dispatch rule's evaluation); empty for an outbound call.
	RuleID string
	// PhoneNumber is the number outside LiveKit (the callee of an outbound
	// call, the caller of an inbound one), TrunkPhoneNumber the trunk's
	// number, Hostname the other side's SIP host (set unless the number is
	// hidden; rpc.NewCreateSIPParticipantRequest, EvaluateDispatchRule).
	PhoneNumber, TrunkPhoneNumber, Hostname string
	// Status is sip.callStatus at join: "" is "dialing" (outbound
	// connectToRoom); livekit-sip joins an inbound call "ringing"
	// (inbound.go joinRoom, without a PIN prompt) and sets "active" once
	// the room subscribed to it.
	Status string
}

// SIPParticipant is a joined SIP participant.
type SIPParticipant struct {
	Room     *lksdk.Room
	Identity string
	srv      *Server
	room     string
}

// tokenAttrs are the attributes livekit-sip puts in the token it signs
// (pkg/sip/room.go); the rest go with the join request.
var tokenAttrs = []string{
	livekit.AttrSIPCallID,
	livekit.AttrSIPTrunkID,
	livekit.AttrSIPDispatchRuleID,
	livekit.AttrSIPTrunkNumber,
	livekit.AttrSIPPhoneNumber,
}

// JoinSIP joins identity to room as livekit-sip's participant of call
// (outbound and dialing, or as call.RuleID and call.Status say), publishing
// its audio, and waits until livekit-server holds its attributes.
func JoinSIP(t testing.TB, srv *Server, room, identity string, call SIPCall) *SIPParticipant {
	t.Helper()
	attrs := map[string]string{
		livekit.AttrSIPCallID:      call.CallID,
		livekit.AttrSIPTrunkID:     call.TrunkID,
		livekit.AttrSIPPhoneNumber: call.PhoneNumber,
		livekit.AttrSIPHostName:    call.Hostname,
		livekit.AttrSIPTrunkNumber: call.TrunkPhoneNumber,
		livekit.AttrSIPCallStatus:  "dialing",
	}
	if call.RuleID != "" {
		attrs[livekit.AttrSIPDispatchRuleID] = call.RuleID
	}
	if call.Status != "" {
		attrs[livekit.AttrSIPCallStatus] = call.Status
	}
	inToken := map[string]string{}
	for _, k := range tokenAttrs {
		if v, ok := attrs[k]; ok {
			inToken[k] = v
		}
	}
	token, err := sipToken(srv.APIKey, srv.APISecret, room, identity, "Phone "+call.PhoneNumber, inToken)
	if err != nil {
		t.Fatalf("lkserver: SIP token: %v", err)
	}
	r := JoinWith(t, srv, room, identity, JoinOptions{
		Kind: livekit.ParticipantInfo_SIP, PublishAudio: true, Token: token, Attributes: attrs,
	})
	r.LocalParticipant.SetAttributes(attrs)
	p := &SIPParticipant{Room: r, Identity: identity, srv: srv, room: room}
	p.waitAttrs(t, attrs)
	return p
}

// SetAttributes sets attributes as livekit-sip does (the participant's own
// update, not RoomService) and waits until livekit-server holds them.
func (p *SIPParticipant) SetAttributes(t testing.TB, attrs map[string]string) {
	t.Helper()
	p.Room.LocalParticipant.SetAttributes(attrs)
	p.waitAttrs(t, attrs)
}

// SetStatus sets sip.callStatus (livekit-sip's setStatus).
func (p *SIPParticipant) SetStatus(t testing.TB, status string) {
	t.Helper()
	p.SetAttributes(t, map[string]string{livekit.AttrSIPCallStatus: status})
}

// Answer marks the call answered at: sip.callStatus "active" and
// lk.sip.answerTime (Unix ms, as protocol's sip.AnswerTimeAttributes writes
// it; newer SIP services set it, livekit-sip at be5d3f5 only sets the
// status).
func (p *SIPParticipant) Answer(t testing.TB, at time.Time) {
	t.Helper()
	p.SetAttributes(t, map[string]string{
		livekit.AttrSIPCallStatus: "active",
		livekit.AttrSIPAnswerTime: strconv.FormatInt(at.UnixMilli(), 10),
	})
}

// sipToken is protocol v1.54.0's sip.BuildSIPToken (sip/token.go), copied
// rather than imported: that package pulls a phone number library into
// this module for one function.
func sipToken(key, secret, room, identity, name string, attrs map[string]string) (string, error) {
	t := true
	return auth.NewAccessToken(key, secret).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:             true,
			Room:                 room,
			CanSubscribe:         &t,
			CanPublish:           &t,
			CanPublishData:       &t,
			CanUpdateOwnMetadata: &t,
		}).
		SetIdentity(identity).
		SetName(name).
		SetAttributes(attrs).
		SetKind(livekit.ParticipantInfo_SIP).
		SetValidFor(24 * time.Hour).
		SetAllowSensitiveCredentials(true).
		ToJWT()
}

// Hangup ends an answered call as livekit-sip does when the callee hangs
// up: sip.callStatus "hangup", then a leave with CLIENT_INITIATED.
func (p *SIPParticipant) Hangup(t testing.TB) {
	t.Helper()
	p.SetStatus(t, "hangup")
	p.Room.DisconnectWithReason(livekit.DisconnectReason_CLIENT_INITIATED)
}

// End leaves with reason and no status change, as livekit-sip ends a call
// whose callee was unavailable (USER_UNAVAILABLE) or rejected it
// (USER_REJECTED).
func (p *SIPParticipant) End(reason livekit.DisconnectReason) {
	p.Room.DisconnectWithReason(reason)
}

// waitAttrs polls RoomService until the participant's attributes include
// want.
func (p *SIPParticipant) waitAttrs(t testing.TB, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs := p.srv.RoomService()
	var last map[string]string
	err := WaitFor(ctx, func() bool {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		info, err := rs.GetParticipant(c, &livekit.RoomParticipantIdentity{Room: p.room, Identity: p.Identity})
		if err != nil {
			return false
		}
		last = info.GetAttributes()
		for k, v := range want {
			if last[k] != v {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("lkserver: %s: attributes %v not applied by livekit-server within 30s; last %v", p.Identity, want, maps.Clone(last))
	}
}
