package livekitwebhook

import (
	"context"
	"errors"
)

// Reconcile runs one reconciliation pass now (it also runs on its interval
// once started with WithReconciler).
func (r *Receiver) Reconcile(ctx context.Context) (ReconcileStatus, error) {
	c := r.reconcilerRef()
	if c == nil {
		return ReconcileStatus{}, errors.New("livekitwebhook: no reconciler configured (WithReconciler)")
	}
	st := c.pass(ctx)
	c.mu.Lock()
	c.last = st
	c.mu.Unlock()
	return st, nil
}

// LastReconcile returns the latest pass's outcome.
func (r *Receiver) LastReconcile() (ReconcileStatus, bool) {
	c := r.reconcilerRef()
	if c == nil {
		return ReconcileStatus{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, !c.last.At.IsZero()
}
