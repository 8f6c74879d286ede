//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU is the CPU this process has used so far, user and system,
// all threads (child processes not included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
