package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyed is a recMsg with the key and sequence it was dispatched with.
type keyed struct {
	*recMsg
	key string
	seq int
}

func TestRouterOrderPerKey(t *testing.T) {
	const keys, perKey = 24, 150
	var mu sync.Mutex
	next := map[string]int{}   // next sequence expected per key
	active := map[string]int{} // handlers running per key
	h := func(_ context.Context, m Message) error {
		k := m.(*delivery).Message.(keyed)
		mu.Lock()
		active[k.key]++
		if active[k.key] > 1 {
			t.Errorf("key %s handled by two workers at once", k.key)
		}
		if next[k.key] != k.seq {
			t.Errorf("key %s: got seq %d, want %d", k.key, k.seq, next[k.key])
		}
		next[k.key] = k.seq + 1
		mu.Unlock()
		runtime.Gosched() // let other workers interleave
		mu.Lock()
		active[k.key]--
		mu.Unlock()
		return nil
	}
	r := NewRouter(h, WithWorkers(4))
	var wg sync.WaitGroup
	var msgs []*recMsg
	var msgsMu sync.Mutex
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("room-%d", k)
			for seq := range perKey {
				m := newRec(1)
				msgsMu.Lock()
				msgs = append(msgs, m)
				msgsMu.Unlock()
				if err := r.Dispatch(context.Background(), key, keyed{m, key, seq}); err != nil {
					t.Errorf("Dispatch: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if n := next[fmt.Sprintf("room-%d", k)]; n != perKey {
			t.Fatalf("room-%d: %d handled, want %d", k, n, perKey)
		}
	}
	for _, m := range msgs {
		if settledOnce(t, m) != -1 {
			t.Fatal("a message was not acked")
		}
	}
}

// TestRouterStopUnderConcurrentDispatch stops a router while many
// goroutines dispatch to it. Before this package, stopping closed the
// worker channels while the consumer could still send on them (panic: send
// on closed channel). Here nothing panics, and every message is settled
// exactly once: by the router if Dispatch took it, else by the caller. The
// race it guards is narrow, so each case runs many rounds.
func TestRouterStopUnderConcurrentDispatch(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 5
	}
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow=%v", slow), func(t *testing.T) {
			for range rounds {
				stopUnderDispatch(t, slow)
			}
		})
	}
}

func stopUnderDispatch(t *testing.T, slow bool) {
	t.Helper()
	started := make(chan struct{}, 1)
	h := func(ctx context.Context, _ Message) error {
		if slow {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done() // slower than the stop deadline
			return ctx.Err()
		}
		return nil
	}
	r := NewRouter(h, WithWorkers(3))
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		taken, refused []*recMsg
		dispatched     atomic.Int64
		enough         = make(chan struct{})
		enoughOnce     sync.Once
	)
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				m := newRec(1)
				err := r.Dispatch(context.Background(), fmt.Sprintf("k%d-%d", g, i%5), m)
				mu.Lock()
				if err == nil {
					taken = append(taken, m)
				} else {
					refused = append(refused, m)
				}
				mu.Unlock()
				if err != nil {
					if !errors.Is(err, ErrStopped) {
						t.Errorf("Dispatch: %v", err)
					}
					_ = m.Nak(time.Second) // the caller's part
					return
				}
				if dispatched.Add(1) == 200 || slow {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		})
	}
	<-enough
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if slow {
		// The deadline passes while handlers still run.
		<-started
		cancel()
	}
	err := r.Stop(ctx)
	if slow != (err != nil) {
		t.Fatalf("Stop = %v (slow handlers: %v)", err, slow)
	}
	wg.Wait()
	<-r.Closed()
	if err := r.Dispatch(context.Background(), "k", newRec(1)); !errors.Is(err, ErrStopped) {
		t.Fatalf("Dispatch after Stop = %v, want ErrStopped", err)
	}
	if len(taken) == 0 || len(refused) != 32 {
		t.Fatalf("taken %d, refused %d", len(taken), len(refused))
	}
	for _, m := range append(taken, refused...) {
		d := settledOnce(t, m)
		if slow && d != DefaultNakDelay {
			t.Fatalf("unfinished message settled with %v, want a nak after %v", d, DefaultNakDelay)
		}
	}
}

func TestRouterStopDeadline(t *testing.T) {
	started := make(chan struct{})
	var sunk atomic.Int32
	h := Chain(func(ctx context.Context, _ Message) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	},
		Retry(RetryPolicy{OnRetry: func(context.Context, Message, error, time.Duration) { t.Error("stopping counted as a retry") }}),
		DeadLetter(1, func(context.Context, Message, error, int) error { sunk.Add(1); return nil }))
	r := NewRouter(h, WithWorkers(1), WithNakDelay(3*time.Second))
	m := newRec(1)
	if err := r.Dispatch(context.Background(), "room", m); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
	<-r.Closed()
	if d := settledOnce(t, m); d != 3*time.Second {
		t.Fatalf("settled with %v, want a nak after the router's delay", d)
	}
	if sunk.Load() != 0 {
		t.Fatal("dead-lettered while stopping")
	}
}

func TestRouterYield(t *testing.T) {
	var yields, handled atomic.Int32
	all := make(chan struct{})
	h := func(context.Context, Message) error {
		n := handled.Add(1)
		if n != yields.Load() {
			t.Error("message handled without yielding first")
		}
		if n == 10 {
			close(all)
		}
		return nil
	}
	r := NewRouter(h, WithWorkers(1), WithYield(func(ctx context.Context) {
		if ctx == nil {
			t.Error("yield without a context")
		}
		yields.Add(1)
	}))
	for i := range 10 {
		if err := r.Dispatch(context.Background(), fmt.Sprint(i), newRec(1)); err != nil {
			t.Fatal(err)
		}
	}
	<-all // yield is skipped once Stop has begun
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if yields.Load() != 10 || handled.Load() != 10 {
		t.Fatalf("yields %d, handled %d; want 10, 10", yields.Load(), handled.Load())
	}
}

func TestDispatchGivesUpWithItsContext(t *testing.T) {
	release := make(chan struct{})
	r := NewRouter(func(context.Context, Message) error { <-release; return nil }, WithWorkers(1))
	defer func() { close(release); _ = r.Stop(context.Background()) }()
	ctx, cancel := context.WithCancel(context.Background())
	// One message runs and queueLen wait; the next blocks until ctx ends.
	for range queueLen + 1 {
		if err := r.Dispatch(ctx, "room", newRec(1)); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Dispatch(ctx, "room", newRec(1)) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dispatch = %v, want context.Canceled", err)
	}
}

// A handler behind the Router (whose Settle wraps each message) gets back
// to the store's message type, and knows its worker; one key's messages
// all run on one worker.
func TestRouterHandlerSeesUnderlyingAndWorker(t *testing.T) {
	type got struct {
		m      *recMsg
		ok     bool
		worker int
		hasW   bool
	}
	const workers = 3
	seen := make(chan got, 16)
	r := NewRouter(func(ctx context.Context, m Message) error {
		if _, wrapped := m.(*recMsg); wrapped {
			t.Error("the handler got the message unwrapped: Settle no longer tracks it")
		}
		u, ok := Underlying[*recMsg](m)
		w, hasW := Worker(ctx)
		seen <- got{u, ok, w, hasW}
		return nil
	}, WithWorkers(workers))
	defer func() { _ = r.Stop(context.Background()) }()
	var sent []*recMsg
	for range 4 {
		m := newRec(1)
		sent = append(sent, m)
		if err := r.Dispatch(context.Background(), "room-a", m); err != nil {
			t.Fatal(err)
		}
	}
	first := -1
	for i := range sent {
		g := <-seen
		if !g.ok || g.m != sent[i] {
			t.Fatalf("message %d: Underlying = %p, %v; want %p", i, g.m, g.ok, sent[i])
		}
		if !g.hasW || g.worker < 0 || g.worker >= workers {
			t.Fatalf("Worker = %d, %v", g.worker, g.hasW)
		}
		if first < 0 {
			first = g.worker
		} else if g.worker != first {
			t.Fatalf("one key on workers %d and %d", first, g.worker)
		}
	}
	if _, ok := Underlying[*recMsg](keyed{}); ok {
		t.Error("Underlying found a type the message neither is nor wraps")
	}
	if _, ok := Worker(context.Background()); ok {
		t.Error("Worker outside a router")
	}
}
