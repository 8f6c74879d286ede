// Package servetest runs `lkwebhook serve` as a real process for tests and
// reads it as an operator would: /healthz, the sessions API and /metrics.
// The faulttest and e2e suites share it (e2e is another module; the
// internal rule allows it because its import path lies under this module's).
//
//	func TestMain(m *testing.M) { servetest.Main(m, servetest.Build{}) }
//
//	func TestCrash(t *testing.T) {
//		sv := servetest.Start(t, servetest.Options{Args: []string{"--finalize-grace", "1s"}})
//		sv.Post(t, livekitwebhooktest.RoomEvent("room_started", "call-1", "RM_call1"))
//		sv.Kill()    // SIGKILL: a crash
//		sv.Restart() // same port, same data directory
//		sv.WaitActive(t, 10*time.Second, "call-1", servetest.ByRoomSID("RM_call1"))
//	}
//
// serve binds 127.0.0.1:0 and the harness reads the address back from the
// line it prints ("lkwebhook: listening on http://ADDR/path"), so no other
// process can take the port in between; a restart keeps it. Loopback also
// keeps the admin endpoints on without a token. Every process is killed at
// the end of its test; when the test failed, the interesting tail of its log
// is printed and the log is kept, and a race report in it fails the test.
//
// Proc is the supervisor underneath, for other processes a test runs
// (nats-server, a variant of serve).
package servetest
