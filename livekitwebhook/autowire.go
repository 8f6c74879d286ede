package livekitwebhook

import (
	"context"
	"time"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/server"
)

// AutoWire switches the receiver on from configuration. When cfg.Enabled is
// true and transportName is "livekit" or TransportName ("livekit-webhook"),
// it builds a Receiver (New), starts it (Start, bounded by ctx) and mounts
// its routes on srv (Mount), and returns it: the caller Stops it on
// shutdown. Otherwise it does nothing and returns (nil, nil), so it can be
// called unconditionally at startup:
//
//	cfg, _ := livekitwebhook.LoadConfigFromEnv() // BELUGA_LIVEKIT_WEBHOOK_ENABLED=true
//	recv, err := livekitwebhook.AutoWire(ctx, srv, "livekit", cfg)
//	if recv != nil { defer recv.Stop(context.Background()) }
//
// transportName is compared exactly, as Beluga's registry does. If Mount
// fails the receiver is stopped again and the error returned.
func AutoWire(ctx context.Context, srv server.ServerAdapter, transportName string, cfg Config, opts ...Option) (*Receiver, error) {
	if !cfg.Enabled || (transportName != "livekit" && transportName != TransportName) {
		return nil, nil
	}
	if srv == nil {
		return nil, core.NewError("livekitwebhook.autowire", core.ErrInvalidInput, "server adapter is nil", nil)
	}
	r, err := New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	if err := r.Mount(srv); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.Stop(sctx)
		return nil, err
	}
	return r, nil
}
