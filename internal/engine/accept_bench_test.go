package engine

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAccept measures the journal path alone (no HTTP): concurrent
// callers storing unique 500-byte events on the embedded engine. Besides
// ns/op it reports the process's CPU per event (getrusage; less sensitive
// to a noisy machine than wall time) and the events per envelope.
//
//	go test -run '^$' -bench Accept -benchtime 20000x ./internal/engine
func BenchmarkAccept(b *testing.B) {
	for _, callers := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) { benchAccept(b, callers) })
	}
}

func benchAccept(b *testing.B, callers int) {
	e := openTest(b, Config{})
	ctx := context.Background()
	pad := strings.Repeat("x", 400)
	var seq atomic.Int64
	before := envelopesWritten(b, e)
	cpu := cpuTime()
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			a := accepted(int(i))
			a.Body = fmt.Appendf(nil, `{"event":"room_started","id":"EV_B%d","room":{"name":"%s"}}`, i, pad)
			if _, err := e.Accept(ctx, a); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	used := cpuTime() - cpu
	envelopes := envelopesWritten(b, e) - before
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/event")
	if envelopes > 0 {
		b.ReportMetric(float64(b.N)/float64(envelopes), "events/envelope")
	}
}

// cpuTime is the user+system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
