package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// The forwarding benchmarks run the SFU's whole per-packet path for one
// incoming RTP packet fanned out to N subscribers, on real connections:
// the strict check of the incoming packet (the strict interceptor's RTP
// reader, as pion calls it), the parse, the packet cache, and per
// subscriber the header rewrite, the strict check of the outgoing packet,
// pion's sender-report interceptor, SRTP encryption (AEAD AES-256-GCM, what
// two pion peers negotiate), ICE and the SFU's UDP mux down to the socket. Each
// subscriber is a real subscriber connection built as Participant builds
// it (SFU.newPeerConnection on the subscriber stack), with ICE and DTLS
// done against a real pion peer on loopback.
//
// What the benchmark leaves out is pion's receive path of the incoming
// packet (socket read, SRTP decryption, its interceptors), which costs the
// same whatever N is; the load tool measures it (docs/BENCHMARKS.md).
//
// The peers' sockets drop SRTP packets as they arrive (sinkConn) instead of
// decrypting them, so on a 2-core machine the receiving side costs one
// recvfrom per packet and allocates nothing. allocs/op still counts what
// the fixture's connections do in the background while the loop runs (ICE
// checks, RTCP reports): it grows with wall time, not with packets.
// TestForwardSRTPAllocs (alloc_test.go) counts the path's allocations
// alone, exactly.

// sinkConn is a subscriber peer's UDP socket: it passes STUN, DTLS and
// RTCP to pion and drops RTP after counting it.
type sinkConn struct {
	*net.UDPConn
	rtp arrivals
}

// arrivals counts packets as the goroutine that receives them sees them,
// and lets a test wait for a count without polling: the receiver closes
// the waiter's channel when the count reaches what it waits for.
type arrivals struct {
	n    atomic.Int64
	want atomic.Int64 // what the waiter waits for; 0 when nobody waits
	mu   sync.Mutex
	ch   chan struct{} // closed when n reaches want
}

// add counts one packet.
func (a *arrivals) add() {
	n := a.n.Add(1)
	if w := a.want.Load(); w > 0 && n >= w {
		a.mu.Lock()
		a.wakeLocked()
		a.mu.Unlock()
	}
}

func (a *arrivals) wakeLocked() {
	if a.ch != nil && a.n.Load() >= a.want.Load() {
		close(a.ch)
		a.ch = nil
		a.want.Store(0)
	}
}

// load is the packets counted so far.
func (a *arrivals) load() int64 { return a.n.Load() }

// wait blocks until n packets have been counted, or until timeout; it
// returns the count then. One goroutine waits at a time.
func (a *arrivals) wait(n int64, timeout time.Duration) int64 {
	a.mu.Lock()
	ch := make(chan struct{})
	a.ch = ch
	a.want.Store(n)
	a.wakeLocked() // the count may be there already
	a.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		a.mu.Lock()
		a.ch = nil
		a.want.Store(0)
		a.mu.Unlock()
	}
	return a.n.Load()
}

// isRTP reports whether b is an RTP (not RTCP) packet, RFC 7983 and
// RFC 5761: first byte 128–191, second byte not an RTCP packet type.
func isRTP(b []byte) bool {
	return len(b) >= 2 && b[0] >= 128 && b[0] <= 191 && (b[1] < 192 || b[1] > 223)
}

func (c *sinkConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || !isRTP(b[:n]) {
			return n, addr, err
		}
		c.rtp.add()
	}
}

func (c *sinkConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

func (c *sinkConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

// fanoutFixture is one published track with subscribers on real
// connections.
type fanoutFixture struct {
	sfu    *SFU
	track  *publishedTrack
	dts    []*downTrack
	sinks  []*sinkConn
	packet []byte
	// inbound is the strict interceptor's RTP reader in front of a reader
	// that hands over packet: the incoming check as pion runs it.
	inbound interceptor.RTPReader
	buf     [maxPacketSize]byte
	seq     uint16
}

// newFanoutFixture starts an SFU on loopback and n subscriber connections
// to one video track, all bound and connected.
func newFanoutFixture(tb testing.TB, n int, cfg Config) *fanoutFixture {
	tb.Helper()
	return newFanoutFixtureWith(tb, n, cfg, nil)
}

// newFanoutFixtureWith is newFanoutFixture with prepare, if not nil,
// called on the SFU before the subscribers connect.
func newFanoutFixtureWith(tb testing.TB, n int, cfg Config, prepare func(*SFU)) *fanoutFixture {
	tb.Helper()
	cfg.ListenIP = "127.0.0.1"
	cfg.IncludeLoopback = true
	cfg.DisableTCP = true
	cfg.Logger = testLogger()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if prepare != nil {
		prepare(s)
	}

	tr := newPublishedTrack(s.metrics, testLogger(), webrtc.RTPCodecTypeVideo, srcVP8, defaultPacketCacheSize, defaultKeyframeRequestInterval)
	tr.ssrc = 0x1234
	tr.batch = s.batch // as Participant.onTrack sets it
	tr.srcCodecs = []webrtc.RTPCodecParameters{srcVP8}
	tr.srcExtIDs[sdp.SDESMidURI] = 1
	tr.srcExtIDs[sdp.ABSSendTimeURI] = 2
	tr.srcExtIDs[sdp.TransportCCURI] = 3
	f := &fanoutFixture{sfu: s, track: tr}

	for i := range n {
		dt, sink := f.connectSubscriber(tb, i)
		f.dts = append(f.dts, dt)
		f.sinks = append(f.sinks, sink)
	}
	// A typical video packet: 1,100 bytes of (end-to-end encrypted)
	// payload, with mid, abs-send-time and transport-cc extensions.
	f.packet = sourcePacket(tb, 0, 0, make([]byte, 1100), 0)
	strict := &strictInterceptor{opts: newStrictOptions(), m: s.metrics.strict}
	f.inbound = strict.BindRemoteStream(nil, interceptor.RTPReaderFunc(
		func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(b, f.packet), a, nil
		}))
	return f
}

// connectSubscriber builds subscriber i's connection on the SFU's
// subscriber stack, adds a downtrack of the fixture's track, and connects
// a sink peer to it.
func (f *fanoutFixture) connectSubscriber(tb testing.TB, i int) (*downTrack, *sinkConn) {
	tb.Helper()
	s := f.sfu
	var dropped [2]prometheus.Counter
	for k := range dropped {
		dropped[k] = prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	}
	guard := newSSRCGuard(func() int { return 1 }, func(string, int, int) {}, dropped)
	spc, err := s.newPeerConnection(s.subStack, guard, webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = spc.Close() })
	dt := newDownTrack(f.track, nil)
	trx, err := spc.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		tb.Fatal(err)
	}
	dt.transceiver = trx
	dt.sender = trx.Sender()
	go dt.readRTCP()

	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = udp.SetReadBuffer(4 << 20)
	sink := &sinkConn{UDPConn: udp}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: sink})
	tb.Cleanup(func() { _ = mux.Close() })
	me, err := newMediaEngine(true)
	if err != nil {
		tb.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	cpc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cpc.Close() })

	connected := make(chan struct{})
	var once atomic.Bool
	spc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected && once.CompareAndSwap(false, true) {
			close(connected)
		}
	})
	if err := negotiateGathered(spc, cpc); err != nil {
		tb.Fatalf("subscriber %d: %v", i, err)
	}
	select {
	case <-connected:
	case <-time.After(waitTimeout):
		tb.Fatalf("subscriber %d never connected", i)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		dt.mu.Lock()
		bound := dt.bound
		dt.mu.Unlock()
		if bound {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("subscriber %d: downtrack never bound", i)
		}
		time.Sleep(time.Millisecond)
	}
	return dt, sink
}

// negotiateGathered has offerer offer and answerer answer, each with its
// candidates gathered, as the SFU and a client do.
func negotiateGathered(offerer, answerer *webrtc.PeerConnection) error {
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		return err
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		return err
	}
	<-gathered
	return offerer.SetRemoteDescription(*answerer.LocalDescription())
}

// use makes the first n subscribers the track's fan-out.
func (f *fanoutFixture) use(n int) {
	fan := append([]*downTrack(nil), f.dts[:n]...)
	f.track.fanout.Store(&fan)
}

// forwardOne runs the SFU's path for one incoming packet with the next
// sequence number.
func (f *fanoutFixture) forwardOne() {
	f.seq++
	f.packet[2], f.packet[3] = byte(f.seq>>8), byte(f.seq)
	n, _, err := f.inbound.Read(f.buf[:], nil)
	if err != nil {
		panic(err)
	}
	f.track.forward(f.buf[:n])
}

// delivered is the RTP packets the first n sinks have received.
func (f *fanoutFixture) delivered(n int) int64 {
	var sum int64
	for _, s := range f.sinks[:n] {
		sum += s.rtp.load()
	}
	return sum
}

// BenchmarkForwardSRTP is one incoming packet to 1, 10 and 100
// subscribers, with the SFU's writes batched (sendmmsg, the default) and
// with one sendto per packet (Config.DisableBatchedWrites). ns/op and
// allocs/op are per incoming packet. fwd-pkts/s is forwarded (encrypted
// and sent) packets per second of the loop's wall time; fwd-pkts/cpu-s is
// the same per CPU-second of the forwarding thread (RUSAGE_THREAD, which
// on a shared machine is steadier than wall time); proc-cpu-ns/pkt is the
// whole process's CPU per forwarded packet; syscalls/pkt is the SFU
// socket's write syscalls per datagram it sent (batched runs only:
// unbatched it is one by construction); batch-wait-µs and
// max-batch-wait-µs are how long a batch's first datagram waited for its
// sendmmsg; delivered% is how many of the forwarded packets the peers'
// sockets received. Use -benchtime of a second or more: the CPU figures
// are left out of short runs.
func BenchmarkForwardSRTP(b *testing.B) {
	fanoutSizes := []int{1, 10, 100}
	for _, mode := range []struct {
		name    string
		disable bool
	}{{"sendmmsg", false}, {"sendto", true}} {
		b.Run("writes="+mode.name, func(b *testing.B) {
			f := newFanoutFixture(b, fanoutSizes[len(fanoutSizes)-1], Config{DisableBatchedWrites: mode.disable})
			for _, n := range fanoutSizes {
				b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { f.bench(b, n) })
			}
		})
	}
}

func (f *fanoutFixture) bench(b *testing.B, n int) {
	f.use(n)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	delivered := f.delivered(n)
	datagrams, syscalls := f.sfu.batch.counts()
	f.sfu.batch.resetWaits()
	proc := processCPU()
	b.ReportAllocs()
	b.SetBytes(int64(len(f.packet)))
	start, cpu := time.Now(), threadCPU()
	for b.Loop() {
		f.forwardOne()
	}
	cpu, elapsed := threadCPU()-cpu, time.Since(start)
	proc = processCPU() - proc
	sent := float64(b.N) * float64(n)
	if proc >= 50*time.Millisecond {
		// The whole process: the forwarding thread, the runtime's, the
		// SFU's other goroutines, and the peers' receiving sockets.
		b.ReportMetric(float64(proc.Nanoseconds())/sent, "proc-cpu-ns/pkt")
	}
	b.ReportMetric(sent/elapsed.Seconds(), "fwd-pkts/s")
	// The kernel accounts a thread's CPU time coarsely (its user/system
	// split is sampled at ticks): short runs report none.
	if cpu >= 50*time.Millisecond {
		b.ReportMetric(sent/cpu.Seconds(), "fwd-pkts/cpu-s")
	}
	if f.sfu.batch != nil {
		d, s := f.sfu.batch.counts()
		b.ReportMetric(float64(s-syscalls)/float64(max(d-datagrams, 1)), "syscalls/pkt")
		if n > 1 {
			// What batching adds to a packet's latency: from the first
			// datagram queued to the sendmmsg, the rest of its fan-out.
			_, mean, longest := f.sfu.batch.conns[0].waits()
			b.ReportMetric(float64(mean.Microseconds()), "batch-wait-µs")
			b.ReportMetric(float64(longest.Microseconds()), "max-batch-wait-µs")
		}
	}
	time.Sleep(20 * time.Millisecond) // let the sinks drain their sockets
	b.ReportMetric(100*float64(f.delivered(n)-delivered)/sent, "delivered%")
}

// resetWaits starts the group's wait statistics afresh.
func (g *batchGroup) resetWaits() {
	if g == nil {
		return
	}
	for _, c := range g.conns {
		c.mu.Lock()
		c.waited, c.longest, c.batches = 0, 0, 0
		c.mu.Unlock()
	}
}
