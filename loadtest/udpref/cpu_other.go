//go:build unix && !linux

package udpref

import (
	"syscall"
	"time"
)

// cpuClock says whose CPU time threadCPU measures: without
// RUSAGE_THREAD, the whole process's.
const cpuClock = "process"

// threadCPU is the process's CPU time, user and system.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
