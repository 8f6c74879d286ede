package livekitwebhook

import (
	"context"
	"time"
)

// supervisor re-opens the engine whenever its connection is lost for good:
// nats.go reconnects after a disconnect, but closes the connection for good
// on some server errors, and an embedded server that stopped does not come
// back. Intake answers 503 meanwhile (LiveKit retries).
type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// restartStopBound bounds how long a restart waits for the old processor's
// in-flight events (they fail fast: the connection is gone).
const restartStopBound = 5 * time.Second

// maxRestartWait caps the wait between restart attempts: a restart is
// cheap, and intake answers 503 until one succeeds.
const maxRestartWait = 5 * time.Second

// superviseEngine starts the supervisor, with r.life held.
func (r *Receiver) superviseEngine() {
	ctx, cancel := context.WithCancel(context.Background())
	sup := &supervisor{cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.sup = sup
	r.mu.Unlock()
	go func() {
		defer close(sup.done)
		streak := 0 // losses in a row, each soon after the last restart
		for {
			eng := r.engine()
			if eng == nil {
				return
			}
			opened := time.Now()
			select {
			case <-ctx.Done():
				return
			case <-eng.Lost():
			}
			if time.Since(opened) < time.Minute {
				streak++
			} else {
				streak = 0
			}
			r.restartEngine(ctx, streak)
		}
	}()
}

// stopSupervisor stops the supervisor and waits for it, without r.life: a
// restart in progress holds it and gives up once its context ends.
func (r *Receiver) stopSupervisor() {
	r.mu.Lock()
	sup := r.sup
	r.sup = nil
	r.mu.Unlock()
	if sup != nil {
		sup.cancel()
		<-sup.done
	}
}

// restartEngine closes the lost engine and opens a new one, retrying with
// backoff until it succeeds or ctx ends. A loss soon after the previous
// restart (streak > 1) waits first: whatever closes the connection may do
// it again at once.
func (r *Receiver) restartEngine(ctx context.Context, streak int) {
	r.life.Lock()
	defer r.life.Unlock()
	r.restarting.Store(true)
	defer r.restarting.Store(false)
	eng, proc := r.takeEngine()
	if eng == nil {
		return
	}
	r.log.Error("engine connection lost for good; restarting the engine")
	if proc != nil {
		sctx, cancel := context.WithTimeout(ctx, restartStopBound)
		proc.stop(sctx)
		cancel()
	}
	_ = eng.Close()
	if streak > 1 && !sleepCtx(ctx, min(backoff(streak-1), maxRestartWait)) {
		return
	}
	for attempt := 1; ; attempt++ {
		err := r.start(ctx)
		if err == nil {
			r.tel.engineRestarts.Add(ctx, 1)
			r.log.Info("engine restarted", "attempt", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("engine restart failed, retrying", "attempt", attempt, "error", err.Error())
		if !sleepCtx(ctx, min(backoff(attempt), maxRestartWait)) {
			return
		}
	}
}

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
