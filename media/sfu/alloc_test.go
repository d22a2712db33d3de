//go:build !race

package sfu

// The allocation checks. They are built without -race only: the race
// detector makes sync.Pool drop a quarter of what is put back (on purpose,
// to expose misuse), so code that reuses pooled buffers, pion/srtp's and
// x/net's included, allocates under it. Under -race these tests do not
// exist (rather than skip); CI runs them on their own with
//
//	go test -count=1 -run Alloc ./media
//
// so every test here has Alloc in its name.
//
// How the count is exact. testing.AllocsPerRun divides the allocations of
// N runs by N as integers, so up to N−1 allocations over N runs (one per
// batch flush, one per 500 packets) report 0. These tests take the total
// over the N runs instead, and count only the allocations the measured
// calls make: with runtime.MemProfileRate = 1 the runtime records every
// heap allocation, with its whole call stack, in the heap profile, and
// allocMeter sums the records whose stack passes through countedCall, the
// frame every measured call goes through. So an allocation made by the
// measured code, or by anything it calls on its goroutine (pion's
// interceptors, SRTP, ICE, the UDP mux, x/net's sendmmsg), is counted one
// for one, and nothing else is: not the warm-up, not the waits between
// bursts, not the real-path fixture's background work (ICE keepalives and
// checks, the peers' read goroutines, timers), which allocates in the same
// process while the loop runs and would make a process-wide total
// (runtime.MemStats.Mallocs) depend on timing. What this cannot see is an
// allocation the measured code causes on another goroutine (it would have
// to start or wake one per packet; forwarding does neither).
// TestAllocMeterCounts checks the meter itself. The details:
//
//   - Tiny allocations (pointer-free, under 16 bytes) share 16-byte blocks,
//     and only the one that starts a block is profiled; fillTinyBlock
//     fills the current block before every measured call, so the call's
//     first tiny allocation is seen.
//   - Stacks in the heap profile are cut at 128 frames (GODEBUG
//     profstackdepth); a record that deep whose count moved is counted,
//     as it might be ours. The forwarding path's deepest allocation stack
//     is about 30 frames.
//   - The runtime's lazily built type-assertion caches are logged, not
//     counted (stop says why).
//   - While a meter runs, garbage collection is off and the process has
//     one P (GOMAXPROCS 1). A collection empties the sync.Pools the path
//     reuses buffers from, and sync.Pool keeps its items per P: refilling
//     a pool after a collection, or filling the second P's when the
//     goroutine first runs there, allocates once. That is not a per-packet
//     allocation, and whether it lands in the warm-up or the counted loop
//     would be up to the scheduler; with one P and no collection, the
//     warm-up fills the pools.
//   - The real path's subscriber connections send RTCP sender reports
//     hourly instead of every second (quietSenderReports says why).
//   - Forwarding tests also check that every packet reached every
//     subscriber, exactly, and that no drop counter moved.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// profStackDepth is the runtime's default limit on heap profile stacks
// (GODEBUG profstackdepth=128).
const profStackDepth = 128

// countedCall calls f. Every allocation whose stack passes through this
// frame is f's.
//
//go:noinline
func countedCall(f func()) { f() }

var countedCallName = runtime.FuncForPC(reflect.ValueOf(countedCall).Pointer()).Name()

// allocMeter counts the heap allocations of the calls made through it.
type allocMeter struct {
	t         testing.TB
	rate, gc  int
	procs     int
	before    heapRecords
	profiling bool
}

// heapRecords is the heap profile's allocated objects per stack (the
// stack's PCs, in hex).
type heapRecords map[string]uint64

// startAllocMeter sets the process up for counting until stop: every
// allocation profiled, garbage collection off, one P. Calls made through
// run are counted; any warm-up belongs between startAllocMeter and the
// first run.
func startAllocMeter(t testing.TB) *allocMeter {
	t.Helper()
	m := &allocMeter{t: t, rate: runtime.MemProfileRate, gc: debug.SetGCPercent(-1)}
	m.procs = runtime.GOMAXPROCS(1) // see the file's comment
	// Publishes the profile as of now: every earlier allocation counted
	// through countedCall is in before. (Reading the profile allocates
	// plenty; it is not profiled.)
	runtime.MemProfileRate = 0
	runtime.GC()
	m.before = readHeapRecords(t)
	runtime.MemProfileRate = 1
	m.profiling = true
	t.Cleanup(func() { // a test that fails before stop
		if m.profiling {
			m.restore()
		}
	})
	return m
}

// restore undoes startAllocMeter's settings.
func (m *allocMeter) restore() {
	m.profiling = false
	runtime.MemProfileRate = m.rate
	runtime.GOMAXPROCS(m.procs)
	debug.SetGCPercent(m.gc)
}

// run calls f and counts its allocations.
func (m *allocMeter) run(f func()) {
	fillTinyBlock()
	countedCall(f)
}

// tinyKeep keeps fillTinyBlock's allocations on the heap.
var tinyKeep *byte

// fillTinyBlock fills the runtime's current tiny block. The runtime
// serves small pointer-free allocations (under 16 bytes) from a 16-byte
// block per P, and profiles only the allocation that starts a block: one
// that fits in the current block is counted in MemStats but is not in the
// heap profile. With the block full, the measured call's first such
// allocation starts a block and is seen. (Later ones in the same call may
// share it: for those the count is at least one, not exact.)
//
//go:noinline
func fillTinyBlock() {
	for range 16 {
		b := new(byte)
		tinyKeep = b
		if uintptr(unsafe.Pointer(b))%16 == 15 { // the block's last byte
			return
		}
	}
}

// stop ends the meter and returns the allocations of the calls made
// through run, logging where they were made.
func (m *allocMeter) stop() uint64 {
	m.t.Helper()
	if !m.profiling {
		m.t.Fatal("allocMeter stopped twice")
	}
	runtime.MemProfileRate = 0
	runtime.GC() // publishes the profile as of now
	after := readHeapRecords(m.t)
	m.restore()

	var ours uint64
	var where []string
	for pcs, n := range after {
		d := n - m.before[pcs]
		if d == 0 {
			continue
		}
		hs := describeStack(m.t, pcs)
		deep := hs.depth >= profStackDepth
		switch {
		case !hs.ours && !deep:
			continue // another goroutine's
		case hs.cache && !deep:
			// The runtime builds a type assertion's (or type switch's)
			// cache of the types seen at that call site lazily, at a
			// random call (about one in a thousand) once a new type has
			// been seen there. It allocates once per call site and type,
			// not per packet; when it happens to fall in the counted
			// loop rather than the warm-up is chance. Logged, not
			// counted.
			m.t.Logf("not counted: %d× runtime type-assertion cache build (stack of %d frames)%s", d, hs.depth, hs.summary)
			continue
		}
		ours += d
		where = append(where, fmt.Sprintf("%d× (stack of %d frames)%s", d, hs.depth, hs.summary))
	}
	slices.Sort(where)
	for _, w := range where {
		m.t.Logf("counted allocation: %s", w)
	}
	return ours
}

// allocsOver runs f warm times uncounted, then n times counted, and
// returns the allocations of the n counted runs: their total, exactly.
func allocsOver(t testing.TB, warm, n int, f func()) uint64 {
	t.Helper()
	m := startAllocMeter(t)
	for range warm {
		f()
	}
	for range n {
		m.run(f)
	}
	return m.stop()
}

// readHeapRecords reads the heap profile's records: per stack (its PCs,
// as the debug=1 text form of the profile prints them, whole), the
// objects allocated there so far.
func readHeapRecords(t testing.TB) heapRecords {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	records := heapRecords{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for first := true; sc.Scan(); first = false {
		line := sc.Text()
		if first { // "heap profile: ..." totals
			continue
		}
		if strings.HasPrefix(line, "# runtime.MemStats") {
			break
		}
		// A record: "inuse_objs: inuse_bytes [alloc_objs: alloc_bytes] @ pc pc ...",
		// followed by its frames ("#\t...").
		at := strings.Index(line, " @ ")
		if at < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		lb, rb := strings.Index(line, "["), strings.Index(line, "]")
		if lb < 0 || rb < lb {
			t.Fatalf("heap profile: unexpected line %q", line)
		}
		objs, _, _ := strings.Cut(line[lb+1:rb], ":")
		n, err := strconv.ParseUint(strings.TrimSpace(objs), 10, 64)
		if err != nil {
			t.Fatalf("heap profile: %q: %v", line, err)
		}
		records[line[at+3:]] += n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return records
}

// heapStack is what the meter needs to know of a heap profile stack.
type heapStack struct {
	ours bool // it passes through countedCall
	// cache is a runtime type-assertion or type-switch cache being
	// built: see stop.
	cache   bool
	depth   int    // its frames (PCs)
	summary string // its innermost frames, for the log
}

// describeStack symbolizes a heap profile stack (its PCs in hex).
func describeStack(t testing.TB, pcs string) heapStack {
	t.Helper()
	var stk []uintptr
	for _, f := range strings.Fields(pcs) {
		pc, err := strconv.ParseUint(strings.TrimPrefix(f, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("heap profile: stack %q: %v", pcs, err)
		}
		stk = append(stk, uintptr(pc))
	}
	hs := heapStack{depth: len(stk)}
	var sum strings.Builder
	inRuntime := true // still in the runtime's frames above the allocating code
	frames := runtime.CallersFrames(stk)
	for k := 0; ; k++ {
		fr, more := frames.Next()
		switch {
		case fr.Function == countedCallName:
			hs.ours = true
		case inRuntime && (fr.Function == "runtime.buildTypeAssertCache" || fr.Function == "runtime.buildInterfaceSwitchCache"):
			hs.cache = true
		case !strings.HasPrefix(fr.Function, "runtime."):
			inRuntime = false
		}
		if k < 6 {
			fmt.Fprintf(&sum, " < %s:%d", strings.TrimPrefix(fr.Function, "github.com/sotto-rtc/sotto/"), fr.Line)
		}
		if !more {
			break
		}
	}
	hs.summary = sum.String()
	return hs
}

// TestAllocMeterCounts checks the meter: allocations made through it are
// counted one for one, however few there are per run (one in 500 runs
// is four over 2,000, where testing.AllocsPerRun says 0), and another
// goroutine's are not.
func TestAllocMeterCounts(t *testing.T) {
	var keep [][]byte
	i := 0
	tests := []struct {
		name string
		n    int
		f    func()
		want uint64
	}{
		{"nothing", 2000, func() { i++ }, 0},
		{"one per run", 2000, func() { keep = append(keep[:0], make([]byte, 64)) }, 2000},
		{"one tiny per run", 2000, func() { keep = append(keep[:0], make([]byte, 1)) }, 2000},
		{"one per 500 runs", 2000, func() {
			i++
			if i%500 == 0 {
				keep = append(keep[:0], make([]byte, 1))
			}
		}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i = 0
			keep = make([][]byte, 0, 1)
			if got := allocsOver(t, 0, tc.n, tc.f); got != tc.want {
				t.Errorf("%d allocs counted over %d runs, want %d", got, tc.n, tc.want)
			}
		})
	}
	t.Run("another goroutine's", func(t *testing.T) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { // allocates all along, outside the measured calls
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					keepBackground = make([]byte, 32)
				}
			}
		}()
		got := allocsOver(t, 0, 2000, func() { i++ })
		close(stop)
		<-done
		if got != 0 {
			t.Errorf("%d allocs counted, want 0: the background goroutine's were counted", got)
		}
	})
}

var keepBackground []byte

// dropCounts is the SFU's counters of packets not delivered: drops by
// reason (write errors, no binding, ...), strict refusals by direction and
// rule, and read-buffer drops, each by its labels.
func dropCounts(t testing.TB, m *metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, c := range []prometheus.Collector{m.dropped, m.strictRefused, m.readBufferDropped} {
		ch := make(chan prometheus.Metric, 256)
		go func() { c.Collect(ch); close(ch) }()
		for pm := range ch {
			var d dto.Metric
			if err := pm.Write(&d); err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, lp := range d.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			name := pm.Desc().String()
			if i := strings.Index(name, `fqName: "`); i >= 0 {
				name = name[i+len(`fqName: "`):]
				name = name[:strings.Index(name, `"`)]
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = d.GetCounter().GetValue()
		}
	}
	return out
}

// dropDeltas is what moved between two dropCounts readings.
func dropDeltas(before, after map[string]float64) map[string]float64 {
	moved := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			moved[k] = d
		}
	}
	return moved
}

// TestForwardZeroAlloc: the forwarding path (parse, cache, per subscriber
// the rewrite and the write) allocates nothing over 2,000 packets to three
// subscribers, and every packet reaches every subscriber.
func TestForwardZeroAlloc(t *testing.T) {
	const subscribers, warm, n = 3, 10, 2000
	tr := newForwardFixture(t)
	ws := make([]*discardWriter, subscribers)
	for i := range ws {
		ws[i] = &discardWriter{}
		subscribe(t, tr, strconv.Itoa(i), ws[i], webrtc.SSRC(1000+i))
	}
	packet := sourcePacket(t, 0, 0, make([]byte, 1100), 0)
	drops := dropCounts(t, tr.metrics)
	seq := uint16(0)
	allocs := allocsOver(t, warm, n, func() {
		seq++
		packet[2], packet[3] = byte(seq>>8), byte(seq)
		tr.forward(packet)
	})
	t.Logf("%d allocs over %d packets to %d subscribers", allocs, n, subscribers)
	if allocs != 0 {
		t.Errorf("forwarding %d packets to %d subscribers allocated %d times, want 0", n, subscribers, allocs)
	}
	for i, w := range ws {
		if w.n != warm+n {
			t.Errorf("subscriber %d got %d packets, want %d", i, w.n, warm+n)
		}
	}
	if moved := dropDeltas(drops, dropCounts(t, tr.metrics)); len(moved) > 0 {
		t.Errorf("drop counters moved: %v", moved)
	}
}

// TestBatchConnAllocs: a held batch of ten datagrams, its sendmmsg at the
// release, and an unheld sendto allocate nothing, 200 times over, and
// every datagram arrives.
func TestBatchConnAllocs(t *testing.T) {
	const warm, n, perRun = 5, 200, 11
	c, r, to := loopbackPair(t)
	var got arrivals
	go func() { // the receiver: counts what arrives
		buf := make([]byte, 2048)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
			got.add()
		}
	}()
	pkt := datagram(1000)
	sent := int64(0)
	batch := func() {
		c.hold()
		for range perRun - 1 {
			_, _ = c.WriteToAddrPort(pkt, to)
		}
		c.release()
		_, _ = c.WriteToAddrPort(pkt, to)
	}
	// Each run waits for its datagrams (uncounted) before the next, so
	// the receiver's socket never holds more than one run's: no kernel
	// drops, whatever the machine's load.
	paced := func(f func()) {
		f()
		sent += perRun
		if have := got.wait(sent, waitTimeout); have != sent {
			t.Fatalf("%d datagrams arrived, want %d", have, sent)
		}
	}
	m := startAllocMeter(t)
	for range warm {
		paced(batch)
	}
	d0, s0 := c.counts()
	for range n {
		paced(func() { m.run(batch) })
	}
	allocs := m.stop()
	d, s := c.counts()
	t.Logf("%d allocs over %d batches (%d datagrams in %d syscalls)", allocs, n, d-d0, s-s0)
	if allocs != 0 {
		t.Errorf("%d batches allocated %d times, want 0", n, allocs)
	}
	if d-d0 != n*perRun || s-s0 != 2*n {
		t.Errorf("%d datagrams in %d syscalls, want %d in %d", d-d0, s-s0, n*perRun, 2*n)
	}
	if have := got.load(); have != (warm+n)*perRun {
		t.Errorf("%d datagrams arrived, want %d", have, (warm+n)*perRun)
	}
}

// TestOutgoingCheckAllocs: the strict check of an outgoing packet, which
// marshals the header only, allocates nothing.
func TestOutgoingCheckAllocs(t *testing.T) {
	opts := newStrictOptions()
	h := rtp.Header{Version: 2, SSRC: 1, Extension: true, ExtensionProfile: rtp.ExtensionProfileOneByte}
	_ = h.SetExtension(1, []byte{1, 2})
	payload := make([]byte, 1100)
	passed := 0
	allocs := allocsOver(t, 0, 1000, func() {
		if checkOutgoingRTP(opts, &h, payload) == "" {
			passed++
		}
	})
	if allocs != 0 {
		t.Errorf("1000 outgoing checks allocated %d times, want 0", allocs)
	}
	if passed != 1000 {
		t.Errorf("%d of 1000 checks passed the packet", passed)
	}
}

// TestStrictRefusalAllocs: under a flood of hostile packets the check and
// the counting allocate nothing, and every hostile packet is counted.
func TestStrictRefusalAllocs(t *testing.T) {
	const n = 200
	m, _ := newStrictTestMetrics(t)
	si := &strictInterceptor{opts: newStrictOptions(), m: m.strict}
	hostileRTCP := []byte{0x81, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 9, 9}
	goodRTCP := []byte{0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}
	hostileRTP := []byte{0xa0, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 200}
	goodRTP := []byte{0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 200}
	turn := 0
	alternate := func(hostile, good []byte) func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			turn++
			if turn%2 == 1 {
				return copy(b, hostile), a, nil
			}
			return copy(b, good), a, nil
		}
	}
	// Each Read refuses the hostile packet and returns the good one
	// behind it.
	refused := func(dir string) float64 {
		var sum float64
		for k, v := range dropCounts(t, m) {
			if strings.Contains(k, "direction="+dir+",") {
				sum += v
			}
		}
		return sum
	}
	buf := make([]byte, maxPacketSize)
	for _, rd := range []struct {
		name, dir string
		r         interface {
			Read([]byte, interceptor.Attributes) (int, interceptor.Attributes, error)
		}
		good []byte
	}{
		{"RTCP", dirRTCPIn, si.BindRTCPReader(interceptor.RTCPReaderFunc(alternate(hostileRTCP, goodRTCP))), goodRTCP},
		{"RTP", dirRTPIn, si.BindRemoteStream(streamInfo(), interceptor.RTPReaderFunc(alternate(hostileRTP, goodRTP))), goodRTP},
	} {
		before, returned := refused(rd.dir), 0
		allocs := allocsOver(t, 0, n, func() {
			k, _, err := rd.r.Read(buf, nil)
			if err == nil && bytes.Equal(buf[:k], rd.good) {
				returned++
			}
		})
		if allocs != 0 {
			t.Errorf("%d %s refusals allocated %d times, want 0", n, rd.name, allocs)
		}
		if got := refused(rd.dir) - before; got != n || returned != n {
			t.Errorf("%s: %v refusals counted and %d good packets returned, want %d each", rd.name, got, returned, n)
		}
	}
	written := 0
	w := si.BindLocalStream(streamInfo(), interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
		written++
		return 0, nil
	}))
	payload := []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		h       *rtp.Header
		hostile bool
	}{
		{&rtp.Header{Version: 2, PayloadType: 111, SSRC: 7}, false},
		{&rtp.Header{Version: 2, Padding: true, PaddingSize: 0, PayloadType: 111, SSRC: 7}, true},
		{&rtp.Header{Version: 1, PayloadType: 111, SSRC: 7}, true},
	} {
		before, w0 := refused(dirRTPOut), written
		if allocs := allocsOver(t, 0, n, func() { _, _ = w.Write(tc.h, payload, nil) }); allocs != 0 {
			t.Errorf("%d outgoing RTP checks of %+v allocated %d times, want 0", n, tc.h, allocs)
		}
		wantRefused, wantWritten := 0, n
		if tc.hostile {
			wantRefused, wantWritten = n, 0
		}
		if got := refused(dirRTPOut) - before; got != float64(wantRefused) || written-w0 != wantWritten {
			t.Errorf("%+v: %v refused and %d written, want %d and %d", tc.h, got, written-w0, wantRefused, wantWritten)
		}
	}
}

// TestForwardSRTPAllocs is the allocation check of the real path: 2,000
// packets to ten subscribers over real SRTP connections (the fixture of
// BenchmarkForwardSRTP) allocate nothing on the SFU's side or pion's,
// every SRTP packet (21,000 with the warm-up's) reaches its subscriber's
// socket, and no drop counter moves.
func TestForwardSRTPAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("connects ten peers")
	}
	const subscribers, warm, n = 10, 100, 2000
	// burst is the packets forwarded before waiting (uncounted) for the
	// sinks to have them all. A sink's socket then holds at most a burst
	// of 1,100-byte datagrams, under 3 kB each in the kernel's accounting,
	// well within its receive buffer: the fixture asks for 4 MB, which
	// Linux caps at net.core.rmem_max, 208 kB by default. So the kernel
	// never drops one for want of room, however late the sinks' reads
	// run on a loaded machine, and the count of arrivals can be exact.
	const burst = 25
	f := newFanoutFixtureWith(t, subscribers, Config{}, func(s *SFU) { quietSenderReports(t, s) })
	f.use(subscribers)
	drops := dropCounts(t, f.sfu.metrics)
	base := make([]int64, subscribers)
	for i, s := range f.sinks {
		base[i] = s.rtp.load()
	}
	forwarded, counted := int64(0), 0
	d0, _ := f.sfu.batch.counts()
	// waitSinks waits for every sink to have every packet forwarded so
	// far, and says what is missing if one does not within waitTimeout.
	waitSinks := func() string {
		for i, s := range f.sinks {
			want := base[i] + forwarded
			if have := s.rtp.wait(want, waitTimeout); have != want {
				d, _ := f.sfu.batch.counts()
				return fmt.Sprintf("subscriber %d: %d of %d packets arrived in %v; the SFU's socket wrote %d datagrams (RTP %d, plus RTCP and STUN); host UDP %s",
					i, have-base[i], forwarded, waitTimeout, d-d0, forwarded*subscribers, udpErrors())
			}
		}
		return ""
	}
	m := startAllocMeter(t)
	for i := range warm + n {
		if i < warm {
			f.forwardOne() // warms pools and lazily built state
		} else {
			m.run(f.forwardOne)
			counted++
		}
		if forwarded++; forwarded%burst == 0 || i == warm+n-1 {
			if missing := waitSinks(); missing != "" {
				t.Error(missing)
				break
			}
		}
	}
	allocs := m.stop()
	t.Logf("%d allocs over %d packets to %d subscribers (%d SRTP packets forwarded)", allocs, counted, subscribers, forwarded*subscribers)
	if allocs != 0 {
		t.Errorf("forwarding %d packets to %d subscribers allocated %d times, want 0", counted, subscribers, allocs)
	}
	if moved := dropDeltas(drops, dropCounts(t, f.sfu.metrics)); len(moved) > 0 {
		t.Errorf("drop counters moved: %v", moved)
	}
}

// quietSenderReports gives s's subscriber connections the interceptors
// of the SFU's subscriber stack with one change: an hour between sender
// reports instead of a second. The per-packet path is the same (the
// interceptor accounts for every packet sent whatever its interval); what
// goes is the report every second per connection, which the real-path
// allocation check cannot have: pion/srtp encrypts RTCP and RTP with
// buffers from one global sync.Pool, and a report's goroutine that holds
// a buffer while it waits for the socket makes the forwarding goroutine's
// next Get find the pool empty and allocate a second buffer. That is the
// pool growing to the connection's concurrency, once, not an allocation
// per packet; but it happens when it happens, and the check must not.
func quietSenderReports(t testing.TB, s *SFU) {
	t.Helper()
	stack, err := newConnStack(s.cfg.AudioLevelExtension, strictFactory{opts: newStrictOptions(), m: s.metrics.strict}, func(reg *interceptor.Registry) error {
		sr, err := report.NewSenderInterceptor(report.SenderInterval(time.Hour))
		if err != nil {
			return err
		}
		reg.Add(sr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Kept in step with the SFU's: the same interceptors, in order.
	if got, want := chainTypes(t, stack.reg), chainTypes(t, s.subStack.reg); !slices.Equal(got, want) {
		t.Fatalf("quiet subscriber interceptors %v, the SFU's %v: update quietSenderReports", got, want)
	}
	s.subStack = stack
}

// chainTypes is the types of the interceptors reg builds, in order.
func chainTypes(t testing.TB, reg *interceptor.Registry) []string {
	t.Helper()
	i, err := reg.Build("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = i.Close() }()
	chain, ok := i.(*interceptor.Chain)
	if !ok {
		return []string{reflect.TypeOf(i).String()}
	}
	var types []string
	list := reflect.ValueOf(chain).Elem().FieldByName("interceptors")
	for k := range list.Len() {
		types = append(types, list.Index(k).Elem().Type().String())
	}
	return types
}

// udpErrors is the host's UDP receive errors and receive-buffer drops
// (/proc/net/snmp), to tell a kernel drop from a lost write in a failure
// message. Empty where there is no such file.
func udpErrors() string {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return ""
	}
	var names, values []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)[1:]
		} else {
			values = strings.Fields(line)[1:]
		}
	}
	var out []string
	for i, name := range names {
		if i < len(values) && (name == "InErrors" || name == "RcvbufErrors") {
			out = append(out, name+"="+values[i])
		}
	}
	return strings.Join(out, " ")
}
