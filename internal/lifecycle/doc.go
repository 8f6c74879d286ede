// Package lifecycle is the pure session state machine of the LiveKit-webhook
// receiver: it folds webhook events of one room (one room SID) into a State
// and derives the Session view used by the sessions API and the end-of-session
// report.
//
// # Purity
//
// Everything here is a function over values. There is no I/O, no clock, no
// goroutine and no global mutable state. Every time comes from an event
// (createdAt, room creationTime/creationTimeMs, participant joinedAt/joinedAtMs)
// or, for Expire, from the caller. Apply never mutates the State it is given
// (slices are copied before they change), so a caller may keep the previous
// value, for instance to compare-and-set it in a key-value store.
//
// State is stored as JSON: it round-trips through encoding/json exactly
// (reflect.DeepEqual after Marshal/Unmarshal) and uses short JSON tags. It keeps
// no metadata blobs and never the room's TURN password.
//
// # Order independence
//
// LiveKit delivers events of a room duplicated, out of order and with gaps.
// Apply is idempotent by event id, and every field of State is combined with a
// commutative, idempotent operation (set union, minimum, maximum, logical or),
// so the State reached from a set of events, and therefore its Session, does
// not depend on the order of arrival or on duplicates. In particular a
// participant_joined arriving after that participant's participant_left does
// not reopen it, and a room_started arriving after room_finished does not
// "unfinish" the room. When two events that should agree disagree (which
// LiveKit does not do for one SID), the tie is broken deterministically:
// earliest time, highest enum value, lexicographically smallest non-empty
// string.
//
// # Definitions
//
// All times are UTC. Event createdAt is in seconds, room and join times may
// carry milliseconds; durations are float seconds with millisecond precision
// and never negative.
//
//   - started_at: the room creation time (creationTimeMs, else creationTime,
//     from any event carrying the room; the earliest if they differ), else the
//     earliest event createdAt seen.
//   - ended_at: the createdAt of room_finished (earliest if several); for an
//     expired session the time given to Expire. Only set in an ended view.
//   - duration_seconds: ended_at - started_at; in an active view the last
//     (largest) event createdAt - started_at.
//   - participant joined_at: joinedAtMs, else joinedAt, from any event about
//     that participant SID, else the createdAt of the earliest event about it,
//     else started_at.
//   - participant left_at: the createdAt of its participant_left event (a late
//     participant_left after room_finished still sets it), else, in an ended
//     view, the room's ended_at (participants still active when the room ends
//     are closed at room end and reported in state "left"). In an active view an
//     active participant has no left_at and its seconds run to the last event
//     time seen in the room.
//   - participant state: "left" when a participant_left was seen; else
//     "aborted" when participant_connection_aborted was seen (terminal even
//     after a participant_joined: LiveKit only aborts sessions that never became
//     active); else "active" (closed to "left" in an ended view). An aborted
//     participant has 0 seconds and no left_at.
//   - seconds: left_at - joined_at (0 for aborted); participant_seconds is their
//     sum; participant_seconds_by_kind sums them by lower-case LiveKit kind name
//     (standard, agent, sip, ingress, egress, connector, bridge, or "unknown"),
//     with an entry for every kind present, even at 0.
//   - end_reason: the RoomEndReason name of room_finished when it is known and
//     not ROOM_END_UNKNOWN, else "".
//   - disconnect_reason: the DisconnectReason name from participant_left (for
//     aborted participants, from participant_connection_aborted) when known and
//     not UNKNOWN_REASON, else "".
//   - disposition (ended views only): "completed" when room_finished arrived and
//     at least one participant whose kind is not agent, egress or ingress was
//     not aborted; "connection_failed" when such participants exist but all
//     aborted; "no_show" when there is none; "expired" when the session was
//     closed with Expire and no room_finished was seen. A room_finished applied
//     after Expire wins over the expiry. SIP calls refine this, see below.
//   - recordings: one per egress id (egress events without one are
//     ignored), sorted by id, from the EgressInfo of its events. The info
//     shown is the greatest by: terminal status (or egress_ended) first, then
//     updatedAt, then event createdAt, then the remaining fields (a total
//     order, so any arrival order agrees); a terminal status is never
//     replaced by a non-terminal one. started_at is the earliest startedAt;
//     ended_at (terminal only) endedAt, else updatedAt, else the event's
//     createdAt; files are file_results, else the deprecated file result.
//   - anomalies (sorted by code): participant_never_left (ended views:
//     participants neither left nor aborted), room_started_after_finished
//     (room_started events whose createdAt is after the earliest
//     room_finished createdAt). egress_never_ended is added by Report
//     (egresses not terminal), events_after_report by Amend (events applied
//     after the report was fixed).
//
// SIP calls. A participant of kind sip whose events carried any sip.* or
// lk.sip.* attribute (livekit.AttrSIP*) gets a sip object; one without any
// is counted as above. Identifiers (call, trunk, rule, numbers) are the
// smallest non-empty values seen; unknown attribute values are kept as they
// are.
//
//   - call_status: the sip.callStatus of the event with the latest createdAt
//     that carried one; within one second the later call stage wins
//     (dialing < ringing < automation < active < hangup, unknown values
//     first), then the larger string.
//   - direction: inbound when a dispatch rule id (sip.ruleID) is present,
//     else outbound.
//   - answered_at: the earliest lk.sip.answerTime (unix ms); else, inbound,
//     joined_at; else the earliest createdAt of an event whose call status
//     was "active"; else absent (never answered).
//   - outcome: answered when answered_at is known; else from the
//     disconnect reason of its leave (of its abort if it never left):
//     USER_UNAVAILABLE no_answer, USER_REJECTED rejected, SIP_TRUNK_FAILURE,
//     MEDIA_FAILURE, JOIN_FAILURE or CONNECTION_TIMEOUT failed; else failed
//     for an aborted join, cancelled for any other leave or when the view is
//     ended; "" while it still rings in an active view.
//   - talk_seconds: left_at (or, active, the last event time) minus
//     answered_at, 0 when not answered, never negative; it is the
//     participant's seconds, so the sums count talking, not ringing.
//   - disposition: such a call counts as connected for "completed" only when
//     answered. When the room finished and its only human participants are
//     unanswered SIP calls, the disposition is the outcome of the one that
//     ended last (latest left_at, else join time; ties: larger SID):
//     no_answer, rejected or failed; cancelled gives no_show.
//
// Agent jobs. agent_job_pending, agent_job_started and agent_job_ended carry
// ev.Job and no room: RoomSID and RoomName fall back to job.room. Each job id
// becomes one agent_jobs entry: status and error from the event with the
// highest (terminal status, JobState.UpdatedAt else createdAt, status,
// error), so a terminal status is never replaced by a late non-terminal one;
// started_at the earliest JobState.StartedAt, ended_at the latest
// JobState.EndedAt (nanoseconds in the event, milliseconds here). Entries
// are sorted by started_at (unknown last), then job id.
//
// Participants are keyed by SID, never by identity: a reconnect under the same
// identity gives two entries with two durations. Participants are listed sorted
// by joined_at, then SID. Events without a participant SID are recorded as
// applied but create no participant. Unknown event names are accepted, recorded
// as applied and only contribute their createdAt (and room creation time) to
// the room's time bounds. An event whose room SID differs from the state's is
// recorded as applied but its payload is ignored.
package lifecycle
