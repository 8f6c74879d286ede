//go:build !race

package lkserver

// raceEnabled: this test binary runs without -race (see EnvServeRace).
const raceEnabled = false
