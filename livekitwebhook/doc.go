// Package livekitwebhook receives LiveKit's server webhooks reliably and
// turns them into per-room sessions and final reports for a Beluga AI voice
// backend.
//
// A Receiver is the http.Handler LiveKit posts to. It verifies each request
// as LiveKit signs it (an HS256 JWT in Authorization whose sha256 claim
// covers the raw body), stores the event durably in NATS JetStream (an
// embedded nats-server by default, or an external cluster) and only then
// answers 200: an answered event is never lost, and a duplicate delivery is
// stored once. Everything else gets a typed refusal, 503 with Retry-After
// when the store is unavailable so that LiveKit retries. In the background
// the stored events of each room are folded into one session per room sid,
// in an order-independent way (duplicated, reordered and missing events give
// the same answer), and Hooks are called.
//
// # Getting started
//
//	cfg, err := livekitwebhook.LoadConfigFromEnv() // BELUGA_LIVEKIT_WEBHOOK_*, LIVEKIT_API_KEY/SECRET, LIVEKIT_KEYS
//	if err != nil { … }
//	recv, err := livekitwebhook.New(cfg, livekitwebhook.WithHooks(livekitwebhook.Hooks{
//		Name: "billing",
//		OnParticipantJoined: func(ctx context.Context, ev *livekit.WebhookEvent, s livekitwebhook.Session) error {
//			log.Printf("%s joined %s", ev.Participant.Identity, s.SessionID)
//			return nil
//		},
//		OnSessionEnded: func(ctx context.Context, r livekitwebhook.Report) error {
//			return billing.Record(ctx, r.SessionID, r.ParticipantSecondsByKind)
//		},
//	}))
//	if err != nil { … }
//	if err := recv.Start(ctx); err != nil { … } // opens the store; intake answers 503 until then
//	defer recv.Stop(context.Background())       // drains intake, finishes in-flight work
//	for path, h := range recv.Routes() {        // webhook, sessions API, dead letters
//		mux.Handle(path, h)
//	}
//
// On a Beluga server, recv.Mount(srv) registers the same routes on any
// server.ServerAdapter, and AutoWire does New, Start and Mount in one call
// when Config.Enabled is set and the voice transport is "livekit" or
// "livekit-webhook" (otherwise it returns nil, nil):
//
//	recv, err := livekitwebhook.AutoWire(ctx, srv, "livekit", cfg, opts...)
//	if recv != nil { defer recv.Stop(context.Background()) }
//
// Mount works on Beluga's stdlib, chi, echo, gin, fiber, huma and connect
// adapters, and on any of them wrapped by server.ApplyMiddleware: one
// session answers at SessionsPath/{id} on each, and at SessionsPath?id={id}
// on every adapter. The gRPC adapter serves no HTTP handlers and is refused
// with an ErrInvalidInput error.
//
// Storage is explicit: the embedded engine writes Config.DataDir; left
// empty (and no Config.NatsURL), it writes DefaultDataDir under the working
// directory and Start logs a WARN line naming that absolute directory.
//
// # Sessions and reports
//
// A Session is the view of one room sid at one moment: event hooks get it
// after each event, and SessionByID, ActiveSessions and the sessions API
// (GET Config.SessionsPath) return it. A Report is the final account of a
// room sid, fixed once after room_finished plus Config.FinalizeGrace (or when
// the session expires): OnSessionEnded gets it, it is published on the NATS
// subject lkwh.reports.<session_id>, and EndedSessions lists it. Both have
// the same stable JSON. A Correlator maps each room to the backend's session
// id (the room name by default; see WithCorrelator and Config.Correlation).
//
// # Hooks and dead letters
//
// Each hook is called at least once per event id, and not again once it
// returned nil. A returned error is retried with backoff; after
// Config.MaxAttempts the event (or report) is dead-lettered, OnError is told,
// and DeadLetters and Replay (or `lkwebhook dlq`) list and re-run it. Hooks
// owed a call are recorded by name (Hooks.Name and the field), so a redeploy
// that adds, removes or reorders hooks retries the same hook; a name no
// registration has any more is dead-lettered with ErrUnknownHook. Hooks with
// outside effects should be idempotent by event id.
//
// # Errors
//
// A refused request is a *RefusalError (HTTP status, a stable reason that is
// also the metric label and log field, and the cause), passed to the
// WithRefusalHandler callback and answered as JSON. Test the cause with
// errors.Is: ErrExpired, ErrHashMismatch, ErrUnknownKey … (401),
// ErrMalformedEvent (400), ErrBodyTooLarge (413), ErrEngineUnavailable and
// ErrShuttingDown (503). The query methods return ErrEngineUnavailable while
// the store is down; New returns ErrSecretTooShort for a secret shorter than
// 32 bytes outside Config.Dev.
//
// # Beluga wiring
//
//   - WithSessionService gives each mapped room a Beluga runtime.Session
//     (the mapping is kept in the store, so restarts and replicas agree; one
//     room never gets two), with the receiver's session id in
//     State[StateKeySession], and writes the Report into
//     State[StateKeyReport]. A session id that is itself a Beluga session
//     (named in the room's metadata) is adopted.
//   - SessionService wraps that service for the Runner: its Get takes a
//     room's session id, so runner.Run(ctx, "call-7", …) continues the
//     room's session, whether the agent or the room's first webhook came
//     first.
//   - Plugin is a runtime.Plugin that puts the live room (the Session JSON
//     plus a status) into State[StateKeyRoom] before each turn and refuses
//     turns once the room finished, with an error wrapping ErrRoomFinished.
//   - Importing the package registers the TransportName ("livekit-webhook")
//     voice transport: Beluga's "livekit" transport bound to one room of a
//     receiver, closed once that room's room_finished has been processed by
//     any replica, which ends a voice.VoicePipeline running on it.
//     TransportConfig fills its configuration; Extra[ExtraRoomSID] also closes
//     it at once if that room sid already finished.
//
// All three together:
//
//	svc := runtime.NewInMemorySessionService()
//	recv, _ := livekitwebhook.New(cfg, livekitwebhook.WithSessionService(svc))
//	runner := runtime.NewRunner(a, runtime.WithSessionService(recv.SessionService()), runtime.WithPlugins(recv.Plugin()))
//	t, err := transport.New(livekitwebhook.TransportName,
//		livekitwebhook.TransportConfig(recv, "call-42", transport.Config{URL: lkURL, Token: token}))
//	pipe := voice.NewPipeline(voice.WithTransport(t), voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})))
//	err = pipe.Run(ctx) // returns nil after room_finished
//
// # Observability
//
// Spans: livekitwebhook.receive (SERVER, continues an incoming traceparent)
// per request; the trace context travels in the JetStream message headers to
// livekitwebhook.process, with a livekitwebhook.hook span per hook below it.
// The report task carries the trace context of the room_finished processing
// that scheduled it, so livekitwebhook.report is a child of that
// livekitwebhook.process span (starting the grace period after it), with the
// OnSessionEnded hook spans below it; a session closed by expiry has no such
// event and its report span is a root. Attributes name the event, event id, room,
// participant and session ids, never secrets, turnPassword or metadata. The
// session id is also gen_ai.conversation.id on processing, hook and report
// spans, and on the livekitwebhook.turn span the Plugin starts per agent
// turn; those spans (and the span in the turn's context) link to the room's
// trace, the trace of its first stored webhook. Hook contexts carry the
// session id (core.GetSessionID).
// Metrics go through the OTel metric API (WithMeterProvider); `lkwebhook
// serve` exports them for Prometheus at /metrics. Logs use log/slog with
// trace and span ids.
//
// # Reconciliation
//
// LiveKit never replays a webhook it dropped. WithReconciler (serve
// --livekit-url) lists rooms through RoomService on an interval, closes
// sessions whose room is gone as "expired" with the reason recorded, and
// flags rooms the receiver never heard of.
//
// The README has the configuration table, the delivery guarantees and the
// `lkwebhook` CLI.
package livekitwebhook
