package main

import (
	"context"
	"os"
	"testing"
)

// TestMain lets this test binary stand in for lkwebhook when bench -mix
// runs it as its load generator (a child process).
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) != "" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
