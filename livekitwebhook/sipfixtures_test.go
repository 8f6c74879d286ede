package livekitwebhook

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
)

// TestRealSIPFixturesReplay replays the outbound SIP calls captured from a
// real livekit-server v1.13.5 (e2e/sip_e2e_test.go; the call's participant
// joined as livekit-sip joins) with the clock of their arrival, and checks
// the call in the report against the captured participant_joined and
// participant_left: the answered call counts from lk.sip.answerTime to the
// leave's createdAt, the unanswered one is no_answer.
func TestRealSIPFixturesReplay(t *testing.T) {
	for _, tc := range []struct {
		dir, disposition, outcome, status string
	}{
		{"../testdata/livekit-v1.13.5-sip-answered", DispositionCompleted, SIPOutcomeAnswered, "hangup"},
		{"../testdata/livekit-v1.13.5-sip-no-answer", DispositionNoAnswer, SIPOutcomeNoAnswer, "ringing"},
	} {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			rep, left := replayFixtures(t, tc.dir)
			if rep.Disposition != tc.disposition {
				t.Errorf("disposition = %q, want %q", rep.Disposition, tc.disposition)
			}
			var p *Participant
			for i := range rep.Participants {
				if rep.Participants[i].Kind == "sip" {
					p = &rep.Participants[i]
				}
			}
			if p == nil || p.Sip == nil || p.SID != left.GetParticipant().GetSid() {
				t.Fatalf("participants %+v, want the captured SIP participant with a sip object", rep.Participants)
			}
			lp := left.GetParticipant()
			attrs := lp.GetAttributes()
			c := p.Sip
			if c.CallID != attrs[livekit.AttrSIPCallID] || c.TrunkID != attrs[livekit.AttrSIPTrunkID] ||
				c.PhoneNumber != attrs[livekit.AttrSIPPhoneNumber] || c.TrunkPhoneNumber != attrs[livekit.AttrSIPTrunkNumber] ||
				c.RuleID != "" || c.Direction != "outbound" || c.CallStatus != tc.status || c.Outcome != tc.outcome {
				t.Errorf("sip = %+v, want the captured attributes %v, outbound, %s, %s", c, attrs, tc.status, tc.outcome)
			}
			if p.DisconnectReason != lp.GetDisconnectReason().String() || p.LeftAt == nil || p.LeftAt.Unix() != left.GetCreatedAt() {
				t.Errorf("participant %+v, want left at %d with %v", p, left.GetCreatedAt(), lp.GetDisconnectReason())
			}
			if tc.outcome != SIPOutcomeAnswered {
				if c.AnsweredAt != nil || c.TalkSeconds != 0 || p.Seconds != 0 || rep.ParticipantSecondsByKind["sip"] != 0 {
					t.Errorf("unanswered call %+v, seconds %v: want no answered_at, 0 talk", c, p.Seconds)
				}
				return
			}
			answerMs, err := strconv.ParseInt(attrs[livekit.AttrSIPAnswerTime], 10, 64)
			if err != nil {
				t.Fatalf("captured participant_left has no lk.sip.answerTime: %v", attrs)
			}
			talk := float64(left.GetCreatedAt()*1000-answerMs) / 1000
			if c.AnsweredAt == nil || c.AnsweredAt.UnixMilli() != answerMs || c.TalkSeconds != talk || p.Seconds != talk ||
				rep.ParticipantSecondsByKind["sip"] != talk {
				t.Errorf("answered call %+v, seconds %v, by kind %v: want answered_at %d ms, talk %.3f", c, p.Seconds,
					rep.ParticipantSecondsByKind, answerMs, talk)
			}
			if joined := float64(left.GetCreatedAt()*1000-lp.GetJoinedAtMs()) / 1000; talk >= joined-1 {
				t.Errorf("talk %.3f s, time in the room %.3f s: the capture should ring over a second before the answer", talk, joined)
			}
		})
	}
}

// replayFixtures posts every request of dir with the clock fixed to its
// arrival and returns the one report and the participant_left of the SIP
// participant.
func replayFixtures(t *testing.T, dir string) (Report, *livekit.WebhookEvent) {
	t.Helper()
	fx := loadFixturesFrom(t, dir)
	keys, err := os.ReadFile(filepath.Join(dir, "keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	cfg := testConfig(t)
	cfg.APIKey, cfg.APISecret, cfg.Keys = "", "", string(keys)
	var hc hookCounter
	tr := startReceiver(t, cfg, WithHooks(hc.hooks()), withClock(func() time.Time { return time.Unix(now.Load(), 0) }))
	var left *livekit.WebhookEvent
	for _, f := range fx {
		now.Store(f.ReceivedAtUnix)
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, f.request(tr.url))
		if w.Code != http.StatusOK || w.Header().Get(HeaderOutcome) != "accepted" {
			t.Fatalf("%s: %d %s", f.Name, w.Code, w.Body)
		}
		ev := &livekit.WebhookEvent{}
		if err := protojson.Unmarshal([]byte(f.Body), ev); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if ev.GetEvent() == "participant_left" && ev.GetParticipant().GetKind() == livekit.ParticipantInfo_SIP {
			left = ev
		}
	}
	if left == nil {
		t.Fatalf("%s: no participant_left of a SIP participant", dir)
	}
	eventually(t, 15*time.Second, "the report", func() bool { return len(hc.ended()) == 1 })
	rep := hc.ended()[0]
	if rep.EventsApplied != len(fx) {
		t.Errorf("events_applied = %d, want %d", rep.EventsApplied, len(fx))
	}
	return rep, left
}
