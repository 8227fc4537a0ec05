package oniontest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long Close waits after SIGTERM before it sends SIGKILL:
// tor 0.4.9.11 sometimes deadlocks while shutting down on SIGTERM.
const stopGrace = 5 * time.Second

// failGrace is the SIGTERM grace when Start gives up: the processes are
// disposable, and a cancelled Start should return promptly.
const failGrace = time.Second

// tailBytes is how much of a log is quoted in an error.
const tailBytes = 2048

// proc is one tor process started by the network.
type proc struct {
	name    string // node nickname, e.g. "a1" or "client"
	dataDir string
	cmd     *exec.Cmd
	out     *tailBuffer   // tor's stdout and stderr (messages before the log file opens)
	done    chan struct{} // closed once Wait returned
	waitErr error         // valid after done is closed
}

// startTor starts tor with the given torrc. The process is owned by us: it
// is not daemonised, tor exits by itself when this process dies
// (__OwningControllerProcess) and, on Linux, the kernel kills it too
// (Pdeathsig).
func startTor(torPath, name, dataDir, torrc string) (*proc, error) {
	p := &proc{name: name, dataDir: dataDir, out: &tailBuffer{max: tailBytes}, done: make(chan struct{})}
	p.cmd = exec.Command(torPath,
		"-f", torrc,
		"--hush",
		"--__OwningControllerProcess", strconv.Itoa(os.Getpid()),
	)
	p.cmd.Dir = dataDir
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	setDeathSignal(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("oniontest: starting tor %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the
// process to be reaped. It returns an error only if the process had to be
// killed.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
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
	<-p.done
	return fmt.Errorf("oniontest: tor %s (pid %d) ignored SIGTERM for %v: killed", p.name, p.pid(), grace)
}

// exitError describes an unexpected exit, with the tail of tor's output
// and notice log.
func (p *proc) exitError(when string) error {
	return fmt.Errorf("oniontest: tor %s exited %s (%v)%s", p.name, when, p.waitErr, p.logTail())
}

// logTail returns the last lines tor wrote to its console and notice log,
// formatted for an error message ("" if there is nothing).
func (p *proc) logTail() string {
	var b strings.Builder
	if out := strings.TrimSpace(p.out.String()); out != "" {
		b.WriteString("\n--- tor output:\n")
		b.WriteString(out)
	}
	if log := strings.TrimSpace(fileTail(noticeLog(p.dataDir), tailBytes)); log != "" {
		b.WriteString("\n--- notice log tail:\n")
		b.WriteString(log)
	}
	return b.String()
}

// bindFailed reports whether tor failed because a port was taken.
func (p *proc) bindFailed() bool {
	s := p.out.String() + fileTail(noticeLog(p.dataDir), 4*tailBytes)
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "Could not bind")
}

// fileTail returns up to n bytes from the end of the file, starting at a
// line boundary; "" if it cannot be read.
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	buf, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return ""
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf)
}

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// stopAll stops the processes in parallel and joins the errors.
func stopAll(procs []*proc, grace time.Duration) error {
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.stop(grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
