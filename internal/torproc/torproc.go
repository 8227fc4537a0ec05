// Package torproc starts and stops tor processes owned by this process. It
// is the one place that knows how: packages onion (a tor per Server) and
// oniontest (a private network) build on it.
//
// A tor started here runs in its own process group, so that a signal sent
// to the program's process group (Ctrl-C in a terminal) reaches the
// program, which can drain its connections before it stops tor; and, on
// Linux, it gets SIGKILL from the kernel when the thread that started it
// dies (a parent-death signal), so a crashed program never leaks it. Go's
// runtime does not end threads by itself; a goroutine that exits while
// locked to its thread (runtime.LockOSThread) would, so do not start tor
// from one.
package torproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Command returns an exec.Cmd for the tor binary at path with args, set up
// to be owned by this process: its own process group and, on Linux, a
// parent-death signal. Its output goes to a [TailBuffer] reachable through
// [Proc.Output] once started.
func Command(path string, args ...string) *exec.Cmd {
	return Own(exec.Command(path, args...))
}

// Own sets cmd up as Command does (own process group, parent-death
// signal) and returns it; for commands built with exec.CommandContext.
func Own(cmd *exec.Cmd) *exec.Cmd {
	setOwned(cmd)
	return cmd
}

// Proc is a started tor process.
type Proc struct {
	cmd     *exec.Cmd
	out     *TailBuffer
	done    chan struct{}
	waitErr error // valid once done is closed
}

// Start starts cmd (from [Command]) with its stdout and stderr captured in
// a tail buffer of tailBytes, and reaps it in the background.
func Start(cmd *exec.Cmd, tailBytes int) (*Proc, error) {
	p := &Proc{cmd: cmd, out: &TailBuffer{Max: tailBytes}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the process's exit error; valid once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.waitErr
}

// Output returns the tail of the process's stdout and stderr.
func (p *Proc) Output() string { return strings.TrimSpace(p.out.String()) }

// ErrKilled is wrapped by Stop's error when tor ignored SIGTERM.
var ErrKilled = errors.New("ignored SIGTERM: killed")

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL (tor 0.4.9 can
// deadlock on SIGTERM) and waits until the process is reaped. It returns
// nil if the process exited on SIGTERM (or had exited), an error wrapping
// ErrKilled if it had to be killed, or another error if it survived even
// SIGKILL for grace.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return fmt.Errorf("tor (pid %d) %w after %v", p.PID(), ErrKilled, grace)
	case <-time.After(grace):
		return fmt.Errorf("tor (pid %d) did not exit after SIGKILL", p.PID())
	}
}

// Kill kills the process at once and waits until it is reaped.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// StopAll stops the processes in parallel (see Stop) and joins the errors.
func StopAll(procs []*Proc, grace time.Duration) error {
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.Stop(grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TailBuffer keeps the last Max bytes written to it. It is safe for
// concurrent use.
type TailBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Gone reports whether no process with id pid exists any more (a zombie
// counts as gone), or pid is not positive.
func Gone(pid int) bool {
	if pid <= 0 {
		return true
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	if err := proc.Signal(syscall.Signal(0)); err != nil {
		return true
	}
	// A zombie still answers signal 0; /proc tells it apart.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return true
		}
	}
	return false
}
