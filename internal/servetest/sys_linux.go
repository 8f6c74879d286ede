package servetest

import "syscall"

// sysProcAttr makes a child die with the test binary, even on a panic or a
// test timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
