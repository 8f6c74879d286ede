package engine

import (
	"context"
	"fmt"
)

// StreamStats is what a benchmark reads of one stream.
type StreamStats struct {
	Writes    uint64 // messages ever stored: the last sequence, which stays when messages are removed
	Messages  uint64 // messages held now
	Consumers int
}

// Stats reads every stream of the store by name (KV buckets are the streams
// KV_<bucket>), so that a benchmark can count durable writes per store.
func (e *Engine) Stats(ctx context.Context) (map[string]StreamStats, error) {
	out := map[string]StreamStats{}
	lister := e.js.ListStreams(ctx)
	for info := range lister.Info() {
		out[info.Config.Name] = StreamStats{Writes: info.State.LastSeq, Messages: info.State.Msgs, Consumers: info.State.Consumers}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("stream stats: %w", err)
	}
	return out, nil
}
