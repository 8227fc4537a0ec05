//go:build !linux

package heldwrite

import "net"

// cork is a no-op where TCP_CORK does not exist (see cork_linux.go).
func cork(*net.TCPConn) bool { return false }

func uncork(*net.TCPConn) {}
