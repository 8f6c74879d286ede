package engine

import "sync"

// Interrupted remembers, across engine restarts, which messages were being
// handled when a connection was lost for good: handling one of them again
// may be what closes the next connection too (a poison entry). A key names
// a message; part says how far its handling got (-1: not known, or not
// alone). Handle such a suspect alone (see DistributeOptions.Lane), so that
// a loss during its handling is its own doing and not a neighbour's. The
// zero value is ready to use; a nil one remembers nothing.
type Interrupted struct {
	mu sync.Mutex
	at map[string]int
}

// interruptedKept bounds what is remembered; past it the oldest knowledge
// is dropped (a poison entry then only takes longer to find).
const interruptedKept = 4096

// Begin records that the handling of key on e has reached part. It
// returns false, recording nothing, when e is lost already: a handling that
// starts then cannot be blamed for the loss; leave the message to its
// redelivery.
func (i *Interrupted) Begin(e *Engine, key string, part int) bool {
	if e.isLost() {
		return false
	}
	if i == nil || key == "" {
		return true
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.at == nil || len(i.at) >= interruptedKept {
		i.at = map[string]int{}
	}
	i.at[key] = part
	return true
}

// End forgets key once its handling is settled, unless e was lost
// meanwhile: then the handling was interrupted and is remembered.
func (i *Interrupted) End(e *Engine, key string) {
	if i == nil || key == "" || e.isLost() {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.at, key)
}

// Of reports whether the last handling of key was interrupted, and at
// which part.
func (i *Interrupted) Of(key string) (part int, ok bool) {
	if i == nil || key == "" {
		return 0, false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	part, ok = i.at[key]
	return part, ok
}
