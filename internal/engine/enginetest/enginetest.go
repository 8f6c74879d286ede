// Package enginetest gives tests raw access to what the engine stores:
// streams, buckets and subjects, and a bare JetStream loop to measure the
// processor against. Everything else in the module goes through the
// engine's repositories; with this package, only internal/engine imports
// nats.go.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// Stream opens a stream of eng by name.
func Stream(t testing.TB, eng *engine.Engine, name string) jetstream.Stream {
	t.Helper()
	s, err := eng.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// KV opens a KV bucket of eng by name.
func KV(t testing.TB, eng *engine.Engine, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := eng.JetStream().KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Msg is a core NATS message, as a subscriber (a livekit-webhook
// transport, a reports consumer) receives it.
type Msg = nats.Msg

// Subscribe calls f for every message on subject until the test ends,
// from the moment it returns (the subscription is flushed to the server).
func Subscribe(t testing.TB, eng *engine.Engine, subject string, f func(*Msg)) {
	t.Helper()
	nc := eng.Conn()
	sub, err := nc.Subscribe(subject, f)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1) // a burst must not be dropped as a slow consumer
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Publish stores n events through the engine exactly as intake does.
func Publish(b testing.TB, eng *engine.Engine, n int, mk func(i int) *livekit.WebhookEvent) {
	b.Helper()
	js := eng.JetStream()
	var futures []jetstream.PubAckFuture
	for i := 0; i < n; i++ {
		ev := mk(i)
		body, _ := protojson.Marshal(ev)
		msg := nats.NewMsg(engine.EventSubject(ev.Room.Name, ev.Event))
		msg.Data = body
		msg.Header.Set(engine.HeaderEventID, ev.Id)
		msg.Header.Set(engine.HeaderRoomKey, ev.Room.Name)
		msg.Header.Set(engine.HeaderRoomSID, ev.Room.Sid)
		msg.Header.Set(engine.HeaderEvent, ev.Event)
		f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.Id))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) >= 4096 {
			waitFutures(b, futures)
			futures = futures[:0]
		}
	}
	waitFutures(b, futures)
}

func waitFutures(b testing.TB, fs []jetstream.PubAckFuture) {
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-time.After(30 * time.Second):
			b.Fatal("publish timed out")
		}
	}
}

// BaselineLoop: the bare loop the issue names — per event one KV get, one
// compare-and-set update and one ack — with workers workers (the processor's count).
// Like the receiver's run, it is timed from the first publish to the last
// ack, publishing while it consumes.
func BaselineLoop(b testing.TB, ctx context.Context, eng *engine.Engine, n, keys, workers int) float64 {
	b.Helper()
	js := eng.JetStream()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BASELINE", Subjects: []string{"baseline.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "baseline", Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < keys; i++ {
		if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), []byte(`{"n":0}`)); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "baseline", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 8 * 256})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	finished := make(chan struct{})
	chans := make([]chan jetstream.Msg, workers)
	for w := range chans {
		chans[w] = make(chan jetstream.Msg, 64)
		wg.Add(1)
		go func(ch chan jetstream.Msg) {
			defer wg.Done()
			for m := range ch {
				key := "k" + m.Subject()[len("baseline."):]
				e, err := kv.Get(ctx, key)
				if err == nil {
					_, err = kv.Update(ctx, key, append([]byte(nil), e.Value()...), e.Revision())
				}
				if err != nil {
					_ = m.Nak()
					continue
				}
				_ = m.Ack()
				mu.Lock()
				done++
				if done == n {
					close(finished)
				}
				mu.Unlock()
			}
		}(chans[w])
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var h uint32
		for _, c := range m.Subject() {
			h = h*31 + uint32(c)
		}
		chans[h%uint32(workers)] <- m
	}, jetstream.PullMaxMessages(workers*32))
	if err != nil {
		b.Fatal(err)
	}
	// Publish while consuming, as the receiver's run does.
	start := time.Now()
	var futures []jetstream.PubAckFuture
	for i := 0; i < n; i++ {
		f, err := js.PublishAsync(fmt.Sprintf("baseline.%d", i%keys), []byte(`{"event":"participant_joined"}`))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) >= 4096 {
			waitFutures(b, futures)
			futures = futures[:0]
		}
	}
	waitFutures(b, futures)
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		b.Fatal("baseline did not finish")
	}
	rate := float64(n) / time.Since(start).Seconds()
	cc.Stop()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	return rate
}

// Keys lists the keys of a KV bucket (none is an empty list, not an error).
func Keys(t testing.TB, eng *engine.Engine, bucket string) []string {
	t.Helper()
	keys, err := KV(t, eng, bucket).Keys(context.Background())
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatal(err)
	}
	return keys
}

// Server starts a JetStream server on a free port (bound by the server
// itself) until the test ends and returns its URL: an external deployment
// several receivers (replicas) share.
func Server(t testing.TB) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}
