// Package livekitwebhooktest signs webhook requests and builds events exactly
// as LiveKit's notifier does, for tests of code that receives them (this
// module's own tests and examples use it too), in the way net/http/httptest
// serves tests of net/http.
//
//	ev := livekitwebhooktest.RoomEvent("room_started", "call-7", "RM_call7")
//	req, err := livekitwebhooktest.NewRequest(ctx, url, "devkey", "secret", ev)
//	res, err := http.DefaultClient.Do(req)
//
// A request made here carries what livekit-server puts on a webhook: the
// protojson body, Content-Type application/webhook+json, User-Agent LiveKit
// and a raw HS256 JWT in Authorization (iss = API key, exp five minutes
// ahead, sha256 claim = base64 SHA-256 of the exact body). It never sends
// the X-LiveKit-Signature header that third-party guides describe: real
// LiveKit does not. A Signer does the same with one key and a validity of
// your choice (a load test that signs every request before sending).
package livekitwebhooktest
