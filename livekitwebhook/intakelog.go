package livekitwebhook

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/console"
)

// intakeLog keeps, in memory, the latest refusals and delivery lags this
// process saw: the console's intake page. Lags go in a lock-free ring
// (intake's hot path); refusals, rarer, under a lock.
type intakeLog struct {
	mu       sync.Mutex
	refusals [maxRefusals]refusalRecord
	nRef     int

	lags [lagSamples]atomic.Int64 // milliseconds
	nLag atomic.Uint64
}

const (
	maxRefusals = 1000
	lagSamples  = 1024
)

type refusalRecord struct {
	at             time.Time
	reason, remote string
	event          string
}

// refused records a refusal: its time, reason, remote address and event
// name when the body was decoded. Never a header or the body.
func (l *intakeLog) refused(req *http.Request, ev *livekit.WebhookEvent, reason string) {
	rec := refusalRecord{at: time.Now(), reason: reason, remote: req.RemoteAddr, event: clipID(eventName(ev))}
	l.mu.Lock()
	l.refusals[l.nRef%maxRefusals] = rec
	l.nRef++
	l.mu.Unlock()
}

// refusalList returns the recorded refusals, newest first.
func (l *intakeLog) refusalList() []console.Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.nRef, maxRefusals)
	out := make([]console.Refusal, 0, n)
	for i := 1; i <= n; i++ {
		r := l.refusals[(l.nRef-i)%maxRefusals]
		out = append(out, console.Refusal{At: r.at, Reason: r.reason, Remote: r.remote, Event: r.event})
	}
	return out
}

func (l *intakeLog) lag(d time.Duration) {
	i := l.nLag.Add(1) - 1
	l.lags[i%lagSamples].Store(d.Milliseconds())
}

// lagStats are the p50, p95 and max of the latest lags, in seconds.
func (l *intakeLog) lagStats() (n int, p50, p95, maxLag float64) {
	n = int(min(l.nLag.Load(), lagSamples))
	if n == 0 {
		return 0, 0, 0, 0
	}
	v := make([]int64, n)
	for i := range v {
		v[i] = l.lags[i].Load()
	}
	slices.Sort(v)
	at := func(q float64) float64 { return float64(v[min(n-1, int(q*float64(n)))]) / 1000 }
	return n, at(0.5), at(0.95), float64(v[n-1]) / 1000
}
