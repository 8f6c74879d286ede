package lifecycle

import (
	"cmp"
	"slices"
	"time"

	"github.com/livekit/protocol/livekit"
)

// EgressFile is one file result of an egress, as much of livekit.FileInfo as
// the report shows.
type EgressFile struct {
	// Name is FileInfo.Filename.
	Name string `json:"n,omitempty"`
	// Location is FileInfo.Location.
	Location string `json:"l,omitempty"`
	// Size is FileInfo.Size in bytes.
	Size int64 `json:"sz,omitempty"`
	// DurationNs is FileInfo.Duration (nanoseconds).
	DurationNs int64 `json:"d,omitempty"`
}

// Recording is one egress of the room in a Session.
type Recording struct {
	// EgressID is LiveKit's egress id.
	EgressID string `json:"egress_id"`
	// Status is LiveKit's EgressStatus name (EGRESS_ACTIVE, EGRESS_COMPLETE, …).
	Status string `json:"status"`
	// StartedAt is EgressInfo.startedAt, if known.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// EndedAt is set once the egress reached a terminal status.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// DurationSeconds is EndedAt - StartedAt (0 until ended).
	DurationSeconds float64 `json:"duration_seconds"`
	// Error is EgressInfo.error, or "".
	Error string `json:"error"`
	// Files are the file results (never null).
	Files []RecordingFile `json:"files"`
}

// RecordingFile is one file written by an egress.
type RecordingFile struct {
	Filename        string  `json:"filename"`
	Location        string  `json:"location"`
	Size            int64   `json:"size"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// EgressTerminal reports whether an EgressStatus is final: LiveKit never
// moves an egress out of COMPLETE, FAILED, ABORTED or LIMIT_REACHED.
func EgressTerminal(status int32) bool {
	switch livekit.EgressStatus(status) {
	case livekit.EgressStatus_EGRESS_COMPLETE, livekit.EgressStatus_EGRESS_FAILED,
		livekit.EgressStatus_EGRESS_ABORTED, livekit.EgressStatus_EGRESS_LIMIT_REACHED:
		return true
	}
	return false
}

// IsEgressEvent reports whether an event name is one of the egress events.
func IsEgressEvent(name string) bool {
	return name == EventEgressStarted || name == EventEgressUpdated || name == EventEgressEnded
}

// egressSnapshot is what one egress event says about its egress.
type egressSnapshot struct {
	final     bool
	updatedNs int64
	eventSec  int64
	status    int32
	endedNs   int64
	err       string
	files     []EgressFile
}

func snapshotOf(ev *livekit.WebhookEvent) egressSnapshot {
	info := ev.GetEgressInfo()
	s := egressSnapshot{
		status:    int32(info.GetStatus()),
		updatedNs: max(info.GetUpdatedAt(), 0),
		eventSec:  max(ev.GetCreatedAt(), 0),
		endedNs:   max(info.GetEndedAt(), 0),
		err:       info.GetError(),
	}
	s.final = EgressTerminal(s.status) || ev.GetEvent() == EventEgressEnded
	results := info.GetFileResults()
	if len(results) == 0 && info.GetFile() != nil {
		results = []*livekit.FileInfo{info.GetFile()} // deprecated single result
	}
	for _, f := range results {
		if f == nil {
			continue
		}
		s.files = append(s.files, EgressFile{Name: f.GetFilename(), Location: f.GetLocation(),
			Size: f.GetSize(), DurationNs: max(f.GetDuration(), 0)})
	}
	return s
}

func (e EgressState) snapshot() egressSnapshot {
	return egressSnapshot{final: e.Final, updatedNs: e.UpdatedNs, eventSec: e.EventSec, status: e.Status,
		endedNs: e.EndedNs, err: e.Error, files: e.Files}
}

// compareSnapshots is a total order on snapshots; the greatest one is what
// the egress shows. A final snapshot beats any other (a late ACTIVE never
// replaces COMPLETE), then the later updatedAt, then the later event
// createdAt; the remaining keys only make the order total, so that the
// choice is the same in any order of arrival.
func compareSnapshots(a, b egressSnapshot) int {
	if a.final != b.final {
		if a.final {
			return 1
		}
		return -1
	}
	if c := cmp.Or(cmp.Compare(a.updatedNs, b.updatedNs), cmp.Compare(a.eventSec, b.eventSec),
		cmp.Compare(a.status, b.status), cmp.Compare(a.endedNs, b.endedNs)); c != 0 {
		return c
	}
	if a.err != b.err { // a non-empty error beats none, then the smallest
		switch {
		case a.err == "":
			return -1
		case b.err == "":
			return 1
		}
		return -cmp.Compare(a.err, b.err)
	}
	return slices.CompareFunc(a.files, b.files, func(x, y EgressFile) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Location, y.Location),
			cmp.Compare(x.Size, y.Size), cmp.Compare(x.DurationNs, y.DurationNs))
	})
}

// foldEgressEvent merges an egress event into the entry of its egress id
// (created if missing), copying the slice first.
func foldEgressEvent(list []EgressState, ev *livekit.WebhookEvent) []EgressState {
	id := ev.GetEgressInfo().GetEgressId()
	out, i, _ := upsert(list, id, func(e *EgressState) string { return e.ID },
		func() EgressState { return EgressState{ID: id} })
	e := &out[i]
	e.Started = e.Started || ev.GetEvent() == EventEgressStarted
	e.Ended = e.Ended || ev.GetEvent() == EventEgressEnded
	e.StartedNs = minPos(e.StartedNs, ev.GetEgressInfo().GetStartedAt())
	if s := snapshotOf(ev); compareSnapshots(s, e.snapshot()) > 0 {
		e.Final, e.UpdatedNs, e.EventSec, e.Status = s.final, s.updatedNs, s.eventSec, s.status
		e.EndedNs, e.Error, e.Files = s.endedNs, s.err, s.files
	}
	return out
}

// EgressPending counts the egresses of the state that have not reached a
// terminal status.
func (s State) EgressPending() int {
	n := 0
	for _, e := range s.Egress {
		if !e.terminal() {
			n++
		}
	}
	return n
}

func (e EgressState) terminal() bool { return e.Final || e.Ended }

// recordings is the Recordings view, sorted by egress id; nil when none.
func (s State) recordings() []Recording {
	if len(s.Egress) == 0 {
		return nil
	}
	out := make([]Recording, 0, len(s.Egress))
	for _, e := range s.Egress {
		r := Recording{
			EgressID: e.ID,
			Status:   livekit.EgressStatus(e.Status).String(),
			Error:    e.Error,
			Files:    make([]RecordingFile, 0, len(e.Files)),
		}
		startMs := e.StartedNs / 1e6
		if startMs > 0 {
			t := msTime(startMs)
			r.StartedAt = &t
		}
		if e.terminal() {
			endMs := e.EndedNs / 1e6
			if endMs <= 0 {
				endMs = max(e.UpdatedNs/1e6, e.EventSec*1000)
			}
			if endMs > 0 {
				endMs = max(endMs, startMs)
				t := msTime(endMs)
				r.EndedAt = &t
				if startMs > 0 {
					r.DurationSeconds = msSeconds(endMs - startMs)
				}
			}
		}
		for _, f := range e.Files {
			r.Files = append(r.Files, RecordingFile{Filename: f.Name, Location: f.Location, Size: f.Size,
				DurationSeconds: msSeconds(f.DurationNs / 1e6)})
		}
		out = append(out, r)
	}
	return out
}
