package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	tests := []struct {
		name    string
		samples []float64
		p       float64
		want    float64
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", []float64{7}, 1, 7},
		{"one sample p99", []float64{7}, 99, 7},
		{"p50 of four is the second", []float64{1, 2, 3, 4}, 50, 2},
		{"p51 of four is the third", []float64{1, 2, 3, 4}, 51, 3},
		{"p100 is the max", []float64{1, 2, 3, 4}, 100, 4},
		{"p95 of 20 is the 19th", seq(1, 20), 95, 19},
		{"p95 of 21 is the 20th", seq(1, 21), 95, 20},
		{"p99 of 100 is the 99th", seq(1, 100), 99, 99},
		{"p99 of 101 is the 100th", seq(1, 101), 99, 100},
		{"p50 of 100", seq(1, 100), 50, 50},
		{"tiny p is the min", seq(1, 100), 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
			}
		})
	}
}

func seq(from, to int) []float64 {
	var s []float64
	for i := from; i <= to; i++ {
		s = append(s, float64(i))
	}
	return s
}

func TestDurationPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := durationPercentiles(ds)
	want := Percentiles{P50: 50, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Errorf("durationPercentiles = %+v, want %+v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("durationPercentiles sorted its argument")
	}
	if got := durationPercentiles(nil); got != (Percentiles{}) {
		t.Errorf("no samples: %+v, want zeros", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose bounds hold it, buckets are in
	// order, and a bucket is at most 1/32 of its values wide.
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if int64(lo) != prevHi+1 && i > 0 {
			t.Fatalf("bucket %d starts at %d, the previous ended at %d", i, lo, prevHi)
		}
		if lo >= histLinear && float64(hi-lo+1) > float64(lo)/32+1e-9 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/32 of %d", i, lo, hi, lo)
		}
		for _, v := range []uint64{lo, hi, lo + (hi-lo)/2} {
			if got := histIndex(v); got != i {
				t.Fatalf("histIndex(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = int64(hi)
		if hi == math.MaxUint64 {
			break
		}
	}
	if histIndex(math.MaxUint64) != histBuckets-1 {
		t.Errorf("the largest value is not in the last bucket")
	}
}

func TestHistogramQuantileMatchesExact(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"uniform 0-100 ms", func(r *rand.Rand) int64 { return r.Int64N(100_000) }},
		{"exponential, mean 20 ms", func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * 20_000) }},
		{"small values are exact", func(r *rand.Rand) int64 { return r.Int64N(64) }},
		{"long tail", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 5_000_000 + r.Int64N(1_000_000)
			}
			return 10_000 + r.Int64N(5_000)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h histogram
			var exact []float64
			for range 20_000 {
				v := tt.gen(r)
				h.Add(v)
				exact = append(exact, float64(v))
			}
			slices.Sort(exact)
			for _, p := range []float64{1, 50, 90, 95, 99, 99.9, 100} {
				want := percentile(exact, p)
				got := h.Quantile(p)
				// Half a bucket: 1/64 of the value, or exact below 64.
				if tol := want/64 + 0.5; math.Abs(got-want) > tol {
					t.Errorf("p%v = %v, exact %v (tolerance %v)", p, got, want, tol)
				}
			}
			if h.Count() != 20_000 {
				t.Errorf("Count = %d", h.Count())
			}
			if got := h.Percentiles().Max; got != exact[len(exact)-1]/1000 {
				t.Errorf("Max = %v ms, want %v", got, exact[len(exact)-1]/1000)
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h histogram
	if got := h.Percentiles(); got != (Percentiles{}) {
		t.Errorf("empty: %+v", got)
	}
	h.Add(-5) // a clock that went backwards counts as 0
	if got := h.Quantile(50); got != 0 {
		t.Errorf("negative value: p50 %v, want 0", got)
	}
}

func TestSeqWindow(t *testing.T) {
	tests := []struct {
		name          string
		add           []uint32
		from, to      uint32
		wantExpected  uint64
		wantReceived  uint64
		wantDuplicate int // adds that reported false
	}{
		{"nothing", nil, 0, 10, 0, 0, 0},
		{"all of them", []uint32{5, 6, 7, 8}, 0, 8, 4, 4, 0},
		{"a hole", []uint32{5, 6, 8}, 0, 8, 4, 3, 0},
		{"tail lost up to the cutoff", []uint32{0, 1, 2}, 0, 9, 10, 3, 0},
		{"frames after the cutoff do not count", []uint32{0, 1, 2, 3, 4}, 0, 2, 3, 3, 0},
		{"duplicates count once", []uint32{1, 2, 2, 3, 3}, 0, 3, 3, 3, 2},
		{"before the first is ignored", []uint32{10, 9, 11}, 0, 11, 2, 2, 1},
		{"late frame fills its hole", []uint32{0, 2, 1}, 0, 2, 3, 3, 0},
		{"across words", seqU(100, 300), 0, 300, 201, 201, 0},
		{"cutoff before the first", []uint32{50}, 0, 49, 0, 0, 0},
		{"cutoff at word boundary", seqU(0, 127), 0, 63, 64, 64, 0},
		{"a window in the middle", seqU(0, 199), 70, 130, 61, 61, 0},
		{"a window with holes", []uint32{0, 1, 3, 5, 64, 66, 200}, 1, 66, 66, 5, 0},
		{"a window that starts before the first frame", seqU(10, 20), 5, 15, 6, 6, 0},
		{"a window of one frame", seqU(0, 300), 64, 64, 1, 1, 0},
		{"a window past what arrived", seqU(0, 9), 5, 100, 96, 5, 0},
		{"an empty window", seqU(0, 9), 6, 5, 0, 0, 0},
		{"a window on the last bit of a word", seqU(0, 200), 63, 63, 1, 1, 0},
		{"a window of whole words", seqU(0, 255), 64, 191, 128, 128, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w seqWindow
			dups := 0
			for _, s := range tt.add {
				if !w.add(s) {
					dups++
				}
			}
			exp, rec := w.count(tt.from, tt.to)
			if exp != tt.wantExpected || rec != tt.wantReceived || dups != tt.wantDuplicate {
				t.Errorf("count(%d, %d) = %d expected, %d received, %d refused; want %d, %d, %d",
					tt.from, tt.to, exp, rec, dups, tt.wantExpected, tt.wantReceived, tt.wantDuplicate)
			}
		})
	}
}

func seqU(from, to uint32) []uint32 {
	var s []uint32
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestJitter(t *testing.T) {
	tests := []struct {
		name     string
		transits []int64 // arrival - send, per frame
		want     float64
	}{
		{"constant delay is no jitter", []int64{30, 30, 30, 30}, 0},
		{"one step of 16", []int64{0, 16}, 1},
		{"alternating", []int64{0, 16, 0}, 1 + (16-1)/16.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j jitter
			for i, tr := range tt.transits {
				sent := int64(i) * 20_000
				j.add(sent, sent+tr)
			}
			if math.Abs(j.j-tt.want) > 1e-9 {
				t.Errorf("jitter = %v, want %v", j.j, tt.want)
			}
		})
	}
}
