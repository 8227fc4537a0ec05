package oniontest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/internal/torproc"
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
	*torproc.Proc
}

// startTor starts tor with the given torrc. The process is owned by us: it
// is not daemonised, runs in its own process group, exits by itself when
// this process dies (__OwningControllerProcess) and, on Linux, the kernel
// kills it too (parent-death signal; see internal/torproc).
func startTor(torPath, name, dataDir, torrc string) (*proc, error) {
	cmd := torproc.Command(torPath,
		"-f", torrc,
		"--hush",
		"--__OwningControllerProcess", strconv.Itoa(os.Getpid()),
	)
	cmd.Dir = dataDir
	tp, err := torproc.Start(cmd, tailBytes)
	if err != nil {
		return nil, fmt.Errorf("oniontest: starting tor %s: %w", name, err)
	}
	return &proc{name: name, dataDir: dataDir, Proc: tp}, nil
}

// pid returns the process id.
func (p *proc) pid() int { return p.PID() }

// exited reports whether the process has exited.
func (p *proc) exited() bool { return p.Exited() }

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the
// process to be reaped. It returns an error only if the process had to be
// killed.
func (p *proc) stop(grace time.Duration) error {
	if err := p.Stop(grace); err != nil {
		return fmt.Errorf("oniontest: tor %s: %w", p.name, err)
	}
	return nil
}

// exitError describes an unexpected exit, with the tail of tor's output
// and notice log.
func (p *proc) exitError(when string) error {
	return fmt.Errorf("oniontest: tor %s exited %s (%v)%s", p.name, when, p.Err(), p.logTail())
}

// logTail returns the last lines tor wrote to its console and notice log,
// formatted for an error message ("" if there is nothing).
func (p *proc) logTail() string {
	var b strings.Builder
	if out := p.Output(); out != "" {
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
	s := p.Output() + fileTail(noticeLog(p.dataDir), 4*tailBytes)
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
