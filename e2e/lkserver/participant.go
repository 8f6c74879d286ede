package lkserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// opusSilence is one 20 ms Opus frame of silence (TOC 0xF8: CELT-only,
// full band, 20 ms, one frame; as sent by browsers and the LiveKit SDKs).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

const opusFrame = 20 * time.Millisecond

// Token returns a join token for identity in room with the given participant
// kind, valid for one hour.
//
// The kind is set with (*auth.AccessToken).SetKind(livekit.ParticipantInfo_Kind),
// which writes the "kind" claim ("agent", "standard", …) that livekit-server
// copies into ParticipantInfo.Kind.
func (s *Server) Token(room, identity string, kind livekit.ParticipantInfo_Kind) (string, error) {
	return auth.NewAccessToken(s.APIKey, s.APISecret).
		SetIdentity(identity).
		SetName(identity).
		SetKind(kind).
		SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).
		ToJWT()
}

// JoinOptions are the optional settings of JoinWith.
type JoinOptions struct {
	Kind livekit.ParticipantInfo_Kind
	// PublishAudio publishes one Opus microphone track fed with silent frames
	// every 20 ms until the participant disconnects or the test ends.
	PublishAudio bool
	// Callback receives the SDK's room events; may be nil.
	Callback *lksdk.RoomCallback
	// ConnectTimeout bounds the join. Default: 20 s.
	ConnectTimeout time.Duration
	// Token joins with this token instead of Server.Token's (e.g. one built
	// like livekit-sip's, see JoinSIP).
	Token string
	// Attributes are sent with the join request (lksdk.WithExtraAttributes);
	// the token must grant canUpdateOwnMetadata.
	Attributes map[string]string
}

// Join connects a real WebRTC participant to room on srv. With publishAudio
// it publishes an Opus audio track carrying silence. The participant is
// disconnected when the test ends if it has not been before; call
// (*lksdk.Room).Disconnect to leave earlier (the audio writer stops by itself).
func Join(t testing.TB, srv *Server, room, identity string, kind livekit.ParticipantInfo_Kind, publishAudio bool) *lksdk.Room {
	t.Helper()
	return JoinWith(t, srv, room, identity, JoinOptions{Kind: kind, PublishAudio: publishAudio})
}

// JoinWith is Join with more options.
func JoinWith(t testing.TB, srv *Server, room, identity string, opts JoinOptions) *lksdk.Room {
	t.Helper()
	token := opts.Token
	if token == "" {
		var err error
		if token, err = srv.Token(room, identity, opts.Kind); err != nil {
			t.Fatalf("lkserver: token for %s: %v", identity, err)
		}
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 20 * time.Second
	}

	ctx, cancel := context.WithCancel(context.Background())
	cb := opts.Callback
	if cb == nil {
		cb = lksdk.NewRoomCallback()
	}
	// Stop the audio writer when the SDK reports the disconnect, keeping any
	// handler the caller set.
	userOnDisconnected := cb.OnDisconnected
	cb.OnDisconnected = func() {
		cancel()
		if userOnDisconnected != nil {
			userOnDisconnected()
		}
	}

	r, err := lksdk.ConnectToRoomWithToken(srv.WSURL, token, cb,
		lksdk.WithAutoSubscribe(false),
		lksdk.WithConnectTimeout(opts.ConnectTimeout),
		lksdk.WithExtraAttributes(opts.Attributes),
	)
	if err != nil {
		cancel()
		t.Fatalf("lkserver: %s could not join room %q: %v", identity, room, err)
	}

	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		r.Disconnect() // no-op on the server side if already disconnected
	})

	if opts.PublishAudio {
		track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{
			MimeType:  webrtc.MimeTypeOpus,
			ClockRate: 48000,
			Channels:  2,
		})
		if err != nil {
			t.Fatalf("lkserver: new audio track: %v", err)
		}
		if _, err := r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
			Name:   identity + "-mic",
			Source: livekit.TrackSource_MICROPHONE,
		}); err != nil {
			t.Fatalf("lkserver: %s could not publish audio: %v", identity, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeSilence(ctx, track)
		}()
	}
	return r
}

// writeSilence writes a silent Opus frame every 20 ms until ctx ends.
// Write errors (track not bound yet, or closed by Disconnect) are ignored.
func writeSilence(ctx context.Context, track *lksdk.LocalTrack) {
	tick := time.NewTicker(opusFrame)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = track.WriteSample(media.Sample{Data: opusSilence, Duration: opusFrame}, nil)
		}
	}
}
