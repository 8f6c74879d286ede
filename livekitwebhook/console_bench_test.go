package livekitwebhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// BenchmarkConsole renders the console's calls page with 10,000 ended
// sessions stored, against the sessions API listing the same number of
// ended sessions (GET SessionsPath?limit=50) in the same run:
//
//	go test -run '^$' -bench Console -benchtime 200x ./livekitwebhook
//
// calls_page is the first page (50 ended calls and the counts); page_100
// is the 100th page (reports 4,951 to 5,000 from the newest): the same
// cost, since a page starts at its cursor's sequence. filtered_rare is a
// filter no stored call matches: it reads the whole scan window (500
// reports) and stops there.
func BenchmarkConsole(b *testing.B) {
	const stored = 10_000
	cfg := testConfig(b)
	tr := startReceiver(b, cfg)
	eng := tr.engine()
	ctx := context.Background()
	t0 := time.Now().Add(-2 * time.Hour)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				started := t0.Add(time.Duration(i) * 500 * time.Millisecond)
				end := started.Add(90 * time.Second)
				rep := Report{SessionID: fmt.Sprintf("call-%05d", i), RoomName: fmt.Sprintf("call-%05d", i), RoomSID: fmt.Sprintf("RM_bench%06d", i),
					StartedAt: started, EndedAt: end, DurationSeconds: 90, ParticipantSeconds: 170,
					ParticipantSecondsByKind: map[string]float64{"agent": 88, "standard": 82}, Disposition: DispositionCompleted,
					Participants: []Participant{
						{SID: fmt.Sprintf("PA_a%06d", i), Identity: "agent-ava", Kind: "agent", State: "left", JoinedAt: started, LeftAt: &end, Seconds: 88},
						{SID: fmt.Sprintf("PA_c%06d", i), Identity: fmt.Sprintf("customer-%d", i), Kind: "standard", State: "left", JoinedAt: started, LeftAt: &end, Seconds: 82},
					}, EventsApplied: 6}
				body, _ := json.Marshal(rep)
				if err := eng.Reports.Store(ctx, "", rep.RoomSID, rep.SessionID, body); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range stored {
		work <- i
	}
	close(work)
	wg.Wait()
	routes := tr.Routes()
	c := cfg.ConsolePath
	console, sessions := routes[c+"/"], routes[cfg.SessionsPath]
	get := func(b *testing.B, h http.Handler, url string) {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1234", "127.0.0.1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", url, w.Code, w.Body.String())
		}
	}
	// The cursor of the 100th page.
	var cursor uint64
	n := 0
	_ = eng.Reports.Before(ctx, 0, func(seq uint64, _ time.Time, _ []byte) bool {
		n++
		cursor = seq
		return n < 99*50
	})
	cases := []struct {
		name string
		h    http.Handler
		url  string
	}{
		{"sessions_api_baseline", sessions, cfg.SessionsPath + "?limit=50"},
		{"calls_page", console, c + "/"},
		{"page_100", console, fmt.Sprintf("%s/?before=%d", c, cursor)},
		{"filtered_rare", console, c + "/?identity=nobody-has-this"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			get(b, tc.h, tc.url) // warm
			b.ResetTimer()
			for range b.N {
				get(b, tc.h, tc.url)
			}
		})
	}
}
