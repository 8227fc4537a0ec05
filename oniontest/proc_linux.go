package oniontest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child when the thread that
// started it dies: a second guard, after __OwningControllerProcess, against
// tor processes outliving a crashed test binary.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
