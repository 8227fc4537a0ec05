package torproc

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A shell stands in for tor: the process handling does not depend on the
// binary.
func TestOwnProcessGroup(t *testing.T) {
	p, err := Start(Command("/bin/sh", "-c", "echo hello; exec sleep 30"), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	for !strings.Contains(p.Output(), "hello") {
		time.Sleep(10 * time.Millisecond)
	}
	pgid, err := syscall.Getpgid(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.PID() || pgid == syscall.Getpgrp() {
		t.Fatalf("child pgid %d, own pgrp %d: want the child leading its own group", pgid, syscall.Getpgrp())
	}
	if runtime.GOOS == "linux" {
		if sig := p.cmd.SysProcAttr.Pdeathsig; sig != syscall.SIGKILL {
			t.Fatalf("Pdeathsig = %v", sig)
		}
	}
	// Signalling our own process group must not reach the child: we are
	// not its group. (Signal 0 checks delivery without killing.)
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("child group not signalable: %v", err)
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !Gone(p.PID()) {
		t.Fatal("process not gone after Stop")
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := Start(Command("/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"), 64)
	if err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(p.Output(), "ready") {
		time.Sleep(10 * time.Millisecond)
	}
	err = p.Stop(300 * time.Millisecond)
	if !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop = %v, want ErrKilled", err)
	}
	if !Gone(p.PID()) {
		t.Fatal("process survived")
	}
}

func TestGone(t *testing.T) {
	if Gone(os.Getpid()) {
		t.Error("own process reported gone")
	}
	if !Gone(0) || !Gone(-1) {
		t.Error("non-positive pid not gone")
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !Gone(cmd.Process.Pid) {
		t.Error("reaped process not gone")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &TailBuffer{Max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if got := b.String(); got != "defg" {
		t.Fatalf("tail %q", got)
	}
}
