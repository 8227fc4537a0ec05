//go:build !linux

package oniontest

import "os/exec"

// setDeathSignal is a no-op outside Linux; __OwningControllerProcess still
// makes tor exit when the test binary dies.
func setDeathSignal(*exec.Cmd) {}
