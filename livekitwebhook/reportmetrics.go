package livekitwebhook

import (
	"context"
	"slices"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/attribute"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/lifecycle"
)

// Metrics of what a report tells: SIP calls, talk time, recordings, agent
// jobs and anomalies. They are recorded by the replica whose
// compare-and-set fixed the report (finalize's won), so a redelivered task,
// a retry or a restart does not count a report twice. Every label takes
// values from a fixed set ("other" for anything else): outcomes, directions
// and codes are this package's constants, statuses livekit/protocol enum
// names. The project label is added only when Config.Projects names the
// projects (on these and on livekitwebhook.reports); its values are then the configured projects (the projects of
// the receiver's keys), so it stays bounded too.

// recordReportContent records the report metrics of a report just fixed.
func (p *processor) recordReportContent(ctx context.Context, r *lifecycle.Session) {
	tel, proj := p.tel, p.projectAttr(r.Project)
	for _, pt := range r.Participants {
		if pt.Sip == nil {
			continue
		}
		dir := oneOf(pt.Sip.Direction, lifecycle.SIPInbound, lifecycle.SIPOutbound)
		outcome := oneOf(pt.Sip.Outcome, lifecycle.SIPAnswered, lifecycle.SIPNoAnswer, lifecycle.SIPRejected,
			lifecycle.SIPFailed, lifecycle.SIPCancelled)
		tel.sipCalls.Add(ctx, 1, attrs(append(proj, attribute.String("direction", dir), attribute.String("outcome", outcome))...))
		if pt.Sip.AnsweredAt != nil {
			tel.sipTalk.Record(ctx, pt.Sip.TalkSeconds, attrs(append(proj, attribute.String("direction", dir))...))
		}
	}
	p.countEndedRecordings(ctx, r.Project, nil, r.Recordings)
	for _, j := range r.AgentJobs {
		tel.agentJobs.Add(ctx, 1, attrs(append(proj, attribute.String("status", jobStatusLabel(j.Status)))...))
	}
	for _, a := range r.Anomalies {
		code := oneOf(a.Code, lifecycle.AnomalyParticipantNeverLeft, lifecycle.AnomalyEgressNeverEnded,
			lifecycle.AnomalyRoomStartedAfterFinished, lifecycle.AnomalyEventsAfterReport)
		tel.anomalies.Add(ctx, int64(a.Count), attrs(append(proj, attribute.String("code", code))...))
	}
}

// countEndedRecordings counts the recordings of now that have a terminal
// status and had none in before: at report time (before nil) every ended
// recording, for a report amended by a late egress event the ones it
// ended. A terminal status is never replaced (see lifecycle), and a late
// event is applied once, so each recording is counted once; one that never
// ends is never counted here (egress_never_ended counts it).
func (p *processor) countEndedRecordings(ctx context.Context, project string, before, now []lifecycle.Recording) {
	var proj []attribute.KeyValue
	for _, rec := range now {
		if !recordingTerminal(rec.Status) {
			continue
		}
		if i := slices.IndexFunc(before, func(b lifecycle.Recording) bool { return b.EgressID == rec.EgressID }); i >= 0 && recordingTerminal(before[i].Status) {
			continue
		}
		if proj == nil {
			proj = p.projectAttr(project)
		}
		p.tel.recordings.Add(ctx, 1, attrs(append(proj, attribute.String("status", rec.Status))...))
	}
}

// recordingTerminal reports whether a recording's status name is terminal.
func recordingTerminal(status string) bool {
	v, ok := livekit.EgressStatus_value[status]
	return ok && lifecycle.EgressTerminal(v)
}

// jobStatusLabel is a JobStatus name, "other" for a number (a status this
// version of livekit/protocol does not know).
func jobStatusLabel(status string) string {
	if _, ok := livekit.JobStatus_value[status]; ok {
		return status
	}
	return "other"
}

// projectAttr is the project label of a report: none unless projects are
// configured; a project outside the configured ones (none: a legacy
// signature or a room stored before projects) is "other".
func (p *processor) projectAttr(project string) []attribute.KeyValue {
	if len(p.projects.names) == 0 {
		return []attribute.KeyValue{}
	}
	if _, ok := slices.BinarySearch(p.projects.all, project); !ok || project == "" {
		project = "other"
	}
	return []attribute.KeyValue{attribute.String("project", project)}
}

// oneOf is v if it is one of known, else "other".
func oneOf(v string, known ...string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

// reportRecordings are the recordings of rec's fixed report (nil for none).
func reportRecordings(rec *roomRecord) []lifecycle.Recording {
	if rec == nil || rec.Report == nil {
		return nil
	}
	return rec.Report.Recordings
}
