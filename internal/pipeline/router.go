package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Router runs one handler on a fixed set of workers. Messages dispatched
// with the same key always go to the same worker, so one key's messages
// (a room's events) are handled one at a time, in dispatch order.
//
// It stops through contexts, never by closing a channel a Dispatch may
// still be sending on: once Stop has begun, Dispatch answers ErrStopped.
// A panic no Recover in the chain catches ends the process, as in any
// goroutine.
type Router struct {
	handler  Handler // the chain, with Settle outermost
	yield    func(context.Context)
	nakDelay time.Duration
	workerN  int
	queues   []chan Message // one per worker, never closed

	// mu orders Dispatch's admission against Stop: every Dispatch admitted
	// (counted in senders) was admitted before stopping was set.
	mu       sync.RWMutex
	stopping bool
	senders  sync.WaitGroup
	stopCh   chan struct{} // closed when Stop begins: no new message, yield no more
	sealed   chan struct{} // closed once no Dispatch is sending: workers empty their queue and end

	ctx     context.Context // handlers' context; canceled at Stop's deadline
	cancel  context.CancelFunc
	workers sync.WaitGroup
	closed  chan struct{}
}

// Option configures a Router.
type Option func(*Router)

// WithWorkers sets the number of workers (default GOMAXPROCS).
func WithWorkers(n int) Option {
	return func(r *Router) {
		if n > 0 {
			r.workerN = n
		}
	}
}

// WithYield sets a function called before each message, bounded by its
// context (the processor waits there for intake to go quiet). It is not
// called once Stop has begun.
func WithYield(f func(ctx context.Context)) Option {
	return func(r *Router) { r.yield = f }
}

// DefaultNakDelay is how soon a message comes back when nothing chose a
// delay: a failure while stopping, or one not handled at all.
const DefaultNakDelay = time.Second

// WithNakDelay sets the delay of naks no middleware chose (default
// DefaultNakDelay).
func WithNakDelay(d time.Duration) Option {
	return func(r *Router) { r.nakDelay = d }
}

// queueLen is each worker's buffer: enough to keep a worker busy while the
// dispatcher fetches more, small enough that a stop leaves little queued.
const queueLen = 4

// NewRouter starts the workers that run h, wrapped in Settle, on each
// dispatched message. Stop ends them.
func NewRouter(h Handler, opts ...Option) *Router {
	if h == nil {
		panic("pipeline: NewRouter needs a handler")
	}
	r := &Router{
		nakDelay: DefaultNakDelay,
		workerN:  runtime.GOMAXPROCS(0),
		stopCh:   make(chan struct{}),
		sealed:   make(chan struct{}),
		closed:   make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	r.handler = Settle(r.nakDelay)(h)
	r.queues = make([]chan Message, r.workerN)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for i := range r.queues {
		q := make(chan Message, queueLen)
		r.queues[i] = q
		ctx := context.WithValue(r.ctx, workerKey{}, i)
		r.workers.Go(func() { r.work(ctx, q) })
	}
	go func() {
		r.workers.Wait()
		r.cancel()
		close(r.closed)
	}()
	return r
}

// Dispatch hands m to the worker of key, waiting while that worker's queue
// is full. It returns ErrStopped once Stop has begun, or ctx's error: the
// message was not taken, and the caller naks it. Once Dispatch returns nil
// the router settles m.
func (r *Router) Dispatch(ctx context.Context, key string, m Message) error {
	r.mu.RLock()
	if r.stopping {
		r.mu.RUnlock()
		return ErrStopped
	}
	r.senders.Add(1)
	r.mu.RUnlock()
	defer r.senders.Done()

	select {
	case r.queues[slot(key, len(r.queues))] <- m:
		return nil
	case <-r.stopCh:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slot is the worker of key: FNV-1a, inline so that dispatching allocates
// nothing.
func slot(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// work handles its queue until Stop has begun and no Dispatch can add to
// it, then handles what is left and ends.
func (r *Router) work(ctx context.Context, q chan Message) {
	for {
		select {
		case m := <-q:
			r.handle(ctx, m)
		case <-r.sealed:
			for {
				select {
				case m := <-q:
					r.handle(ctx, m)
				default:
					return
				}
			}
		}
	}
}

func (r *Router) handle(ctx context.Context, m Message) {
	if r.ctx.Err() != nil {
		// Past Stop's deadline: hand it back now rather than after its
		// ack wait.
		_ = m.Nak(r.nakDelay)
		return
	}
	select {
	case <-r.stopCh:
	default:
		if r.yield != nil {
			r.yield(r.ctx)
		}
	}
	_ = r.handler(ctx, m)
}

type workerKey struct{}

// Worker returns the index, in [0, workers), of the Router worker whose
// handler ctx belongs to: state kept per worker (a cache of one key's
// records) needs no lock, since a key's messages all go to one worker.
func Worker(ctx context.Context) (int, bool) {
	i, ok := ctx.Value(workerKey{}).(int)
	return i, ok
}

// Stop stops taking messages, lets the workers finish what they hold until
// ctx ends, then cancels the handlers' context: an unfinished message is
// nak'ed and comes back later (see Settle). It returns nil once every
// worker has ended, or ctx's error if some were still running; Closed
// tells when they are done.
func (r *Router) Stop(ctx context.Context) error {
	r.mu.Lock()
	first := !r.stopping
	r.stopping = true
	r.mu.Unlock()
	if first {
		close(r.stopCh)
		go func() {
			r.senders.Wait() // returns soon: each sender sees stopCh
			close(r.sealed)
		}()
	}
	select {
	case <-r.closed:
		return nil
	case <-ctx.Done():
		r.cancel()
		return fmt.Errorf("pipeline: stop: handlers still running: %w", ctx.Err())
	}
}

// Closed is closed once Stop has begun and every worker has ended.
func (r *Router) Closed() <-chan struct{} { return r.closed }
