// Package faulttest holds fault-injection tests of the lkwebhook binary run as
// a real process: kill -9 during a webhook burst, an external nats-server
// stopped and restarted under load, a 3-node JetStream cluster losing a node
// and a serve replica mid-burst, and hostile HTTP input. LiveKit's own
// webhook notifier (github.com/livekit/protocol/webhook) is the sender, and
// every assertion goes through the HTTP API, never the logs.
//
// nats-server (for the external-engine tests) is installed once with
// `go install` into $HOME/.cache/lkwebhook-bin.
//
// The processes run under internal/servetest, the harness the e2e suite
// shares. Everything runs on loopback: serve, hookserve and nats-server
// bind port 0 and the harness reads back what they got (a restart keeps it); a
// cluster's route ports must be known in advance, so a cluster start that
// loses one to another process is done again on new ports. Every process is
// killed at the end of its test, and each test is bounded (well under a minute once the binaries are
// built). Run with:
//
//	go test -race ./faulttest/
//
// Environment:
//
//	LKWEBHOOK_FAULT_REQUIRED=1   fail (instead of skip) when nats-server cannot be installed
//	LKWEBHOOK_FAULT_RACE=1       build lkwebhook with -race and fail on any reported data race
//	LKWEBHOOK_FAULT_ENDWAIT=5m   wait longer than the default 20s for every room's report
//	LKWEBHOOK_FAULT_BIN=PATH     use a prebuilt lkwebhook instead of building cmd/lkwebhook
//	LKWEBHOOK_FAULT_KEEPLOGS=1   keep the cluster tests' serve logs even when they pass (in $TMPDIR/lkwebhook-test-logs, like a failed test's)
//	LKWEBHOOK_FAULT_LOGLEVEL=debug  log level of the cluster tests' serve replicas
//	LKWEBHOOK_MEASURE=1          run TestMeasure (start time, RSS, intake/processing rates)
//	LKWEBHOOK_MEASURE_OUT=FILE   and write its figures as JSON to FILE
package faulttest
