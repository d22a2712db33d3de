//go:build !unix

package udpref

import "time"

// cpuClock says whose CPU time threadCPU measures: none here, so the
// per-CPU-second figures stay 0.
const cpuClock = "none"

func threadCPU() time.Duration { return 0 }
