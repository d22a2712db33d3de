//go:build !unix

package loadtest

import "time"

// processCPU is not measured on this system: the report's
// loadtest_cpu_seconds stays 0.
func processCPU() time.Duration { return 0 }
