//go:build race

package lkserver

// raceEnabled: this test binary runs with -race, so StartServe builds
// lkwebhook with -race too (see EnvServeRace).
const raceEnabled = true
