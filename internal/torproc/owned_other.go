//go:build !linux

package torproc

import (
	"os/exec"
	"syscall"
)

// setOwned puts tor in its own process group. There is no parent-death
// signal outside Linux; tor's __OwningControllerProcess (which both
// onion.Server and oniontest set) still makes it exit when this process
// dies.
func setOwned(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
