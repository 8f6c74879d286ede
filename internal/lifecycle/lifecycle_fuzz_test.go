package lifecycle

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// genSequence is a generated event stream for one or more rooms, in the order
// a single well-behaved sender would produce it (sorted by createdAt).
type genSequence struct {
	events    []*livekit.WebhookEvent
	nameToSID map[string]string // routes ingress events, which carry no room SID
}

var genKinds = []livekit.ParticipantInfo_Kind{
	livekit.ParticipantInfo_STANDARD, livekit.ParticipantInfo_STANDARD, livekit.ParticipantInfo_STANDARD,
	livekit.ParticipantInfo_AGENT, livekit.ParticipantInfo_AGENT,
	livekit.ParticipantInfo_SIP,
	livekit.ParticipantInfo_EGRESS,
	livekit.ParticipantInfo_INGRESS,
	livekit.ParticipantInfo_CONNECTOR,
	livekit.ParticipantInfo_Kind(42), // a kind this protocol version does not know
}

// generate builds a valid random event sequence for 1–3 rooms: room_started
// (sometimes missing), participants of random kinds joining, publishing and
// unpublishing tracks, leaving (or not), aborting, reconnecting under the
// same identity with a new SID, egress and ingress events, unknown events,
// room_finished (sometimes missing) with late events after it, a room_started
// after room_finished, and random gaps.
func generate(seed int64) genSequence {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
	// SIP calls and agent jobs draw from their own stream, so the rest of a
	// seed's sequence is what it was before they were generated.
	r2 := rand.New(rand.NewPCG(uint64(seed)^0x5151, uint64(seed)+0x10b))
	out := genSequence{nameToSID: map[string]string{}}
	counter := 0
	nextID := func() string {
		counter++
		return fmt.Sprintf("EV_%012d", counter)
	}

	nRooms := 1 + r.IntN(3)
	for k := 0; k < nRooms; k++ {
		sid := fmt.Sprintf("RM_%d", k)
		name := fmt.Sprintf("room-%d", k)
		out.nameToSID[name] = sid
		base := int64(1_700_000_000 + r.IntN(1_000_000))
		createdMs := base*1000 + int64(r.IntN(1000))
		full := &livekit.Room{Sid: sid, Name: name, CreationTime: createdMs / 1000, TurnPassword: "turn-secret"}
		if r.IntN(10) < 7 {
			full.CreationTimeMs = createdMs
		}
		bare := &livekit.Room{Sid: sid, Name: name}
		roomFor := func() *livekit.Room {
			if r.IntN(2) == 0 {
				return full
			}
			return bare
		}

		var evs []*livekit.WebhookEvent
		add := func(more ...*livekit.WebhookEvent) {
			for _, ev := range more {
				ev.Id = nextID()
				evs = append(evs, ev)
			}
		}
		maxT := base

		if r.IntN(100) < 85 {
			add(&livekit.WebhookEvent{Event: EventRoomStarted, CreatedAt: base, Room: full})
		}

		type open struct {
			info func(livekit.DisconnectReason) *livekit.ParticipantInfo
		}
		var stillOpen []open

		calls := map[string]sipProfile{} // participant SID -> its SIP call
		phoneRoom := r2.IntN(3) == 0     // every human participant a SIP call
		nPeople := r.IntN(6)
		for j := 0; j < nPeople; j++ {
			kind := genKinds[r.IntN(len(genKinds))]
			if phoneRoom && humanKind(int32(kind)) {
				kind = livekit.ParticipantInfo_SIP
			}
			identity := fmt.Sprintf("user-%d", j)
			sessions := 1
			if r.IntN(4) == 0 {
				sessions = 2 // reconnect under the same identity
			}
			start := base + int64(r.IntN(60))
			for sn := 0; sn < sessions; sn++ {
				psid := fmt.Sprintf("PA_%d_%d_%d", k, j, sn)
				if kind == livekit.ParticipantInfo_SIP && r2.IntN(5) != 0 {
					calls[psid] = newSIPProfile(r2, psid, start)
				}
				joinMs := start*1000 + int64(r.IntN(1000))
				joinMode := r.IntN(10) // 0: no join time, 1-2: seconds only, else both
				info := func(dr livekit.DisconnectReason) *livekit.ParticipantInfo {
					p := &livekit.ParticipantInfo{Sid: psid, Identity: identity, Kind: kind, DisconnectReason: dr}
					switch {
					case joinMode == 0:
					case joinMode <= 2:
						p.JoinedAt = joinMs / 1000
					default:
						p.JoinedAt = joinMs / 1000
						p.JoinedAtMs = joinMs
					}
					return p
				}
				if r.IntN(7) == 0 { // never became active
					t := start + int64(r.IntN(3))
					if r.IntN(3) == 0 {
						add(&livekit.WebhookEvent{Event: EventParticipantJoined, CreatedAt: start, Room: roomFor(), Participant: info(0)})
					}
					add(&livekit.WebhookEvent{Event: EventParticipantConnectionAborted, CreatedAt: t, Room: roomFor(),
						Participant: info(livekit.DisconnectReason(r.IntN(17)))})
					if r.IntN(4) == 0 { // odd but possible: a left for the same sid (left wins)
						t += int64(r.IntN(20))
						add(&livekit.WebhookEvent{Event: EventParticipantLeft, CreatedAt: t, Room: roomFor(),
							Participant: info(livekit.DisconnectReason(r.IntN(17)))})
					}
					maxT = max(maxT, t)
					continue
				}
				if r.IntN(10) != 0 {
					add(&livekit.WebhookEvent{Event: EventParticipantJoined, CreatedAt: start, Room: roomFor(), Participant: info(0)})
				}
				end := start + 1 + int64(r.IntN(120))
				nTracks := r.IntN(3)
				for tr := 0; tr < nTracks; tr++ {
					tsid := fmt.Sprintf("TR_%s_%d", psid, tr)
					pub := start + int64(r.IntN(int(end-start)+1))
					add(&livekit.WebhookEvent{Event: EventTrackPublished, CreatedAt: pub, Room: roomFor(),
						Participant: info(0), Track: &livekit.TrackInfo{Sid: tsid}})
					if r.IntN(2) == 0 {
						add(&livekit.WebhookEvent{Event: EventTrackUnpublished, CreatedAt: end, Room: roomFor(),
							Participant: info(0), Track: &livekit.TrackInfo{Sid: tsid}})
					}
				}
				if r.IntN(4) != 0 {
					add(&livekit.WebhookEvent{Event: EventParticipantLeft, CreatedAt: end, Room: roomFor(),
						Participant: info(livekit.DisconnectReason(r.IntN(17)))})
				} else {
					stillOpen = append(stillOpen, open{info: info})
				}
				maxT = max(maxT, end)
				// the next session (reconnect) joins just before this one's left
				start = end - int64(r.IntN(3))
			}
		}

		nEgress := r.IntN(3)
		for e := 0; e < nEgress; e++ {
			add(genEgress(r, fmt.Sprintf("EG_%d_%d", k, e), sid, name, base)...)
		}
		if r.IntN(20) == 0 { // a failed start: egress_ended without an egress id
			add(&livekit.WebhookEvent{Event: EventEgressEnded, CreatedAt: base + 3, EgressInfo: &livekit.EgressInfo{
				RoomId: sid, RoomName: name, Status: livekit.EgressStatus_EGRESS_FAILED, Error: "no egress available"}})
		}
		if r.IntN(10) < 3 {
			ii := &livekit.IngressInfo{IngressId: fmt.Sprintf("IN_%d", k), RoomName: name}
			st := base + int64(r.IntN(30))
			add(&livekit.WebhookEvent{Event: EventIngressStarted, CreatedAt: st, IngressInfo: ii})
			add(&livekit.WebhookEvent{Event: EventIngressEnded, CreatedAt: st + int64(r.IntN(100)), IngressInfo: ii})
		}
		if r.IntN(10) < 3 {
			add(&livekit.WebhookEvent{Event: "room_metadata_changed", CreatedAt: base + int64(r.IntN(100)), Room: bare})
		}

		if r.IntN(10) < 8 {
			fin := maxT + int64(r.IntN(25))
			add(&livekit.WebhookEvent{Event: EventRoomFinished, CreatedAt: fin, Room: roomFor(),
				RoomEndReason: livekit.RoomEndReason(r.IntN(7))})
			for _, o := range stillOpen {
				if r.IntN(3) == 0 { // late participant_left after room_finished
					add(&livekit.WebhookEvent{Event: EventParticipantLeft, CreatedAt: fin + int64(r.IntN(3)), Room: roomFor(),
						Participant: o.info(livekit.DisconnectReason_ROOM_DELETED)})
				}
			}
			if r.IntN(10) == 0 {
				add(&livekit.WebhookEvent{Event: EventRoomStarted, CreatedAt: fin + 1, Room: full})
			}
		}

		evs = append(evs, genJobs(r2, sid, name, base, nextID)...)
		for _, ev := range evs {
			if c, ok := calls[ev.GetParticipant().GetSid()]; ok {
				ev.Participant.Attributes = c.attrs(ev.CreatedAt, ev.Event)
				if ev.Event == EventParticipantLeft && c.leftReason != 0 {
					ev.Participant.DisconnectReason = c.leftReason
				}
			}
		}

		for _, ev := range evs {
			if r.IntN(20) != 0 { // gaps: some events never arrive
				out.events = append(out.events, ev)
			}
		}
	}
	sort.SliceStable(out.events, func(i, j int) bool { return out.events[i].CreatedAt < out.events[j].CreatedAt })
	return out
}

// sipProfile is the timeline of one generated SIP call: the attributes
// livekit-sip would show on its participant at a given time.
type sipProfile struct {
	callID, ruleID, phone string
	ringSec, activeSec    int64                    // 0: never rang / never answered
	answerMs              int64                    // lk.sip.answerTime (0: not sent)
	unknownStatus         bool                     // a status value this version does not know
	noStatus              bool                     // events without sip.callStatus
	leftReason            livekit.DisconnectReason // how livekit-sip ends an unanswered call (0: random)
}

func newSIPProfile(r *rand.Rand, psid string, start int64) sipProfile {
	c := sipProfile{callID: "SCL_" + psid, phone: "+1555" + fmt.Sprint(r.IntN(10000))}
	if r.IntN(3) == 0 {
		c.ruleID = "SDR_1"
	}
	if r.IntN(3) != 0 {
		c.ringSec = start + int64(r.IntN(5))
	}
	if r.IntN(2) == 0 {
		c.activeSec = start + 1 + int64(r.IntN(30))
		if r.IntN(2) == 0 {
			c.answerMs = c.activeSec*1000 - int64(r.IntN(1500))
		}
	}
	if c.activeSec == 0 && r.IntN(4) != 0 {
		c.leftReason = []livekit.DisconnectReason{livekit.DisconnectReason_USER_UNAVAILABLE,
			livekit.DisconnectReason_USER_REJECTED, livekit.DisconnectReason_SIP_TRUNK_FAILURE,
			livekit.DisconnectReason_CLIENT_INITIATED}[r.IntN(4)]
	}
	c.unknownStatus = r.IntN(8) == 0
	c.noStatus = r.IntN(8) == 0
	return c
}

func (c sipProfile) attrs(at int64, event string) map[string]string {
	m := map[string]string{
		livekit.AttrSIPCallID:      c.callID,
		livekit.AttrSIPTrunkID:     "ST_gen",
		livekit.AttrSIPPhoneNumber: c.phone,
		livekit.AttrSIPTrunkNumber: "+15550000",
	}
	if c.ruleID != "" {
		m[livekit.AttrSIPDispatchRuleID] = c.ruleID
	}
	status := "dialing"
	switch {
	case event == EventParticipantLeft && c.activeSec > 0 && c.activeSec <= at:
		status = "hangup"
	case c.activeSec > 0 && c.activeSec <= at:
		status = "active"
	case c.ringSec > 0 && c.ringSec <= at:
		status = "ringing"
	}
	if c.unknownStatus && at%2 == 0 {
		status = "x-transferring"
	}
	if !c.noStatus {
		m[livekit.AttrSIPCallStatus] = status
	}
	if c.answerMs > 0 && c.activeSec <= at {
		m[livekit.AttrSIPAnswerTime] = fmt.Sprint(c.answerMs)
	}
	return m
}

// genJobs makes the agent job events of a room: pending, started, ended
// (success, failure with an error, or cancelled), some missing, the room
// named by job.room only (sometimes by name alone).
func genJobs(r *rand.Rand, sid, name string, base int64, nextID func() string) []*livekit.WebhookEvent {
	var out []*livekit.WebhookEvent
	nJobs := r.IntN(3)
	for j := 0; j < nJobs; j++ {
		id := fmt.Sprintf("AJ_%s_%d", sid, j)
		agentName := []string{"", "voice", "helper"}[r.IntN(3)]
		room := &livekit.Room{Sid: sid, Name: name}
		if r.IntN(4) == 0 {
			room = &livekit.Room{Name: name}
		}
		t := base + int64(r.IntN(20))
		startNs := (t+1)*int64(time.Second) + int64(r.IntN(1000))*int64(time.Millisecond)
		mk := func(event string, at int64, st *livekit.JobState) *livekit.WebhookEvent {
			if r.IntN(3) == 0 {
				st.UpdatedAt = 0 // older servers: the event time is used
			}
			return &livekit.WebhookEvent{Id: nextID(), Event: event, CreatedAt: at,
				Job: &livekit.Job{Id: id, AgentName: agentName, Room: room, State: st}}
		}
		out = append(out, mk(EventAgentJobPending, t, &livekit.JobState{Status: livekit.JobStatus_JS_PENDING, UpdatedAt: t * int64(time.Second)}))
		if r.IntN(4) != 0 {
			out = append(out, mk(EventAgentJobStarted, t+1, &livekit.JobState{Status: livekit.JobStatus_JS_RUNNING,
				StartedAt: startNs, UpdatedAt: startNs}))
		}
		if r.IntN(4) != 0 {
			end := t + 2 + int64(r.IntN(100))
			st := &livekit.JobState{StartedAt: startNs, EndedAt: end * int64(time.Second), UpdatedAt: end * int64(time.Second)}
			switch r.IntN(3) {
			case 0:
				st.Status = livekit.JobStatus_JS_SUCCESS
			case 1:
				st.Status, st.Error = livekit.JobStatus_JS_FAILED, "agent crashed"
			default:
				st.Status = livekit.JobStatus_JS_CANCELLED
			}
			out = append(out, mk(EventAgentJobEnded, end, st))
		}
	}
	return out
}

// genEgress is one egress's events as livekit/egress fills them: STARTING,
// sometimes ACTIVE and ENDING, then (usually) a terminal status with file
// results (sometimes only the deprecated file result); sometimes a late
// non-terminal update stamped after the end. The egress events may land
// after room_finished: they are not ordered against room events.
func genEgress(r *rand.Rand, eid, sid, name string, base int64) []*livekit.WebhookEvent {
	st := base + int64(r.IntN(60))
	startNs := st*1e9 + int64(r.IntN(1000))*1e6
	end := st + 5 + int64(r.IntN(200))
	legacy := r.IntN(4) == 0
	info := func(status livekit.EgressStatus, atSec int64) *livekit.EgressInfo {
		ei := &livekit.EgressInfo{EgressId: eid, RoomId: sid, RoomName: name, Status: status,
			StartedAt: startNs, UpdatedAt: atSec*1e9 + int64(r.IntN(1000))*1e6}
		f := &livekit.FileInfo{Filename: eid + ".mp4"}
		if EgressTerminal(int32(status)) {
			ei.EndedAt = ei.UpdatedAt
			f.StartedAt, f.EndedAt = startNs, ei.EndedAt
			f.Duration, f.Size, f.Location = ei.EndedAt-startNs, int64(r.IntN(1<<24)), "s3://bucket/"+eid+".mp4"
			if status != livekit.EgressStatus_EGRESS_COMPLETE {
				ei.Error = fmt.Sprintf("error %d", r.IntN(3))
			}
		}
		if !legacy {
			ei.FileResults = []*livekit.FileInfo{f}
		}
		ei.Result = &livekit.EgressInfo_File{File: f}
		return ei
	}
	evs := []*livekit.WebhookEvent{{Event: EventEgressStarted, CreatedAt: st, EgressInfo: info(livekit.EgressStatus_EGRESS_STARTING, st)}}
	if r.IntN(2) == 0 {
		evs = append(evs, &livekit.WebhookEvent{Event: EventEgressUpdated, CreatedAt: st + 1,
			EgressInfo: info(livekit.EgressStatus_EGRESS_ACTIVE, st+1)})
	}
	if r.IntN(3) == 0 {
		evs = append(evs, &livekit.WebhookEvent{Event: EventEgressUpdated, CreatedAt: end - 1,
			EgressInfo: info(livekit.EgressStatus_EGRESS_ENDING, end-1)})
	}
	if r.IntN(5) != 0 {
		status := livekit.EgressStatus_EGRESS_COMPLETE + livekit.EgressStatus(r.IntN(4))
		evs = append(evs, &livekit.WebhookEvent{Event: EventEgressEnded, CreatedAt: end, EgressInfo: info(status, end)})
		if r.IntN(6) == 0 { // stamped after the end (another node's clock)
			evs = append(evs, &livekit.WebhookEvent{Event: EventEgressUpdated, CreatedAt: end + 1,
				EgressInfo: info(livekit.EgressStatus_EGRESS_ACTIVE, end+1)})
		}
	}
	return evs
}

// shuffleWithDuplicates returns the events in a random order with random
// duplicates (same id; sometimes the same pointer, sometimes a deep copy).
func shuffleWithDuplicates(evs []*livekit.WebhookEvent, seed int64) []*livekit.WebhookEvent {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	out := append([]*livekit.WebhookEvent(nil), evs...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if len(evs) == 0 {
		return out
	}
	nd := r.IntN(len(evs)/2 + 2)
	for i := 0; i < nd; i++ {
		d := evs[r.IntN(len(evs))]
		if r.IntN(2) == 0 {
			d = proto.Clone(d).(*livekit.WebhookEvent)
		}
		pos := r.IntN(len(out) + 1)
		out = append(out[:pos], append([]*livekit.WebhookEvent{d}, out[pos:]...)...)
	}
	return out
}

func routeSID(ev *livekit.WebhookEvent, nameToSID map[string]string) string {
	if sid := RoomSID(ev); sid != "" {
		return sid
	}
	return nameToSID[RoomName(ev)]
}

// foldAll applies the events to per-room states, checking idempotency and
// purity on every step.
func foldAll(t *testing.T, evs []*livekit.WebhookEvent, nameToSID map[string]string) map[string]State {
	t.Helper()
	states := map[string]State{}
	for i, ev := range evs {
		sid := routeSID(ev, nameToSID)
		if sid == "" {
			t.Fatalf("event %d (%s) cannot be routed", i, ev.Event)
		}
		s, ok := states[sid]
		if !ok {
			s = NewState(sid, RoomName(ev))
		}
		seen := s.Applied(ev.Id)
		before, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		next, applied := Apply(s, ev)
		after, _ := json.Marshal(s)
		if string(before) != string(after) {
			t.Fatalf("event %d: Apply modified its input state", i)
		}
		if applied == seen {
			t.Fatalf("event %d (%s): applied=%v, already seen=%v", i, ev.Id, applied, seen)
		}
		if !applied && !reflect.DeepEqual(next, s) {
			t.Fatalf("event %d: duplicate changed the state", i)
		}
		// applying the same event again right away is a no-op
		if again, ok := Apply(next, ev); ok || !reflect.DeepEqual(again, next) {
			t.Fatalf("event %d: Apply is not idempotent", i)
		}
		states[sid] = next
	}
	return states
}

// checkPermutations is the property: the final state (hence the Session) of
// a shuffled and duplicated sequence equals the in-order one. Every field of
// State is combined by a commutative, idempotent operation over event payload
// times, so the whole State is compared, not only the Session.
func checkPermutations(t *testing.T, seed, shuffleSeed int64) {
	t.Helper()
	g := generate(seed)
	inOrder := foldAll(t, g.events, g.nameToSID)
	shuffled := foldAll(t, shuffleWithDuplicates(g.events, shuffleSeed), g.nameToSID)

	if len(inOrder) != len(shuffled) {
		t.Fatalf("rooms: in order %d, shuffled %d", len(inOrder), len(shuffled))
	}
	for sid, a := range inOrder {
		b := shuffled[sid]
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Fatalf("room %s: state differs\nin order: %s\nshuffled: %s", sid, ja, jb)
		}
		checkRoundTrip(t, a)
		sa, sb := a.Session(), b.Session()
		if !reflect.DeepEqual(sa, sb) {
			t.Fatalf("room %s: session differs", sid)
		}
		ja, _ := json.Marshal(sa)
		jb, _ := json.Marshal(sb)
		if string(ja) != string(jb) {
			t.Fatalf("room %s: session JSON differs\n%s\n%s", sid, ja, jb)
		}
		checkSessionInvariants(t, sa)
		if ra, rb := a.Report(), b.Report(); !reflect.DeepEqual(ra, rb) {
			t.Fatalf("room %s: report differs", sid)
		}

		// re-delivering everything changes nothing
		for _, ev := range g.events {
			if routeSID(ev, g.nameToSID) != sid {
				continue
			}
			if n, ok := Apply(b, ev); ok || !reflect.DeepEqual(n, b) {
				t.Fatalf("room %s: redelivery of %s applied again", sid, ev.Id)
			}
		}

		if !a.Finished() {
			end := a.LastEventTime().Add(30 * time.Second)
			ea, eb := Expire(a, end, "max_age"), Expire(b, end, "max_age")
			xa, xb := ea.Session(), eb.Session()
			if !reflect.DeepEqual(xa, xb) {
				t.Fatalf("room %s: expired session differs", sid)
			}
			if xa.Disposition != DispositionExpired || xa.EndedAt == nil || !xa.EndedAt.Equal(end) {
				t.Fatalf("room %s: bad expired session %+v", sid, xa)
			}
			checkSessionInvariants(t, xa)
			checkRoundTrip(t, ea)
		}
	}
}

// checkSessionInvariants checks what must hold for every Session.
func checkSessionInvariants(t *testing.T, s Session) {
	t.Helper()
	ended := s.EndedAt != nil
	if s.DurationSeconds < 0 || math.IsNaN(s.DurationSeconds) {
		t.Fatalf("negative duration %v", s.DurationSeconds)
	}
	if s.EndedAt != nil && s.EndedAt.Before(s.StartedAt) {
		t.Fatalf("ended at %v, before the start %v", *s.EndedAt, s.StartedAt)
	}
	if ended != (s.Disposition != "") {
		t.Fatalf("ended=%v but disposition=%q", ended, s.Disposition)
	}
	if !ended && s.EndReason != "" {
		t.Fatalf("active view with end reason %q", s.EndReason)
	}
	if s.ParticipantSecondsByKind == nil || s.Participants == nil {
		t.Fatal("nil map or slice in Session (would marshal as null)")
	}
	toMs := func(f float64) int64 { return int64(math.Round(f * 1000)) }
	var sum int64
	byKind := map[string]int64{}
	for i, p := range s.Participants {
		if p.Seconds < 0 {
			t.Fatalf("participant %s: negative seconds %v", p.SID, p.Seconds)
		}
		if p.LeftAt != nil && p.LeftAt.Before(p.JoinedAt) {
			t.Fatalf("participant %s left at %v, before joining at %v", p.SID, *p.LeftAt, p.JoinedAt)
		}
		sum += toMs(p.Seconds)
		byKind[p.Kind] += toMs(p.Seconds)
		switch p.State {
		case ParticipantAborted:
			if p.Seconds != 0 || p.LeftAt != nil {
				t.Fatalf("aborted participant %s with seconds/left_at", p.SID)
			}
		case ParticipantActive:
			if ended || p.LeftAt != nil {
				t.Fatalf("active participant %s in ended view or with left_at", p.SID)
			}
		case ParticipantLeft:
			if p.LeftAt == nil {
				t.Fatalf("left participant %s without left_at", p.SID)
			}
			want := math.Max(0, float64(p.LeftAt.UnixMilli()-p.JoinedAt.UnixMilli())/1000)
			if p.Sip != nil { // a SIP call counts its talk time
				want = 0
				if p.Sip.AnsweredAt != nil {
					want = math.Max(0, float64(p.LeftAt.UnixMilli()-p.Sip.AnsweredAt.UnixMilli())/1000)
				}
			}
			if p.Seconds != want {
				t.Fatalf("participant %s: seconds %v, want %v", p.SID, p.Seconds, want)
			}
		default:
			t.Fatalf("participant %s: bad state %q", p.SID, p.State)
		}
		checkSIPInvariants(t, p, ended)
		if p.JoinedAt.Location() != time.UTC || (p.LeftAt != nil && p.LeftAt.Location() != time.UTC) {
			t.Fatalf("participant %s: non-UTC time", p.SID)
		}
		if i > 0 {
			q := s.Participants[i-1]
			if p.JoinedAt.Before(q.JoinedAt) || (p.JoinedAt.Equal(q.JoinedAt) && p.SID <= q.SID) {
				t.Fatalf("participants not sorted at %d", i)
			}
		}
	}
	if toMs(s.ParticipantSeconds) != sum {
		t.Fatalf("participant_seconds %v != sum %v", s.ParticipantSeconds, float64(sum)/1000)
	}
	if len(byKind) != len(s.ParticipantSecondsByKind) {
		t.Fatalf("by-kind keys %v vs %v", byKind, s.ParticipantSecondsByKind)
	}
	for k, ms := range byKind {
		if toMs(s.ParticipantSecondsByKind[k]) != ms {
			t.Fatalf("by kind %s: %v != %v", k, s.ParticipantSecondsByKind[k], float64(ms)/1000)
		}
	}
	if s.StartedAt.Location() != time.UTC || (ended && s.EndedAt.Location() != time.UTC) {
		t.Fatal("non-UTC session time")
	}
	for i, rec := range s.Recordings {
		if i > 0 && rec.EgressID <= s.Recordings[i-1].EgressID {
			t.Fatalf("recordings not sorted at %d", i)
		}
		terminal := rec.Status == "EGRESS_COMPLETE" || rec.Status == "EGRESS_FAILED" ||
			rec.Status == "EGRESS_ABORTED" || rec.Status == "EGRESS_LIMIT_REACHED"
		if rec.Files == nil || rec.DurationSeconds < 0 || (rec.EndedAt != nil) != terminal && rec.Status != "EGRESS_STARTING" {
			t.Fatalf("recording %+v", rec)
		}
		if rec.EndedAt != nil && rec.StartedAt != nil && rec.EndedAt.Before(*rec.StartedAt) {
			t.Fatalf("recording %s ended before it started", rec.EgressID)
		}
	}
	for i, a := range s.Anomalies {
		if a.Count <= 0 || (i > 0 && a.Code <= s.Anomalies[i-1].Code) {
			t.Fatalf("anomalies %+v", s.Anomalies)
		}
	}
}

func TestApplyPermutationsProperty(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkPermutations(t, seed, seed*7919+13)
		})
	}
}

// TestGeneratorCoverage makes sure the generator exercises the interesting
// cases, so the property test is not vacuous.
func TestGeneratorCoverage(t *testing.T) {
	seen := map[string]bool{}
	for seed := int64(1); seed <= 300; seed++ {
		g := generate(seed)
		states := foldAll(t, g.events, g.nameToSID)
		for _, ev := range g.events {
			seen[ev.Event] = true
		}
		for _, s := range states {
			ss := s.Session()
			seen["disposition:"+ss.Disposition] = true
			for _, p := range ss.Participants {
				seen["kind:"+p.Kind] = true
				seen["state:"+p.State] = true
				if p.Sip != nil {
					seen["sip:"+p.Sip.Outcome] = true
					seen["sip:"+p.Sip.Direction] = true
					seen["sip_status:"+p.Sip.CallStatus] = true
				}
			}
			for _, j := range ss.AgentJobs {
				seen["job:"+j.Status] = true
			}
			if ss.EndReason != "" {
				seen["end_reason"] = true
			}
			for _, rec := range s.Report().Recordings {
				seen["recording:"+rec.Status] = true
			}
			for _, a := range s.Report().Anomalies {
				seen["anomaly:"+a.Code] = true
			}
		}
	}
	for _, want := range []string{
		EventRoomStarted, EventRoomFinished, EventParticipantJoined, EventParticipantLeft,
		EventParticipantConnectionAborted, EventTrackPublished, EventTrackUnpublished,
		EventEgressStarted, EventEgressUpdated, EventEgressEnded, EventIngressStarted, EventIngressEnded,
		"room_metadata_changed",
		"disposition:" + DispositionCompleted, "disposition:" + DispositionNoShow,
		"disposition:" + DispositionConnectionFailed, "disposition:",
		"kind:standard", "kind:agent", "kind:sip", "kind:egress", "kind:ingress", "kind:unknown",
		"state:active", "state:left", "state:aborted", "end_reason",
		EventAgentJobPending, EventAgentJobStarted, EventAgentJobEnded,
		"disposition:" + DispositionNoAnswer, "disposition:" + DispositionRejected, "disposition:" + DispositionFailed,
		"sip:" + SIPAnswered, "sip:" + SIPNoAnswer, "sip:" + SIPRejected, "sip:" + SIPFailed, "sip:" + SIPCancelled, "sip:",
		"sip:" + SIPInbound, "sip:" + SIPOutbound, "sip_status:x-transferring", "sip_status:hangup", "sip_status:",
		"job:JS_PENDING", "job:JS_RUNNING", "job:JS_SUCCESS", "job:JS_FAILED", "job:JS_CANCELLED",
		"recording:EGRESS_STARTING", "recording:EGRESS_ACTIVE", "recording:EGRESS_COMPLETE",
		"recording:EGRESS_FAILED", "recording:EGRESS_ABORTED", "recording:EGRESS_LIMIT_REACHED",
		"anomaly:" + AnomalyParticipantNeverLeft, "anomaly:" + AnomalyEgressNeverEnded,
		"anomaly:" + AnomalyRoomStartedAfterFinished,
	} {
		if !seen[want] {
			t.Errorf("generator never produced %q", want)
		}
	}
}

func FuzzApplyPermutations(f *testing.F) {
	for _, s := range [][2]int64{{1, 2}, {7, 7}, {42, 1}, {1234, 99}, {-5, 3}, {0, 0}, {1 << 40, -1}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, seed, shuffleSeed int64) {
		checkPermutations(t, seed, shuffleSeed)
	})
}
