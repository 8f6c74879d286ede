package faulttest

import (
	"os"
	"testing"
	"time"
)

// crashCase kills serve with SIGKILL each time the notifier has reported
// the given fraction of the burst, and restarts it on the same data
// directory and port about a second later.
type crashCase struct {
	name   string
	rooms  int
	killAt []float64
}

func TestCrashDuringBurst(t *testing.T) {
	cases := []crashCase{
		// Half the events delivered: some rooms finished, some mid-way.
		{name: "midway", rooms: 40, killAt: []float64{0.5}},
		// Early, while intake and the processor are saturated by a larger
		// burst, then again while the restarted process is redelivering.
		{name: "busy_twice", rooms: 100, killAt: []float64{0.15, 0.55}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCrash(t, tc) })
	}
}

func runCrash(t *testing.T, tc crashCase) {
	start := time.Now()
	s := startServe(t, t.TempDir())
	rooms := planRooms("c"+tc.name[:1], tc.rooms)
	b := newBurst(t, s.WebhookURL(), rooms)
	t.Logf("serve ready in %s; %d rooms, %d events", time.Since(start).Round(time.Millisecond), len(rooms), b.total)

	burstStart := time.Now()
	go b.queue()
	for i, frac := range tc.killAt {
		at := int(frac * float64(b.total))
		select {
		case <-b.after(at):
		case <-time.After(30 * time.Second):
			t.Fatalf("notifier reported only %d of %d events in 30s", b.done.Load(), b.total)
		}
		reported := b.done.Load()
		s.Kill()
		t.Logf("kill -9 #%d at %d/%d reported events (%s into the burst)", i+1, reported, b.total, time.Since(burstStart).Round(time.Millisecond))
		time.Sleep(time.Second)
		s.Start()
		ready := s.WaitHealthy(t, 30*time.Second)
		t.Logf("restart #%d healthy %s after start", i+1, ready.Round(time.Millisecond))
	}
	b.waitAll(40 * time.Second)
	sent, failed, dropped, detail := b.summary()
	t.Logf("notifier: %d sent, %d failed, %d dropped in %s", sent, failed, dropped, time.Since(burstStart).Round(time.Millisecond))
	if failed+dropped > 0 {
		t.Errorf("the notifier lost events (it retries for ~30s and keeps them 2 min):\n%s", detail)
	}
	list, waited := waitEnded(t, s, b, endWait())
	t.Logf("waited %s after the last delivery for the reports", waited.Round(time.Millisecond))
	bugs := newBugLog(t)
	checkReports(t, b, list, waited, bugs)
	if !s.Running() {
		t.Fatal("serve exited")
	}
	bugs.finish()
}

// endWait is how long to wait for every room's report after the last
// delivery; LKWEBHOOK_FAULT_ENDWAIT (a Go duration) sets it, to see how
// long a stuck room really takes.
func endWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LKWEBHOOK_FAULT_ENDWAIT")); err == nil {
		return d
	}
	return 20 * time.Second
}
