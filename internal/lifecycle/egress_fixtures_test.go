package lifecycle

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var updateFixtures = flag.Bool("update", false, "rewrite ../../testdata/egress from egressFixtures")

// egressFixtureDir holds egress webhooks built from protocol types as
// livekit-server and livekit/egress fill them (see its README).
const egressFixtureDir = "../../testdata/egress"

// Fixture room and times: seconds after t0 (the table tests' base).
const (
	fxRoomSID  = "RM_q7Xc2LwP9vEa"
	fxRoomName = "call-7"
	fxEgressID = "EG_fR3cK9dT2mWz"
)

// ns is t0 + sec seconds + ms milliseconds in unix nanoseconds.
func ns(sec, ms int64) int64 { return (t0+sec)*1e9 + ms*1e6 }

// fxWebhook wraps an EgressInfo as livekit-server's telemetry sends it: an
// EV_ id, createdAt in seconds, no room (egress events carry egressInfo
// only).
func fxWebhook(id, event string, sec int64, info *livekit.EgressInfo) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{Id: id, Event: event, CreatedAt: t0 + sec, EgressInfo: info}
}

// fxComposite is a room composite egress to one MP4 file, as livekit/egress
// fills its EgressInfo at each step (pkg/config/pipeline.go Update,
// pkg/config/output.go: file_results and the deprecated file result point
// at the same FileInfo when the file is the only output; controller.go
// updateStartTime, SendEOS, updateEndTime; pkg/info SetComplete).
func fxComposite(status livekit.EgressStatus) *livekit.EgressInfo {
	file := &livekit.FileInfo{Filename: "recordings/call-7.mp4"}
	info := &livekit.EgressInfo{
		EgressId: fxEgressID, RoomId: fxRoomSID, RoomName: fxRoomName,
		SourceType: livekit.EgressSourceType_EGRESS_SOURCE_TYPE_WEB,
		Status:     status,
		StartedAt:  ns(5, 120), UpdatedAt: ns(5, 120),
		Request: &livekit.EgressInfo_RoomComposite{RoomComposite: &livekit.RoomCompositeEgressRequest{
			RoomName: fxRoomName, Layout: "speaker", AudioOnly: true,
			FileOutputs: []*livekit.EncodedFileOutput{{FileType: livekit.EncodedFileType_MP4, Filepath: "recordings/call-7.mp4"}},
		}},
		FileResults: []*livekit.FileInfo{file},
		Result:      &livekit.EgressInfo_File{File: file},
	}
	if status >= livekit.EgressStatus_EGRESS_ACTIVE {
		info.UpdatedAt = ns(7, 450)
		file.StartedAt = ns(7, 450)
	}
	if status >= livekit.EgressStatus_EGRESS_ENDING {
		info.UpdatedAt = ns(65, 10)
		info.Details = "end reason: API"
	}
	if status == livekit.EgressStatus_EGRESS_COMPLETE {
		info.UpdatedAt, info.EndedAt = ns(67, 800), ns(67, 800)
		file.EndedAt = ns(65, 10)
		file.Duration = file.EndedAt - file.StartedAt
		file.Size = 4_812_345
		file.Location = "https://rec-bucket.s3.amazonaws.com/recordings/call-7.mp4"
	}
	return info
}

// egressFixtures are the fixture files, by name.
func egressFixtures() map[string]*livekit.WebhookEvent {
	legacy := &livekit.FileInfo{
		Filename: "recordings/call-7-legacy.ogg", StartedAt: ns(10, 0), EndedAt: ns(40, 500),
		Duration: ns(40, 500) - ns(10, 0), Size: 960_000, Location: "gs://rec-bucket/recordings/call-7-legacy.ogg",
	}
	failed := &livekit.FileInfo{Filename: "recordings/call-7-track.ogg", StartedAt: ns(12, 0)}
	return map[string]*livekit.WebhookEvent{
		"01-egress_started.json":        fxWebhook("EV_eg01Started0", EventEgressStarted, 5, fxComposite(livekit.EgressStatus_EGRESS_STARTING)),
		"02-egress_updated-active.json": fxWebhook("EV_eg02Active00", EventEgressUpdated, 7, fxComposite(livekit.EgressStatus_EGRESS_ACTIVE)),
		"03-egress_updated-ending.json": fxWebhook("EV_eg03Ending00", EventEgressUpdated, 65, fxComposite(livekit.EgressStatus_EGRESS_ENDING)),
		"04-egress_ended-complete.json": fxWebhook("EV_eg04Complete", EventEgressEnded, 67, fxComposite(livekit.EgressStatus_EGRESS_COMPLETE)),
		"05-egress_ended-file-only.json": fxWebhook("EV_eg05FileOnly", EventEgressEnded, 41, &livekit.EgressInfo{
			// An older egress: the deprecated file result only, no file_results.
			EgressId: "EG_lG4cY8nQ1sHb", RoomId: fxRoomSID, RoomName: fxRoomName,
			Status:    livekit.EgressStatus_EGRESS_COMPLETE,
			StartedAt: ns(9, 900), UpdatedAt: ns(41, 200), EndedAt: ns(41, 200),
			Request: &livekit.EgressInfo_Track{Track: &livekit.TrackEgressRequest{
				RoomName: fxRoomName, TrackId: "TR_AMk2Rb5Fq8Zs"}},
			Result: &livekit.EgressInfo_File{File: legacy},
		}),
		"06-egress_ended-failed.json": fxWebhook("EV_eg06Failed00", EventEgressEnded, 30, &livekit.EgressInfo{
			// pkg/info SetFailed: error, error_code, ended_at = updated_at.
			EgressId: "EG_xF7pB2kV6tNd", RoomId: fxRoomSID, RoomName: fxRoomName,
			Status:    livekit.EgressStatus_EGRESS_FAILED,
			StartedAt: ns(11, 500), UpdatedAt: ns(30, 250), EndedAt: ns(30, 250),
			Error: "upload failed: AccessDenied", ErrorCode: 500,
			FileResults: []*livekit.FileInfo{failed},
			Result:      &livekit.EgressInfo_File{File: failed},
		}),
		"07-egress_ended-limit_reached.json": fxWebhook("EV_eg07Limit000", EventEgressEnded, 3612, &livekit.EgressInfo{
			// pkg/info SetLimitReached.
			EgressId: "EG_mL5wQ3rJ8yCe", RoomId: fxRoomSID, RoomName: fxRoomName,
			Status:    livekit.EgressStatus_EGRESS_LIMIT_REACHED,
			StartedAt: ns(11, 0), UpdatedAt: ns(3611, 0), EndedAt: ns(3611, 0),
			Error: "Session limit reached", ErrorCode: 413,
		}),
		"08-egress_ended-aborted.json": fxWebhook("EV_eg08Aborted0", EventEgressEnded, 20, &livekit.EgressInfo{
			// pkg/info SetAborted, from EGRESS_STARTING.
			EgressId: "EG_aB9dE4gH7jKm", RoomId: fxRoomSID, RoomName: fxRoomName,
			Status:    livekit.EgressStatus_EGRESS_ABORTED,
			StartedAt: ns(18, 0), UpdatedAt: ns(20, 0), EndedAt: ns(20, 0),
			Error: "Stop called before pipeline could start", ErrorCode: 412,
		}),
	}
}

// TestEgressFixtures: the files in testdata/egress are exactly the events
// egressFixtures builds (rewrite them with -update), and decode back.
func TestEgressFixtures(t *testing.T) {
	for name, ev := range egressFixtures() {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// protojson output is not stable across builds: compare through JSON.
		var norm bytes.Buffer
		if err := json.Indent(&norm, compactJSON(t, b), "", "  "); err != nil {
			t.Fatal(err)
		}
		norm.WriteByte('\n')
		path := filepath.Join(egressFixtureDir, name)
		if *updateFixtures {
			if err := os.WriteFile(path, norm.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got := loadEgressFixture(t, name)
		if !proto.Equal(got, ev) {
			t.Errorf("%s differs from egressFixtures (go test -run TestEgressFixtures -update)", name)
		}
	}
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		t.Fatal(err)
	}
	return c.Bytes()
}

// loadEgressFixture decodes a fixture as the receiver does (unknown fields
// discarded).
func loadEgressFixture(t *testing.T, name string) *livekit.WebhookEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(egressFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	ev := &livekit.WebhookEvent{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}
