package livekitwebhook

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
)

// BenchmarkProcessingVsBaseline measures the processor with 10,000 active
// sessions against a bare consumer loop on the same engine that does one KV
// get + compare-and-set update + ack per event, and reports the ratio.
//
//	go test -run XXX -bench ProcessingVsBaseline -benchtime 1x ./livekitwebhook
func BenchmarkProcessingVsBaseline(b *testing.B) {
	const active = 10_000
	n := max(b.N, 20_000)
	cfg := testConfig(b)
	cfg.FinalizeGrace = "1h"

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := startReceiver(b, cfg)
	eng := tr.engine()
	ctx := context.Background()

	t0 := time.Now().Unix()
	publish(b, eng, active, func(i int) *livekit.WebhookEvent {
		return roomEvent(fmt.Sprintf("EV_s%011d", i), "room_started", fmt.Sprintf("room-%d", i), fmt.Sprintf("RM_%d", i), t0)
	})
	waitDrained(b, eng, engine.ConsumerProcessor)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapPerSession := float64(after.HeapAlloc-before.HeapAlloc) / active

	// Receiver: n participant events spread over the active rooms.
	recvRate := timed(b, func() {
		publish(b, eng, n, func(i int) *livekit.WebhookEvent {
			room := i % active
			return participantEvent(fmt.Sprintf("EV_p%011d", i), "participant_joined", fmt.Sprintf("room-%d", room),
				fmt.Sprintf("RM_%d", room), fmt.Sprintf("PA_%d", i), fmt.Sprintf("user-%d", i), livekit.ParticipantInfo_STANDARD, t0+1, t0+1)
		})
		waitDrained(b, eng, engine.ConsumerProcessor)
	}, n)

	// Baseline on the same engine.
	baseRate := baselineLoop(b, ctx, eng, n, active)

	b.ReportMetric(recvRate, "events/s")
	b.ReportMetric(baseRate, "baseline_events/s")
	b.ReportMetric(recvRate/baseRate, "ratio")
	b.ReportMetric(heapPerSession, "heap_B/session")
	b.Logf("processing: %.0f events/s, baseline %.0f events/s, ratio %.2f; heap per active session %.0f B (%d sessions)",
		recvRate, baseRate, recvRate/baseRate, heapPerSession, active)
}

func timed(b *testing.B, f func(), n int) float64 {
	b.Helper()
	start := time.Now()
	f()
	return float64(n) / time.Since(start).Seconds()
}

// waitDrained waits until a consumer has acked everything in its stream.
func waitDrained(b testing.TB, eng *engine.Engine, name string) {
	b.Helper()
	ctx := context.Background()
	c, err := testStream(b, eng, engine.StreamEvents).Consumer(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("consumer did not drain")
}

// BenchmarkIntakeHandler calls the handler directly (no sockets) with
// unique, correctly signed events from 32 concurrent callers, for the
// receiver on the embedded engine and for a bare webhook.ReceiveWebhookEvent
// handler (the intake bench's baseline). Besides ns/op and allocations it
// reports the process's CPU per request (getrusage: steadier than wall time
// on a shared machine) and, for the receiver, requests per durable write.
// CPU per request is intake's cost; wall time above CPU/2 is idle waiting.
//
//	go test -run XXX -bench IntakeHandler -benchtime 20000x ./livekitwebhook
func BenchmarkIntakeHandler(b *testing.B) {
	b.Run("receiver", func(b *testing.B) {
		tr := startReceiver(b, testConfig(b))
		before := journalWrites(b, tr.Receiver)
		benchHandler(b, tr.Receiver)
		b.ReportMetric(float64(b.N)/float64(journalWrites(b, tr.Receiver)-before), "req/write")
	})
	b.Run("bare", func(b *testing.B) {
		keys := auth.NewSimpleKeyProvider(testKey, testSecret)
		benchHandler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := webhook.ReceiveWebhookEvent(r, keys); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusOK)
		}))
	})
}

func benchHandler(b *testing.B, h http.Handler) {
	n := b.N + 1
	bodies, tokens := make([][]byte, n), make([]string, n)
	for i := range n {
		ev := participantEvent(fmt.Sprintf("EV_b%011d", i), "participant_joined", "room", "RM_1", "PA_1", "u",
			livekit.ParticipantInfo_STANDARD, 1700000000, 1700000000)
		bodies[i] = marshal(b, ev)
		tokens[i] = sign(b, testKey, testSecret, bodies[i], 0)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // × GOMAXPROCS 2 = the intake bench's c=32
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req := httptest.NewRequest(http.MethodPost, "/voice/livekit/webhooks", bytes.NewReader(bodies[i]))
			req.Header.Set("Authorization", tokens[i])
			req.Header.Set("Content-Type", "application/webhook+json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the user+system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// journalWrites is the number of durable writes the receiver's engine made.
func journalWrites(t testing.TB, r *Receiver) uint64 {
	t.Helper()
	n, err := r.engine().JournalWrites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
