package lkserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
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

// TryReconcileStatus reads the latest pass (GET DefaultReconcilePath):
// found is false on 404 (no pass yet, or no reconciler).
func (s *Serve) TryReconcileStatus() (st ReconcileStatus, found bool, err error) {
	code, body, err := s.get(DefaultReconcilePath)
	if err != nil {
		return st, false, err
	}
	return decodeReconcile(http.MethodGet, code, body)
}

// TryReconcileNow runs a pass now (POST DefaultReconcilePath) and returns
// it: found is false on 404 (no reconciler configured).
func (s *Serve) TryReconcileNow() (st ReconcileStatus, found bool, err error) {
	req, err := http.NewRequest(http.MethodPost, s.URL+DefaultReconcilePath, nil)
	if err != nil {
		return st, false, err
	}
	req.Header.Set("Content-Type", "application/json") // the receiver refuses a simple (forgeable) POST
	if s.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.AdminToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return st, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, false, err
	}
	return decodeReconcile(http.MethodPost, resp.StatusCode, body)
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
