package lkserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/e2e/lkserver"
)

// TestStartJoin starts two servers at once (they must not collide), joins an
// agent and an audio-publishing participant to one of them and checks what
// RoomService reports.
func TestStartJoin(t *testing.T) {
	srv := lkserver.Start(t, lkserver.Options{EmptyTimeout: 5 * time.Second, DepartureTimeout: 2 * time.Second})
	other := lkserver.Start(t, lkserver.Options{})
	if srv.Port == other.Port || srv.TCPPort == other.TCPPort ||
		(srv.UDPPortStart <= other.UDPPortEnd && other.UDPPortStart <= srv.UDPPortEnd) {
		t.Fatalf("servers share ports: %+v vs %+v", srv, other)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	rs := srv.RoomService()
	if _, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "smoke", Metadata: "m"}); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}

	agent := lkserver.Join(t, srv, "smoke", "agent-1", livekit.ParticipantInfo_AGENT, false)
	user := lkserver.Join(t, srv, "smoke", "user-1", livekit.ParticipantInfo_STANDARD, true)

	var parts []*livekit.ParticipantInfo
	err := lkserver.WaitFor(ctx, func() bool {
		res, err := rs.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: "smoke"})
		if err != nil {
			return false
		}
		parts = res.Participants
		if len(parts) != 2 {
			return false
		}
		for _, p := range parts {
			if p.Identity == "user-1" && len(p.Tracks) == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("participants never became 2 with a published track: %v (last: %v)", err, parts)
	}
	for _, p := range parts {
		switch p.Identity {
		case "agent-1":
			if p.Kind != livekit.ParticipantInfo_AGENT {
				t.Errorf("agent-1 kind = %v, want AGENT", p.Kind)
			}
		case "user-1":
			if p.Kind != livekit.ParticipantInfo_STANDARD {
				t.Errorf("user-1 kind = %v, want STANDARD", p.Kind)
			}
			if p.Tracks[0].Type != livekit.TrackType_AUDIO {
				t.Errorf("user-1 track type = %v, want AUDIO", p.Tracks[0].Type)
			}
		}
	}

	user.Disconnect()
	agent.Disconnect()
	if _, err := rs.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: "smoke"}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	srv := lkserver.Start(t, lkserver.Options{})
	srv.Stop()
	srv.Stop()
	select {
	case <-srv.Exited():
	default:
		t.Fatal("server still running after Stop")
	}
}
