package servetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceReport starts every report of the race detector.
const raceReport = "WARNING: DATA RACE"

// Proc is a child process a test runs: started, signalled and started again
// with the same arguments, its stdout and stderr (of every run) collected in
// one log file. It is always killed at the end of the test.
type Proc struct {
	t           testing.TB
	name, bin   string
	env         []string
	log         *os.File
	stopTimeout time.Duration
	endSignal   syscall.Signal // sent when the test ends

	mu      sync.Mutex
	args    []string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the last run exited
	exitErr error
	starts  int
}

// NewProc prepares (does not start) bin with args and exactly the
// environment env, named name in logs. At the end of the test it is killed
// (SIGKILL); if the test failed, the interesting tail of its log is printed
// and the log is kept (KeepLog); a race report in the log fails the test.
func NewProc(t testing.TB, name, bin string, args, env []string) *Proc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, name: name, bin: bin, args: args, env: env, log: logf,
		stopTimeout: 15 * time.Second, endSignal: syscall.SIGKILL}
	t.Cleanup(func() {
		p.Signal(p.endSignal)
		lines := 80
		if strings.Contains(p.Log(), raceReport) {
			t.Errorf("%s reported a data race", name)
			lines = 200
		}
		if t.Failed() {
			p.dumpLog(lines)
			p.KeepLog()
		}
		_ = logf.Close()
	})
	return p
}

// Name is the process's name in logs.
func (p *Proc) Name() string { return p.name }

// Start launches the process (again); the test fails if it is running.
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			p.t.Fatalf("servetest: start %s while it runs", p.name)
		}
	}
	p.starts++
	fmt.Fprintf(p.log, "\n%s%d of %s at %s =====\n", startMarker, p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("servetest: start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
}

const startMarker = "===== servetest: start #"

// Signal sends sig and waits until the process exits; after the stop
// timeout (15 s for a Proc) the test fails and the process is killed.
// Nothing happens when it is not running.
func (p *Proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	fmt.Fprintf(p.log, "\n===== servetest: %v to %s (pid %d) at %s =====\n", sig, p.name, cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(p.stopTimeout):
		p.t.Errorf("servetest: %s did not exit within %s of %v; killing it", p.name, p.stopTimeout, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill ends the process with SIGKILL, a crash: no drain, no clean shutdown.
func (p *Proc) Kill() { p.Signal(syscall.SIGKILL) }

// Stop ends the process with SIGTERM, a graceful stop.
func (p *Proc) Stop() { p.Signal(syscall.SIGTERM) }

// Running reports whether the last run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// ExitErr is the result of the last run's Wait: nil while it runs or after
// a clean exit.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// PID is the process id of the last run (0 before the first).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// SetArg sets the value that follows flag in the arguments of the next
// starts: a restart keeps the port the kernel gave the first run.
func (p *Proc) SetArg(flag, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i+1 < len(p.args); i++ {
		if p.args[i] == flag {
			p.args[i+1] = value
			return
		}
	}
	p.t.Fatalf("servetest: %s has no %s argument", p.name, flag)
}

// LogPath is the file holding the output of every run.
func (p *Proc) LogPath() string { return p.log.Name() }

// Log is everything the process wrote, every run.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	return string(b)
}

// Output is what the process wrote since its last start.
func (p *Proc) Output() string {
	p.mu.Lock()
	marker := fmt.Sprintf("%s%d of %s ", startMarker, p.starts, p.name)
	p.mu.Unlock()
	out := p.Log()
	if i := strings.LastIndex(out, marker); i >= 0 {
		out = out[i:]
	}
	return out
}

// LogTail is the last n lines of the log.
func (p *Proc) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// KeepLog copies the log out of the test's temporary directory, to
// $TMPDIR/lkwebhook-test-logs/TEST/NAME.log, and says where.
func (p *Proc) KeepLog() {
	dir := filepath.Join(os.TempDir(), "lkwebhook-test-logs", strings.ReplaceAll(p.t.Name(), "/", "_"))
	b, err := os.ReadFile(p.log.Name())
	if err != nil || os.MkdirAll(dir, 0o755) != nil {
		return
	}
	dst := filepath.Join(dir, p.name+".log")
	if os.WriteFile(dst, b, 0o644) == nil {
		p.t.Logf("%s log kept at %s", p.name, dst)
	}
}

// dumpLog logs the interesting lines of the log: the harness's markers,
// warnings, errors and whatever is not an info or debug log line (panics,
// race reports), the last n of them.
func (p *Proc) dumpLog(n int) {
	var keep []string
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.TrimSpace(l) == "" || strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, `"level":"DEBUG"`) ||
			strings.Contains(l, "[INF]") || strings.Contains(l, "[DBG]") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	p.t.Logf("%s log (%s), last %d warning/error/other lines:\n%s", p.name, p.log.Name(), len(keep), strings.Join(keep, "\n"))
}

// BindFailure returns the last line of a process's output that says its
// port was taken ("address already in use"), or "": a harness that had to
// pick a port in advance then starts again on another one.
func BindFailure(out string) string {
	const sub = "address already in use"
	i := strings.LastIndex(out, sub)
	if i < 0 {
		return ""
	}
	start := strings.LastIndexByte(out[:i], '\n') + 1
	end := strings.IndexByte(out[i:], '\n')
	if end < 0 {
		return out[start:]
	}
	return out[start : i+end]
}
