//go:build race

package servetest

// RaceEnabled reports whether the test binary runs with -race, for a suite
// whose Build.Race follows it.
const RaceEnabled = true
