package heldwrite

import (
	"net"
	"syscall"
)

// cork sets TCP_CORK on c: partial segments are held back until uncork
// (or 200 ms), so that a response header written just before a sendfile(2)
// body leaves in the same full-sized segments as the body. It reports
// whether it did.
func cork(c *net.TCPConn) bool { return setCork(c, 1) }

// uncork clears TCP_CORK on c, sending what it held back.
func uncork(c *net.TCPConn) { setCork(c, 0) }

func setCork(c *net.TCPConn, v int) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); err != nil {
		return false
	}
	return serr == nil
}
