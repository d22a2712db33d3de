package udpref

import (
	"syscall"
	"time"
)

// cpuClock says whose CPU time threadCPU measures.
const cpuClock = "thread"

// threadCPU is the calling OS thread's CPU time, user and system. The
// caller has locked its goroutine to the thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
