package diskstore

import (
	"runtime"
	"syscall"
	"unsafe"
)

// lowPriority runs the calling goroutine, from now until it returns, on an
// OS thread of its own with the SCHED_IDLE policy: the kernel gives it a
// CPU only when nothing else wants one, so that work done ahead of need
// (see spares) never delays a request. The thread is discarded when the
// goroutine ends (it stays locked).
func lowPriority() {
	runtime.LockOSThread()
	const schedIdle = 5
	var param struct{ priority int32 }
	syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(syscall.Gettid()), schedIdle, uintptr(unsafe.Pointer(&param)))
}
