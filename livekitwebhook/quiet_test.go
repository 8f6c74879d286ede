package livekitwebhook

import (
	"context"
	"testing"
	"time"
)

func timeWaitQuiet(ctx context.Context, a *intakeActivity, bound time.Duration) time.Duration {
	start := time.Now()
	a.waitQuiet(ctx, bound)
	return time.Since(start)
}

func TestWaitQuiet(t *testing.T) {
	t.Run("idle intake does not wait", func(t *testing.T) {
		var a intakeActivity
		if d := timeWaitQuiet(context.Background(), &a, time.Minute); d > time.Second {
			t.Fatalf("waited %s with no request ever answered", d)
		}
	})
	t.Run("a request in flight holds it until the bound", func(t *testing.T) {
		var a intakeActivity
		a.enter()
		defer a.leave()
		if d := timeWaitQuiet(context.Background(), &a, 50*time.Millisecond); d < 50*time.Millisecond || d > 10*time.Second {
			t.Fatalf("waited %s with a request in flight and a 50ms bound", d)
		}
	})
	t.Run("it returns once intake has been quiet for the gap", func(t *testing.T) {
		var a intakeActivity
		a.enter()
		go func() {
			time.Sleep(30 * time.Millisecond)
			a.leave()
		}()
		d := timeWaitQuiet(context.Background(), &a, time.Minute)
		if d < 30*time.Millisecond+quietGap || d > 10*time.Second {
			t.Fatalf("waited %s; the request ended after 30ms and the gap is %s", d, quietGap)
		}
	})
	t.Run("a request that just ended still counts", func(t *testing.T) {
		var a intakeActivity
		a.enter()
		a.leave()
		if d := timeWaitQuiet(context.Background(), &a, time.Minute); d < quietGap/2 || d > 10*time.Second {
			t.Fatalf("waited %s right after a request; want about the %s gap", d, quietGap)
		}
	})
	t.Run("cancellation ends the wait", func(t *testing.T) {
		var a intakeActivity
		a.enter()
		defer a.leave()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if d := timeWaitQuiet(ctx, &a, time.Minute); d > 10*time.Second {
			t.Fatalf("waited %s after cancel", d)
		}
	})
}
