// Package engine is the durable store under the receiver: NATS JetStream,
// either an embedded nats-server (in process, file storage, nothing to
// install) or an external NATS/JetStream deployment reached by URL. Both take
// the same code path once connected.
//
// Intake writes to a journal, not to the events stream: concurrent requests
// share one durable write (group commit, see Accept), which is what lets an
// answer to LiveKit cost little more than verifying it. The distributor then
// moves each event into the events stream, where its id deduplicates it
// across replicas and restarts.
//
// It is the module's store layer: the only code that imports nats.go or
// spells a subject or header. The rest of the module goes through typed
// repositories (Engine.Rooms with compare-and-set, Names, Beluga, Tasks,
// Reports, DeadLetters, Events), the journal (Accept, StartDistributor),
// and reads deliveries as Msg (an internal/pipeline.Message). Its streams,
// buckets and consumers:
//
//	LKWH_INTAKE   lkwh.intake             the journal: envelopes of accepted webhooks (work queue)
//	LKWH_EVENTS   lkwh.events.<room>.<event>  accepted webhooks, deduplicated by event id
//	LKWH_TASKS    lkwh.tasks.<kind>.<sid> finalize timers (work queue)
//	LKWH_REPORTS  lkwh.reports.<session>  final session reports for downstream consumers
//	LKWH_DLQ      lkwh.dlq.<event>        dead letters, with their last error
//	KV lkwh_rooms    room sid -> lifecycle state (compare-and-set)              TTL RecordTTL
//	KV lkwh_names    room name -> current room sid, session id -> room sid,     TTL RecordTTL
//	                 room name -> room sid whose room_finished was processed (watched)
//	KV lkwh_reports  room sid -> final report                                   TTL ReportRetention
//	KV lkwh_beluga   backend session id -> Beluga session id                    TTL RecordTTL
//	KV lkwh_open     room key -> "" while the room is not delivered (Rooms.EachOpen)
package engine
