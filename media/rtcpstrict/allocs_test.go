package rtcpstrict

import "runtime"

// allocs returns how many heap allocations n calls of f make, in total,
// after one call to warm up. testing.AllocsPerRun divides that total by n
// as an integer, so up to n-1 allocations would read as 0; a check that a
// refusal costs nothing must see every one. Nothing else in these tests
// runs concurrently (no t.Parallel, no goroutines), and one P keeps the
// runtime's own work out of the window.
func allocs(n int, f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
