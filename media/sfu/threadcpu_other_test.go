//go:build !linux

package sfu

import "time"

// threadCPU is not measured here: the benchmarks report no CPU figures.
func threadCPU() time.Duration { return 0 }

// processCPU is not measured here either.
func processCPU() time.Duration { return 0 }
