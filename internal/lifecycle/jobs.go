package lifecycle

import (
	"sort"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"
)

// Agent job events (livekit/protocol webhook.EventAgentJob*). They carry
// ev.Job, whose Room names the room when the event has no room of its own.
const (
	EventAgentJobPending = "agent_job_pending"
	EventAgentJobStarted = "agent_job_started"
	EventAgentJobEnded   = "agent_job_ended"
)

// JobState is the folded state of one agent job of the room.
type JobState struct {
	// ID is the job id.
	ID string `json:"id"`
	// Agent is the agent name (smallest non-empty one seen).
	Agent string `json:"an,omitempty"`
	// Status, Err and UpdNs come from one event: the one with the highest
	// (terminal, updated time, status, error), so a terminal status is never
	// replaced by a late non-terminal one. UpdNs is JobState.UpdatedAt, else
	// the event createdAt, in unix ns.
	Status int32  `json:"st,omitempty"`
	Err    string `json:"err,omitempty"`
	UpdNs  int64  `json:"up,omitempty"`
	// StartMs is the earliest JobState.StartedAt seen, unix ms (0: none).
	StartMs int64 `json:"sa,omitempty"`
	// EndMs is the latest JobState.EndedAt seen, unix ms (0: none).
	EndMs int64 `json:"ea,omitempty"`
}

// jobTerminal reports whether a job status is final: success, failed or
// cancelled (unknown statuses are not).
func jobTerminal(st int32) bool {
	switch livekit.JobStatus(st) {
	case livekit.JobStatus_JS_SUCCESS, livekit.JobStatus_JS_FAILED, livekit.JobStatus_JS_CANCELLED:
		return true
	}
	return false
}

// jobAfter reports whether (status a, update time au, error ae) supersedes
// (b, bu, be).
func jobAfter(a int32, au int64, ae string, b int32, bu int64, be string) bool {
	if ta, tb := jobTerminal(a), jobTerminal(b); ta != tb {
		return ta
	}
	if au != bu {
		return au > bu
	}
	if a != b {
		return a > b
	}
	return ae > be
}

// foldJob merges the job of one event (createdAt at) into the sorted list.
// It never writes into list's backing array.
func foldJob(list []JobState, job *livekit.Job, at int64) []JobState {
	id := job.GetId()
	out, i, fresh := upsert(list, id, func(j *JobState) string { return j.ID },
		func() JobState { return JobState{ID: id} })
	j := &out[i]
	j.Agent = minNonEmpty(j.Agent, job.GetAgentName())
	st := job.GetState()
	upd := st.GetUpdatedAt()
	if upd <= 0 {
		upd = max(at, 0) * int64(time.Second)
	}
	status, errText := int32(st.GetStatus()), st.GetError()
	if fresh || jobAfter(status, upd, errText, j.Status, j.UpdNs, j.Err) {
		j.Status, j.UpdNs, j.Err = status, upd, errText
	}
	j.StartMs = minPos(j.StartMs, nsToMs(st.GetStartedAt()))
	j.EndMs = max(j.EndMs, nsToMs(st.GetEndedAt()))
	return out
}

func nsToMs(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return ns / int64(time.Millisecond)
}

// AgentJob is one agent job of the room in the Session view. Its JSON field
// names are a public contract.
type AgentJob struct {
	// JobID is LiveKit's job id.
	JobID string `json:"job_id"`
	// AgentName is the dispatched agent's name ("" for the default agent).
	AgentName string `json:"agent_name"`
	// Status is LiveKit's JobStatus name: JS_PENDING, JS_RUNNING,
	// JS_SUCCESS, JS_FAILED, JS_CANCELLED (a number for a status this
	// version of livekit/protocol does not know).
	Status string `json:"status"`
	// StartedAt is when a worker took the job, if known.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// EndedAt is when the job ended, if known.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// Error is the error the agent reported, if any.
	Error string `json:"error"`
}

func jobStatusName(st int32) string {
	if n, ok := livekit.JobStatus_name[st]; ok {
		return n
	}
	return strconv.Itoa(int(st))
}

// agentJobs is the view of the jobs: sorted by start time (unknown last),
// then id; nil when there is none.
func agentJobs(list []JobState) []AgentJob {
	if len(list) == 0 {
		return nil
	}
	out := make([]AgentJob, 0, len(list))
	for _, j := range list {
		v := AgentJob{JobID: j.ID, AgentName: j.Agent, Status: jobStatusName(j.Status), Error: j.Err}
		if j.StartMs > 0 {
			t := msTime(j.StartMs)
			v.StartedAt = &t
		}
		if j.EndMs > 0 {
			t := msTime(j.EndMs)
			v.EndedAt = &t
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a].StartedAt, out[b].StartedAt
		switch {
		case x == nil && y == nil:
			return out[a].JobID < out[b].JobID
		case x == nil || y == nil:
			return y == nil
		case !x.Equal(*y):
			return x.Before(*y)
		}
		return out[a].JobID < out[b].JobID
	})
	return out
}
