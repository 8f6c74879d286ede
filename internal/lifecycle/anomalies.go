package lifecycle

import (
	"slices"
	"sort"
)

// Anomaly codes: what the events of a session did not close by themselves.
const (
	// AnomalyParticipantNeverLeft counts participants neither left nor
	// aborted when the session ended (room_finished or expiry): their
	// participant_left never arrived, and they were closed at the end.
	AnomalyParticipantNeverLeft = "participant_never_left"
	// AnomalyEgressNeverEnded counts egresses without a terminal status in
	// the final report (see State.Report and Amend).
	AnomalyEgressNeverEnded = "egress_never_ended"
	// AnomalyRoomStartedAfterFinished counts room_started events whose
	// createdAt is later than the room's room_finished createdAt, whatever
	// the order they arrived in.
	AnomalyRoomStartedAfterFinished = "room_started_after_finished"
	// AnomalyEventsAfterReport counts distinct events of the room applied
	// after its report was fixed (see Amend).
	AnomalyEventsAfterReport = "events_after_report"
)

// Anomaly is one anomaly code with how many times it occurred.
type Anomaly struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
}

// foldRoomStarted records the createdAt of a room_started (a multiset: the
// event ids already make it idempotent).
func (s *State) foldRoomStarted(at int64) {
	if at <= 0 {
		return
	}
	i := sort.Search(len(s.RoomStartedSecs), func(i int) bool { return s.RoomStartedSecs[i] >= at })
	out := make([]int64, 0, len(s.RoomStartedSecs)+1)
	out = append(out, s.RoomStartedSecs[:i]...)
	out = append(out, at)
	s.RoomStartedSecs = append(out, s.RoomStartedSecs[i:]...)
}

// anomalies of the Session view (ended tells an ended view); sorted by code,
// nil when none.
func (s State) anomalies(ended bool) []Anomaly {
	var out []Anomaly
	if ended {
		n := 0
		for _, p := range s.Participants {
			if !p.Left && !p.Aborted {
				n++
			}
		}
		out = addAnomaly(out, AnomalyParticipantNeverLeft, n)
	}
	if s.RoomFinished && s.FinishedSec > 0 {
		i := sort.Search(len(s.RoomStartedSecs), func(i int) bool { return s.RoomStartedSecs[i] > s.FinishedSec })
		out = addAnomaly(out, AnomalyRoomStartedAfterFinished, len(s.RoomStartedSecs)-i)
	}
	return out
}

// addAnomaly sets code's count (removing it at 0), keeping the list sorted.
func addAnomaly(list []Anomaly, code string, n int) []Anomaly {
	out := slices.DeleteFunc(slices.Clone(list), func(a Anomaly) bool { return a.Code == code })
	if n > 0 {
		out = append(out, Anomaly{Code: code, Count: n})
		slices.SortFunc(out, func(a, b Anomaly) int {
			switch {
			case a.Code < b.Code:
				return -1
			case a.Code > b.Code:
				return 1
			}
			return 0
		})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Report is the final report of a closed state: its Session view plus the
// egresses still not ended (AnomalyEgressNeverEnded), which only the final
// report calls an anomaly (a live view may be waiting for them).
func (s State) Report() Session {
	v := s.Session()
	v.Anomalies = addAnomaly(v.Anomalies, AnomalyEgressNeverEnded, s.EgressPending())
	return v
}

// Amend is a fixed report brought up to date with s, its room's state
// after events that were applied once the report was fixed: recordings are
// those of s (a recording that ended late shows its final status and files),
// egress_never_ended is recounted, and events_after_report counts the
// distinct events applied since (s.EventsApplied - report.EventsApplied).
// Everything else stays as it was fixed.
func Amend(report Session, s State) Session {
	report.Recordings = s.recordings()
	report.Anomalies = addAnomaly(report.Anomalies, AnomalyEgressNeverEnded, s.EgressPending())
	report.Anomalies = addAnomaly(report.Anomalies, AnomalyEventsAfterReport, s.EventsApplied-report.EventsApplied)
	return report
}
