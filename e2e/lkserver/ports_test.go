package lkserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

// TestStartPortTaken: the HTTP port picked for livekit-server is taken by
// another process before the server binds it, here by an HTTP server that
// answers GET / with 200 as livekit-server does. Start must not mistake it
// for the server, and starts again on new ports.
func TestStartPortTaken(t *testing.T) {
	Binary(t)
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK")
	}))
	defer impostor.Close()
	taken := impostor.Listener.Addr().(*net.TCPAddr).Port

	picks := 0
	orig := pickPorts
	pickPorts = func(udpCount int) (portSet, error) {
		ps, err := orig(udpCount)
		if picks++; picks == 1 {
			ps.http = taken
		}
		return ps, err
	}
	t.Cleanup(func() { pickPorts = orig })

	srv := Start(t, Options{})
	if srv.Port == taken {
		t.Fatalf("Start took the process holding port %d for livekit-server", taken)
	}
	if picks != 2 {
		t.Errorf("ports picked %d times, want 2 (the first start loses its HTTP port)", picks)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := srv.RoomService().ListRooms(ctx, &livekit.ListRoomsRequest{}); err != nil {
		t.Fatalf("ListRooms on the started server: %v", err)
	}
}
