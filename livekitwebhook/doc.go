// Package livekitwebhook makes LiveKit's server-side webhooks a reliable,
// observable part of a Beluga AI voice backend.
//
// A Receiver is an http.Handler for the URL LiveKit posts webhooks to. It
// verifies each request exactly as LiveKit signs it (an HS256 JWT in
// Authorization whose sha256 claim covers the raw body; the secret is looked
// up by the token's iss), stores the event durably in NATS JetStream
// (an embedded nats-server by default, or an external cluster), and only
// then answers 200. Everything else gets a typed refusal: 405, 413, 415,
// 401 with a reason per failure, 400 for a malformed event, and 503 with
// Retry-After when the store is unavailable so that LiveKit retries.
// Duplicate deliveries (same event id) are answered 200 and stored once.
// Concurrent requests share one durable write to a journal (group commit);
// a distributor then moves each event to the events stream, which
// deduplicates by event id across replicas and restarts.
//
// A processor consumes the stored events, folds them into one session per
// room sid with a pure state machine (internal/lifecycle) that gives the
// same answer for duplicated, reordered and missing events, and calls Hooks.
// After room_finished plus a grace period it produces one final Report per
// room sid, persists it, publishes it on lkwh.reports.<session> and hands it
// to Hooks.OnSessionEnded. Failing hooks are retried with backoff and then
// dead-lettered; Replay runs dead letters again. A hook still owed a call is
// recorded by its name (Hooks.Name and the field), not its position, so a
// redeploy that adds, removes or reorders hooks retries the same hook; a
// name no registration has any more is dead-lettered with ErrUnknownHook.
//
// # Usage
//
//	cfg, err := livekitwebhook.LoadConfigFromEnv() // BELUGA_LIVEKIT_WEBHOOK_*, LIVEKIT_API_KEY/SECRET, LIVEKIT_KEYS
//	recv, err := livekitwebhook.New(cfg, livekitwebhook.WithHooks(livekitwebhook.Hooks{
//		OnParticipantJoined: func(ctx context.Context, ev *livekit.WebhookEvent, s livekitwebhook.Session) error {
//			log.Printf("%s joined %s", ev.Participant.Identity, s.SessionID)
//			return nil
//		},
//		OnSessionEnded: func(ctx context.Context, r livekitwebhook.Report) error {
//			return billing.Record(ctx, r.SessionID, r.ParticipantSecondsByKind)
//		},
//	}))
//	if err := recv.Start(ctx); err != nil { … }
//	defer recv.Stop(context.Background())
//	for path, h := range recv.Routes() { mux.Handle(path, h) }
//
// # Correlation
//
// A Correlator maps a room to the backend session id: the room name
// (default), a key of the room's JSON metadata, a name template such as
// "call-{session}", or any function. Rooms that map to nothing are still
// tracked under their name and flagged Unmapped. With WithSessionService each
// mapped session also gets a Beluga runtime.Session (the mapping is kept in
// the engine, so restarts and replicas agree), and the final report is
// written into its State.
//
// # Serving on a Beluga server
//
// Mount registers every route of Routes on any Beluga server.ServerAdapter
// (stdlib, chi, echo, gin, fiber, huma, connect); the gRPC adapter serves no
// HTTP handlers and Mount says so:
//
//	srv := server.NewStdlibAdapter(server.Config{})
//	if err := recv.Mount(srv); err != nil { … }
//
// # Enabled by configuration
//
// AutoWire builds, starts and mounts a receiver when Config.Enabled
// (BELUGA_LIVEKIT_WEBHOOK_ENABLED=true) and the voice transport is "livekit"
// or "livekit-webhook"; otherwise it returns (nil, nil):
//
//	cfg, _ := livekitwebhook.LoadConfigFromEnv()
//	recv, err := livekitwebhook.AutoWire(ctx, srv, "livekit", cfg)
//	if recv != nil { defer recv.Stop(context.Background()) }
//
// # Voice transport
//
// Importing the package registers the "livekit-webhook" transport: Beluga's
// "livekit" transport bound to one room of a receiver, closed once that
// room's room_finished has been processed by any replica, which ends a
// voice.VoicePipeline running on it. The receiver travels explicitly in
// Config.Extra["livekitwebhook.receiver"]; TransportConfig fills it:
//
//	t, err := transport.New(livekitwebhook.TransportName,
//		livekitwebhook.TransportConfig(recv, "call-42", transport.Config{URL: lkURL, Token: token}))
//	pipe := voice.NewPipeline(voice.WithTransport(t), voice.WithVAD(voice.NewEnergyVAD(voice.EnergyVADConfig{})))
//	err = pipe.Run(ctx) // returns nil after room_finished
//
// Extra["room_sid"] also closes it at once if that sid already finished.
//
// # Agent runtime plugin
//
// Plugin returns a runtime.Plugin that, before each turn, writes the room's
// live state (the Session JSON plus "status": "active"/"finished") into
// Session.State["livekit.room"], and refuses turns once the room finished
// with a *core.Error wrapping ErrRoomFinished. It finds the room through
// State["livekit.session_id"], set when the receiver has WithSessionService;
// share that service with the Runner:
//
//	svc := runtime.NewInMemorySessionService()
//	recv, _ := livekitwebhook.New(cfg, livekitwebhook.WithSessionService(svc))
//	runner := runtime.NewRunner(a, runtime.WithSessionService(svc), runtime.WithPlugins(recv.Plugin()))
//	…
//	if errors.Is(err, livekitwebhook.ErrRoomFinished) { /* the call is over */ }
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
// participant and session ids, never secrets, turnPassword or metadata.
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
package livekitwebhook
