package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
	"gopkg.in/yaml.v3"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const defaultWebhookURL = "http://127.0.0.1:8080/voice/livekit/webhooks"

const sendUsage = `usage: lkwebhook send EVENT --room NAME [flags]
       lkwebhook send --body-file FILE [flags]

Builds a LiveKit webhook event, signs it exactly as livekit-server does
(raw HS256 JWT in Authorization, sha256 claim over the body) and posts it.
Prints the answer's status line, its outcome (Lkwh-Outcome: accepted,
duplicate or ignored) and any body; exits 0 on 2xx, 1 otherwise.

Events: room_started room_finished participant_joined participant_left
participant_connection_aborted track_published track_unpublished
egress_started egress_updated egress_ended ingress_started ingress_ended
agent_job_pending agent_job_started agent_job_ended

Room and participant sids default to stable values derived from the room
name (and identity), so several sends for one room land on one session.
Signing key: --api-key/--api-secret, else LIVEKIT_API_KEY/LIVEKIT_API_SECRET,
else the first key of LIVEKIT_KEYS, else the dev key devkey/secret.

Flags:
`

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, sendUsage)
		fs.PrintDefaults()
	}
	var s eventSpec
	url := fs.String("url", defaultWebhookURL, "webhook URL")
	fs.StringVar(&s.room, "room", "", "room name")
	fs.StringVar(&s.roomSID, "room-sid", "", "room sid (default: RM_ derived from the room name)")
	fs.StringVar(&s.identity, "identity", "", "participant identity (participant and track events)")
	fs.StringVar(&s.participantSID, "participant-sid", "", "participant sid (default: PA_ derived from identity and room)")
	fs.StringVar(&s.kind, "kind", "", "participant kind: standard, agent, sip, ingress, egress, connector, bridge")
	fs.StringVar(&s.id, "id", "", "event id (default: EV_ + 12 random base62 chars)")
	fs.Int64Var(&s.createdAt, "created-at", 0, "createdAt, unix seconds (default: now)")
	fs.Int64Var(&s.joinedAt, "joined-at", 0, "participant joinedAt, unix seconds (default: createdAt)")
	fs.StringVar(&s.metadata, "metadata", "", "room metadata (usually JSON)")
	fs.StringVar(&s.endReason, "end-reason", "", "room_finished roomEndReason: api_delete, idle_timeout, server_shutdown, superseded, open_failed")
	fs.StringVar(&s.disconnectReason, "disconnect-reason", "", "participant disconnectReason (participant_left default: client_initiated)")
	fs.StringVar(&s.trackSID, "track-sid", "", "track sid (default: TR_ derived from identity and room)")
	fs.StringVar(&s.egressID, "egress-id", "", "egress id (default: EG_ derived from the room name)")
	bodyFile := fs.String("body-file", "", "send this file's bytes verbatim instead of building an event")
	apiKey := fs.String("api-key", "", "API key to sign with")
	apiSecret := fs.String("api-secret", "", "API secret to sign with")
	validFor := fs.Duration("valid-for", verify.DefaultValidFor, "token validity (LiveKit: 5m)")
	legacy := fs.Bool("legacy-signature", false, "also send X-LiveKit-Signature (hex HMAC-SHA256 of the body; real LiveKit never does)")
	noToken := fs.Bool("no-token", false, "omit the Authorization token (to test legacy mode)")
	dryRun := fs.Bool("dry-run", false, "print the headers and body instead of posting them")
	saveBody := fs.String("save-body", "", "also write the exact body bytes to this file (for lkwebhook verify)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "lkwebhook send: one event at a time (got %s)\n", strings.Join(pos, " "))
		return 2
	}

	var body []byte
	summary := ""
	if *bodyFile != "" {
		if body, err = readInput(*bodyFile); err != nil {
			fmt.Fprintln(stderr, "lkwebhook send:", err)
			return 2
		}
		if len(pos) == 1 {
			fmt.Fprintf(stderr, "lkwebhook send: note: sending %s verbatim, EVENT %q is ignored\n", *bodyFile, pos[0])
		}
		summary = fmt.Sprintf("%s (%d bytes, verbatim)", *bodyFile, len(body))
	} else {
		if len(pos) == 0 {
			fs.Usage()
			return 2
		}
		s.event = pos[0]
		ev, err := buildEvent(s, time.Now(), stderr)
		if err != nil {
			fmt.Fprintln(stderr, "lkwebhook send:", err)
			return 2
		}
		if body, err = livekitwebhooktest.Marshal(ev); err != nil {
			fmt.Fprintln(stderr, "lkwebhook send:", err)
			return 1
		}
		summary = describeEvent(ev)
	}

	key, secret, err := signingKey(*apiKey, *apiSecret, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook send:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	signer := livekitwebhooktest.Signer{Key: key, Secret: secret, ValidFor: *validFor}
	req, err := signer.NewRawRequest(ctx, *url, body)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook send:", err)
		return 2
	}
	if *noToken {
		req.Header.Del("Authorization")
	}
	if *legacy {
		req.Header.Set("X-LiveKit-Signature", verify.LegacySignature(secret, body))
	}
	if *saveBody != "" {
		if err := os.WriteFile(*saveBody, body, 0o600); err != nil {
			fmt.Fprintln(stderr, "lkwebhook send:", err)
			return 1
		}
	}
	if *dryRun {
		fmt.Fprintf(stdout, "POST %s\n", *url)
		for _, k := range slices.Sorted(maps.Keys(req.Header)) {
			fmt.Fprintf(stdout, "%s: %s\n", k, req.Header.Get(k))
		}
		fmt.Fprintf(stdout, "\n%s\n", body)
		return 0
	}

	fmt.Fprintf(stderr, "lkwebhook send: %s signed by %q -> %s\n", summary, key, *url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook send:", err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(stdout, "%s %s\n", resp.Proto, resp.Status)
	if o := resp.Header.Get(livekitwebhook.HeaderOutcome); o != "" {
		fmt.Fprintf(stdout, "%s: %s\n", livekitwebhook.HeaderOutcome, o)
	}
	if len(answer) > 0 {
		stdout.Write(answer)
		if answer[len(answer)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
	}
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// eventSpec is what the send flags say about the event to build.
type eventSpec struct {
	event, id                      string
	room, roomSID, metadata        string
	identity, participantSID, kind string
	createdAt, joinedAt            int64
	endReason, disconnectReason    string
	trackSID, egressID             string
}

// Event families by name.
var (
	participantEvents = map[string]bool{"participant_joined": true, "participant_left": true, "participant_connection_aborted": true}
	trackEvents       = map[string]bool{"track_published": true, "track_unpublished": true}
	egressEvents      = map[string]bool{"egress_started": true, "egress_updated": true, "egress_ended": true}
	ingressEvents     = map[string]bool{"ingress_started": true, "ingress_ended": true}
	jobEvents         = map[string]bool{"agent_job_pending": true, "agent_job_started": true, "agent_job_ended": true}
	roomEvents        = map[string]bool{"room_started": true, "room_finished": true}
)

// buildEvent makes the event LiveKit would send for s, filling defaults.
func buildEvent(s eventSpec, now time.Time, stderr io.Writer) (*livekit.WebhookEvent, error) {
	name := strings.ToLower(strings.TrimSpace(s.event))
	known := roomEvents[name] || participantEvents[name] || trackEvents[name] ||
		egressEvents[name] || ingressEvents[name] || jobEvents[name]
	if name == "" {
		return nil, errors.New("no event name")
	}
	if !known {
		fmt.Fprintf(stderr, "lkwebhook send: note: %q is not an event LiveKit sends today; sending it anyway\n", name)
	}
	if s.room == "" {
		return nil, fmt.Errorf("%s needs --room NAME", name)
	}
	needsIdentity := participantEvents[name] || trackEvents[name]
	if needsIdentity && s.identity == "" {
		return nil, fmt.Errorf("%s needs --identity", name)
	}
	if s.metadata != "" && !json.Valid([]byte(s.metadata)) {
		fmt.Fprintln(stderr, "lkwebhook send: note: --metadata is not valid JSON; sent as is")
	}
	ev := &livekit.WebhookEvent{Event: name, Id: s.id, CreatedAt: s.createdAt}
	if ev.Id == "" {
		ev.Id = "EV_" + randomBase62(12)
	}
	if ev.CreatedAt == 0 {
		ev.CreatedAt = now.Unix()
	}
	roomSID := s.roomSID
	if roomSID == "" {
		roomSID = derivedID("RM_", "room", s.room)
	}
	room := &livekit.Room{Sid: roomSID, Name: s.room, Metadata: s.metadata}

	var participant *livekit.ParticipantInfo
	if s.identity != "" {
		kind, err := parseEnum("kind", s.kind, livekit.ParticipantInfo_Kind_value, "")
		if err != nil {
			return nil, err
		}
		psid := s.participantSID
		if psid == "" {
			psid = derivedID("PA_", "participant", s.room, s.identity)
		}
		joined := s.joinedAt
		if joined == 0 {
			joined = ev.CreatedAt
		}
		participant = &livekit.ParticipantInfo{
			Sid:        psid,
			Identity:   s.identity,
			Name:       s.identity,
			State:      livekit.ParticipantInfo_ACTIVE,
			Kind:       livekit.ParticipantInfo_Kind(kind),
			JoinedAt:   joined,
			JoinedAtMs: joined * 1000,
		}
		reason := s.disconnectReason
		switch name {
		case "participant_left":
			participant.State = livekit.ParticipantInfo_DISCONNECTED
			if reason == "" {
				reason = "CLIENT_INITIATED"
			}
		case "participant_connection_aborted":
			participant.State = livekit.ParticipantInfo_DISCONNECTED
		}
		r, err := parseEnum("disconnect reason", reason, livekit.DisconnectReason_value, "")
		if err != nil {
			return nil, err
		}
		participant.DisconnectReason = livekit.DisconnectReason(r)
	}

	switch {
	case name == "room_started":
		room.CreationTime = ev.CreatedAt
		room.CreationTimeMs = ev.CreatedAt * 1000
		room.EmptyTimeout, room.DepartureTimeout = 300, 20
		ev.Room = room
	case name == "room_finished":
		r, err := parseEnum("end reason", s.endReason, livekit.RoomEndReason_value, "ROOM_END_")
		if err != nil {
			return nil, err
		}
		ev.Room, ev.RoomEndReason = room, livekit.RoomEndReason(r)
	case participantEvents[name]:
		ev.Room, ev.Participant = room, participant
	case trackEvents[name]:
		tsid := s.trackSID
		if tsid == "" {
			tsid = derivedID("TR_", "track", s.room, s.identity)
		}
		ev.Room, ev.Participant = room, participant
		ev.Track = &livekit.TrackInfo{
			Sid:      tsid,
			Type:     livekit.TrackType_AUDIO,
			Source:   livekit.TrackSource_MICROPHONE,
			Name:     "microphone",
			MimeType: "audio/opus",
			Muted:    false,
		}
	case egressEvents[name]:
		// LiveKit sends egress events with egressInfo and no room.
		eid := s.egressID
		if eid == "" {
			eid = derivedID("EG_", "egress", s.room)
		}
		ns := ev.CreatedAt * int64(time.Second)
		info := &livekit.EgressInfo{EgressId: eid, RoomId: roomSID, RoomName: s.room, StartedAt: ns, UpdatedAt: ns}
		switch name {
		case "egress_started":
			info.Status = livekit.EgressStatus_EGRESS_STARTING
		case "egress_updated":
			info.Status = livekit.EgressStatus_EGRESS_ACTIVE
		case "egress_ended":
			info.Status = livekit.EgressStatus_EGRESS_COMPLETE
			info.EndedAt = ns
		}
		ev.EgressInfo = info
	case ingressEvents[name]:
		ev.IngressInfo = &livekit.IngressInfo{
			IngressId:           derivedID("IN_", "ingress", s.room),
			Name:                s.room,
			RoomName:            s.room,
			ParticipantIdentity: s.identity,
		}
	case jobEvents[name]:
		// LiveKit Cloud: the job carries the room; there is no top-level room.
		ev.Job = &livekit.Job{
			Id:          derivedID("AJ_", "job", s.room, s.identity),
			Type:        livekit.JobType_JT_ROOM,
			Room:        room,
			Participant: participant,
			CreatedAt:   ev.CreatedAt,
		}
	default:
		ev.Room, ev.Participant = room, participant
	}
	return ev, nil
}

func describeEvent(ev *livekit.WebhookEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", ev.Event, ev.Id)
	switch {
	case ev.Room != nil:
		fmt.Fprintf(&b, " room %q (%s)", ev.Room.Name, ev.Room.Sid)
	case ev.EgressInfo != nil:
		fmt.Fprintf(&b, " room %q (%s) egress %s", ev.EgressInfo.RoomName, ev.EgressInfo.RoomId, ev.EgressInfo.EgressId)
	case ev.IngressInfo != nil:
		fmt.Fprintf(&b, " room %q ingress %s", ev.IngressInfo.RoomName, ev.IngressInfo.IngressId)
	case ev.Job != nil:
		fmt.Fprintf(&b, " job %s room %q", ev.Job.Id, ev.Job.GetRoom().GetName())
	}
	if p := ev.Participant; p != nil {
		fmt.Fprintf(&b, " participant %q (%s, %s)", p.Identity, p.Sid, strings.ToLower(p.Kind.String()))
	}
	return b.String()
}

// parseEnum reads a LiveKit enum name case-insensitively ("agent", "SIP",
// "client-initiated"), with or without prefix, or as a number. "" is 0.
func parseEnum(what, s string, values map[string]int32, prefix string) (int32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return int32(n), nil
	}
	up := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if v, ok := values[up]; ok {
		return v, nil
	}
	if v, ok := values[prefix+up]; ok && prefix != "" {
		return v, nil
	}
	var names []string
	for k := range values {
		names = append(names, strings.ToLower(strings.TrimPrefix(k, prefix)))
	}
	slices.Sort(names)
	return 0, fmt.Errorf("unknown %s %q (one of: %s)", what, s, strings.Join(names, ", "))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomBase62(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62[rand.IntN(len(base62))]
	}
	return string(b)
}

// derivedID is prefix + 12 base62 chars from a hash of parts: the same
// inputs always give the same id.
func derivedID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := make([]byte, 12)
	for i := range b {
		// Two hash bytes per char keep the modulo bias negligible.
		b[i] = base62[(int(sum[2*i])<<8|int(sum[2*i+1]))%len(base62)]
	}
	return prefix + string(b)
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("send room_started --room r"), returning the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// readInput reads a file, or stdin for "-".
func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// signingKey picks the key send signs with: the flags, else
// LIVEKIT_API_KEY/LIVEKIT_API_SECRET, else the first key of LIVEKIT_KEYS,
// else the dev key (with a note). --api-key alone looks its secret up in
// the environment.
func signingKey(flagKey, flagSecret string, stderr io.Writer) (string, string, error) {
	envKeys, err := envKeyList()
	if err != nil {
		return "", "", err
	}
	switch {
	case flagKey != "" && flagSecret != "":
		return flagKey, flagSecret, nil
	case flagSecret != "":
		return "", "", errors.New("--api-secret needs --api-key")
	case flagKey != "":
		for _, kv := range envKeys {
			if kv[0] == flagKey {
				return kv[0], kv[1], nil
			}
		}
		if flagKey == devKey {
			return devKey, devSecret, nil
		}
		return "", "", fmt.Errorf("--api-key %q: no secret for it in --api-secret, LIVEKIT_API_SECRET or LIVEKIT_KEYS", flagKey)
	case len(envKeys) > 0:
		return envKeys[0][0], envKeys[0][1], nil
	}
	fmt.Fprintf(stderr, "lkwebhook: note: no key configured (--api-key/--api-secret, LIVEKIT_API_KEY/LIVEKIT_API_SECRET, LIVEKIT_KEYS); using the dev key %q of livekit-server --dev\n", devKey)
	return devKey, devSecret, nil
}

// envKeyList is the keys of the environment in order: LIVEKIT_API_KEY with
// LIVEKIT_API_SECRET first, then LIVEKIT_KEYS.
func envKeyList() ([][2]string, error) {
	var out [][2]string
	k, s := os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	switch {
	case k != "" && s != "":
		out = append(out, [2]string{k, s})
	case k != "" || s != "":
		return nil, errors.New("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
	}
	if ks := os.Getenv("LIVEKIT_KEYS"); strings.TrimSpace(ks) != "" {
		list, err := parseKeyLines(ks)
		if err != nil {
			return nil, fmt.Errorf("LIVEKIT_KEYS: %w", err)
		}
		out = append(out, list...)
	}
	return out, nil
}

// parseKeyLines reads "key: secret" lines (the format of LIVEKIT_KEYS and
// livekit-server's --key-file), keeping their order.
func parseKeyLines(text string) ([][2]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, errors.New(`expected "key: secret" lines`)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, errors.New(`expected "key: secret" lines`)
	}
	var out [][2]string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || k.Value == "" || v.Value == "" {
			return nil, errors.New(`expected "key: secret" lines with non-empty keys and secrets`)
		}
		out = append(out, [2]string{k.Value, v.Value})
	}
	return out, nil
}
