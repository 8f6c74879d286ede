package lkserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// DefaultReconcilePath is the reconciliation endpoint of `lkwebhook serve`
// (GET: the latest pass, POST: run one now). It answers 404 until the first
// pass, and always without --livekit-url.
const DefaultReconcilePath = "/voice/livekit/reconcile"

// ReconcileStatus mirrors the JSON of the reconciliation endpoint
// (livekitwebhook.ReconcileStatus), declared here so that the wire format is
// what is tested.
type ReconcileStatus struct {
	At           time.Time     `json:"at"`
	LiveKitRooms int           `json:"livekit_rooms"`
	Closed       []string      `json:"closed"`
	Unknown      []UnknownRoom `json:"unknown"`
	Error        string        `json:"error,omitempty"`
}

// UnknownRoom is a room LiveKit lists that serve has no state for.
type UnknownRoom struct {
	SID  string `json:"sid"`
	Name string `json:"name"`
}

// HasUnknown reports whether sid is listed under unknown.
func (st ReconcileStatus) HasUnknown(sid string) bool {
	for _, u := range st.Unknown {
		if u.SID == sid {
			return true
		}
	}
	return false
}

// TryReconcileStatus reads serve's latest pass (GET DefaultReconcilePath):
// found is false on 404 (no pass yet, or no reconciler).
func TryReconcileStatus(sv *servetest.Serve) (st ReconcileStatus, found bool, err error) {
	code, body, err := sv.Get(DefaultReconcilePath)
	if err != nil {
		return st, false, err
	}
	return decodeReconcile(http.MethodGet, code, body)
}

// TryReconcileNow has serve run a pass now (POST DefaultReconcilePath) and
// returns it: found is false on 404 (no reconciler configured).
func TryReconcileNow(sv *servetest.Serve) (st ReconcileStatus, found bool, err error) {
	req, err := http.NewRequest(http.MethodPost, sv.URL()+DefaultReconcilePath, nil)
	if err != nil {
		return st, false, err
	}
	req.Header.Set("Content-Type", "application/json") // the receiver refuses a simple (forgeable) POST
	code, body, err := sv.Do(req)
	if err != nil {
		return st, false, err
	}
	return decodeReconcile(http.MethodPost, code, body)
}

func decodeReconcile(method string, code int, body []byte) (st ReconcileStatus, found bool, err error) {
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return st, false, nil
	default:
		return st, false, fmt.Errorf("%s reconcile: %d %s", method, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, false, fmt.Errorf("%s reconcile: %w: %s", method, err, body)
	}
	return st, true, nil
}
