//go:build !linux

package diskstore

// lowPriority does nothing outside Linux.
func lowPriority() {}
