package engine

import "sync"

// Interrupted remembers, across engine restarts, which messages were being
// handled when a connection was lost for good: handling one of them again
// may be what closes the next connection too (a poison entry). A key names
// a message; part says how far its handling got (-1: not known). The zero
// value is ready to use; a nil one remembers nothing.
type Interrupted struct {
	mu sync.Mutex
	at map[string]int
}

// interruptedKept bounds what is remembered; past it the oldest knowledge
// is dropped (a poison entry then only takes longer to find).
const interruptedKept = 4096

// Begin records that the handling of key has reached part.
func (i *Interrupted) Begin(key string, part int) {
	if i == nil || key == "" {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.at == nil || len(i.at) >= interruptedKept {
		i.at = map[string]int{}
	}
	i.at[key] = part
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
