package loadtest

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Percentiles are the p50, p95 and p99 of a set of samples, and its
// maximum, in milliseconds. A set without samples has all four zero.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentile returns the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// durationPercentiles returns ds's percentiles in milliseconds.
func durationPercentiles(ds []time.Duration) Percentiles {
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(ms)
	if len(ms) == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50: percentile(ms, 50),
		P95: percentile(ms, 95),
		P99: percentile(ms, 99),
		Max: ms[len(ms)-1],
	}
}

// histogram counts non-negative values in log-linear buckets (exact below
// 64, then 32 per power of two), in fixed memory, with one atomic add each.
type histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Uint64
}

const (
	histLinear  = 64 // values below are their own bucket
	histSub     = 32 // buckets per power of two above
	histBuckets = histLinear + (64-6)*histSub
)

// histIndex is the bucket of v.
func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - 6 // v >> shift is in [32, 63]
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < histLinear {
		return uint64(i), uint64(i)
	}
	i -= histLinear
	shift := i/histSub + 1
	mant := uint64(i%histSub + histSub)
	return mant << shift, (mant+1)<<shift - 1
}

// Add counts one value; negative values count as 0.
func (h *histogram) Add(v int64) {
	u := uint64(max(v, 0))
	h.buckets[histIndex(u)].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if u <= m || h.max.CompareAndSwap(m, u) {
			return
		}
	}
}

// Count is the number of values added.
func (h *histogram) Count() uint64 { return h.count.Load() }

// Quantile returns the nearest-rank p-th percentile within half a bucket
// (1.6 %), never above the largest value added.
func (h *histogram) Quantile(p float64) float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			lo, hi := histBounds(i)
			mid := float64(lo) + float64(hi-lo)/2
			return math.Min(mid, float64(h.max.Load()))
		}
	}
	return float64(h.max.Load())
}

// Percentiles returns p50, p95, p99 and max of microsecond values in
// milliseconds.
func (h *histogram) Percentiles() Percentiles {
	const us = 1000.0
	return Percentiles{
		P50: h.Quantile(50) / us,
		P95: h.Quantile(95) / us,
		P99: h.Quantile(99) / us,
		Max: float64(h.max.Load()) / us,
	}
}

// seqWindow records which sequence numbers of a track arrived, from the
// first: duplicates count once and late frames fill their hole.
type seqWindow struct {
	started bool
	first   uint32
	bits    []uint64
}

// add records seq; it reports false for a frame before the first one
// recorded or already recorded.
func (w *seqWindow) add(seq uint32) bool {
	if !w.started {
		w.started, w.first = true, seq
	}
	if seq < w.first {
		return false
	}
	off := seq - w.first
	word, bit := int(off/64), off%64
	if word >= len(w.bits) {
		w.bits = append(w.bits, make([]uint64, word-len(w.bits)+1)...)
	}
	if w.bits[word]&(1<<bit) != 0 {
		return false
	}
	w.bits[word] |= 1 << bit
	return true
}

// count returns the frames expected and received with sequence numbers
// from from through to, and from the first recorded at the earliest.
func (w *seqWindow) count(from, to uint32) (expected, received uint64) {
	from = max(from, w.first)
	if !w.started || to < from {
		return 0, 0
	}
	expected = uint64(to-from) + 1
	lo, hi := uint64(from-w.first), uint64(to-w.first) // bit offsets, inclusive
	for word := lo / 64; word <= hi/64 && word < uint64(len(w.bits)); word++ {
		b := w.bits[word]
		if word == lo/64 {
			b &^= 1<<(lo%64) - 1 // drop bits below lo
		}
		if word == hi/64 && hi%64 < 63 {
			b &= 1<<(hi%64+1) - 1 // drop bits above hi
		}
		received += uint64(bits.OnesCount64(b))
	}
	return expected, received
}

// jitter is RFC 3550's interarrival jitter (6.4.1) on the frames' send
// times instead of RTP timestamps.
type jitter struct {
	have    bool
	transit int64
	j       float64
}

func (j *jitter) add(sent, arrived int64) {
	transit := arrived - sent
	if j.have {
		d := math.Abs(float64(transit - j.transit))
		j.j += (d - j.j) / 16
	}
	j.have, j.transit = true, transit
}
