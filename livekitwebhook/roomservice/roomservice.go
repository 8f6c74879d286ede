// Package roomservice lists LiveKit rooms through server-sdk-go's
// RoomService for the receiver's reconciler. It lives apart from
// livekitwebhook so that programs without reconciliation do not link the
// LiveKit client SDK.
package roomservice

import (
	"context"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// Lister lists the rooms a LiveKit deployment has open.
type Lister struct {
	c   *lksdk.RoomServiceClient
	key string
}

// New returns a Lister for the LiveKit server at url (http(s) or ws(s)),
// authenticated with an API key and secret that may list rooms.
func New(url, apiKey, apiSecret string) *Lister {
	return &Lister{c: lksdk.NewRoomServiceClient(url, apiKey, apiSecret), key: apiKey}
}

// APIKey is the key the Lister lists with (never the secret): with several
// projects on one receiver, the reconciler closes only that key's
// project's sessions.
func (l *Lister) APIKey() string { return l.key }

// ListRooms returns every open room.
func (l *Lister) ListRooms(ctx context.Context) ([]*livekit.Room, error) {
	res, err := l.c.ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil {
		return nil, err
	}
	return res.Rooms, nil
}
