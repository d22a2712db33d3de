package sfu

import (
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4/packetio"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// maxHeapGrowth bounds the SFU's heap growth over the attack. Without
// the guard, 20 000 SSRCs in receiver reports grew it by 53 MB (2.7 KB
// each), and SSRCs in RTP cost 4.4 KB each (about 42 MB for the 10 000
// below); with it, the heap does not grow at all once the attacker is
// gone.
const maxHeapGrowth = 32 << 20

// heapInUse returns the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// liveStreams returns the streams a guard counts, by kind.
func (g *ssrcGuard) liveStreams() (rtpStreams, rtcpStreams int64) {
	return g.live[kindRTP].Load(), g.live[kindRTCP].Load()
}

// TestManySSRCsEndOnlyTheAttacker: a participant that names thousands of
// SSRCs, in authentic SRTCP receiver reports or as authentic SRTP
// packets, is disconnected once its connection holds more streams than
// its tracks can use; the call of the others goes on, the SFU's heap
// barely grows, and the refusal is counted.
func TestManySSRCsEndOnlyTheAttacker(t *testing.T) {
	if testing.Short() {
		t.Skip("the live attack takes several seconds")
	}
	tests := []struct {
		name string
		// onSub sends on mallory's subscriber connection (whose bound
		// grows with her subscriptions), else on her publisher one.
		onSub bool
		// packet builds the i-th of the attack's packets, naming the
		// SSRCs from first on, and returns how many it names.
		packet func(i int, first uint32) (b []byte, named int)
		rtp    bool
		ssrcs  int // how many distinct SSRCs the attack names
	}{
		{"srtcp receiver reports", true, func(i int, first uint32) ([]byte, int) {
			rr := &rtcp.ReceiverReport{SSRC: 0x5eed0001}
			for k := range uint32(31) { // a report's most blocks
				rr.Reports = append(rr.Reports, rtcp.ReceptionReport{SSRC: first + k})
			}
			b, err := rr.Marshal()
			if err != nil {
				panic(err)
			}
			return b, 31
		}, false, 20_000},
		{"srtp packets", false, func(i int, first uint32) ([]byte, int) {
			b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: wire.PayloadTypeOpus, SequenceNumber: 1, SSRC: first},
				Payload: []byte("ssrc")}).Marshal()
			if err != nil {
				panic(err)
			}
			return b, 1
		}, true, 10_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := newTestSFU(t, Config{Registerer: reg})

			// The honest call: two peers, each publishing Opus and
			// receiving the other.
			var honest []*testClient
			for _, sid := range []string{"PA_alice", "PA_bob"} {
				c := join(t, s, ParticipantConfig{SID: sid, CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
				c.publish("audio", "mic")
				c.waitPublished(t)
				honest = append(honest, c)
			}
			mallory, taps := joinHostile(t, s, "PA_mallory")
			mallory.publish("audio", "mic")
			mallory.waitPublished(t)
			var flows []*flow
			for _, c := range honest {
				for _, rt := range c.waitTracks(t, 2) {
					owner := rt.track.StreamID()
					if owner == "PA_mallory" {
						go func() { // her track ends with her; keep it drained
							for range rt.packets {
							}
						}()
						continue
					}
					f := &flow{name: owner + "->" + c.cfg.SID, kind: 'a'}
					flows = append(flows, f)
					go f.consume(rt)
				}
			}
			mallory.waitTracks(t, 2)
			waitFor(t, "the call to flow", func() bool {
				for _, f := range flows {
					if f.count() < 50 {
						return false
					}
				}
				return true
			})
			for _, c := range honest {
				pr, pc := c.p.pubGuard.liveStreams()
				sr, sc := c.p.subGuard.liveStreams()
				t.Logf("%s holds RTP/RTCP streams: publisher %d/%d, subscriber %d/%d", c.cfg.SID, pr, pc, sr, sc)
			}
			link := taps.pub.link(t, mallory.pub)
			if tt.onSub {
				link = taps.sub.link(t, mallory.sub)
			}

			mark := make([]int, len(flows))
			for i, f := range flows {
				mark[i] = f.count()
			}
			before := heapInUse()
			tick := time.NewTicker(5 * time.Millisecond)
			named, sent := 0, 0
			for i := 0; named < tt.ssrcs; i++ {
				if i%hostilePerTick == 0 {
					<-tick.C
				}
				b, n := tt.packet(i, 0x10000000+uint32(named))
				if tt.rtp {
					link.sendRTP(t, b)
				} else {
					link.sendRTCP(t, b)
				}
				named += n
				sent++
			}
			tick.Stop()

			waitFor(t, "mallory to be disconnected", func() bool {
				return s.Counts().Participants == 2
			})
			waitFor(t, "the call to go on", func() bool {
				for i, f := range flows {
					if f.count() < mark[i]+postAttackPackets {
						return false
					}
				}
				return true
			})
			after := heapInUse()
			growth := int64(after) - int64(before)
			t.Logf("%d packets naming %d SSRCs; SFU heap in use %.1f MB -> %.1f MB (%+.1f MB)",
				sent, named, float64(before)/(1<<20), float64(after)/(1<<20), float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Errorf("heap grew by %.1f MB, want under %d MB", float64(growth)/(1<<20), maxHeapGrowth>>20)
			}
			if n := counterValue(t, reg, "sotto_participants_refused_total", map[string]string{"rule": ruleTooManySSRCs}); n != 1 {
				t.Errorf("sotto_participants_refused_total{rule=%q} = %v, want 1", ruleTooManySSRCs, n)
			}
			if c := s.Counts(); c.Participants != 2 || c.Tracks != 2 || c.Subscriptions != 2 {
				t.Errorf("Counts %+v, want alice and bob with their tracks and subscriptions", c)
			}
			for i, f := range flows {
				got, loss, bad := f.lossSince(mark[i])
				t.Logf("%s: %d packets during and after the attack, loss %.4f%%, %d payload mismatches", f.name, got, 100*loss, bad)
				if bad != 0 || loss > maxLossFraction {
					t.Errorf("%s: %d bad payloads, %.2f%% lost", f.name, bad, 100*loss)
				}
			}
		})
	}
}

// TestSSRCGuardBound: the guard refuses a connection once it holds more
// streams of a kind than the headroom plus ssrcsPerTrack per track, and
// only then; closed streams no longer count; and the buffers together
// never hold more than the budget.
func TestSSRCGuardBound(t *testing.T) {
	type refusal struct {
		kind        string
		live, limit int
	}
	var tracks atomic.Int64
	refused := make(chan refusal, 4)
	var drops [2]prometheus.Counter
	for k := range drops {
		drops[k] = prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	}
	g := newSSRCGuard(func() int { return int(tracks.Load()) },
		func(kind string, live, limit int) { refused <- refusal{kind, live, limit} }, drops)
	tracks.Store(2)
	limit := ssrcHeadroom + 2*ssrcsPerTrack

	var rtcpBufs []io.ReadWriteCloser
	for i := range limit {
		rtcpBufs = append(rtcpBufs, g.newBuffer(packetio.RTCPBufferPacket, uint32(i)))
	}
	// At the bound, and with streams closed and opened again: no refusal.
	for _, b := range rtcpBufs[:10] {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		rtcpBufs = append(rtcpBufs, g.newBuffer(packetio.RTCPBufferPacket, uint32(1000+i)))
	}
	for range 5 { // RTP streams count on their own
		g.newBuffer(packetio.RTPBufferPacket, 1)
	}
	// Each check asked for has run once the guard is idle again.
	waitFor(t, "the guard's checks", func() bool { return g.pending.Load() == 0 })
	select {
	case r := <-refused:
		t.Fatalf("refused at the bound: %+v", r)
	default:
	}

	g.newBuffer(packetio.RTCPBufferPacket, 99999)
	var r refusal
	select {
	case r = <-refused:
	case <-time.After(waitTimeout):
		t.Fatal("no refusal past the bound")
	}
	if r != (refusal{"rtcp", limit + 1, limit}) {
		t.Fatalf("refusal %+v, want rtcp %d streams over %d", r, limit+1, limit)
	}
	if _, ok := g.newBuffer(packetio.RTPBufferPacket, 2).(refusedBuffer); !ok {
		t.Fatal("a stream opened after the refusal got a buffer")
	}

	// The budget: unread streams fill up to it, and no further.
	g2 := newSSRCGuard(func() int { return 100 }, func(string, int, int) { t.Error("refused") }, drops)
	packet := make([]byte, 1000)
	var bufs []io.ReadWriteCloser
	written := 0
	for i := range 2 * readBufferBudget / rtcpReadBufferLimit {
		b := g2.newBuffer(packetio.RTCPBufferPacket, uint32(i))
		bufs = append(bufs, b)
		for {
			if _, err := b.Write(packet); err != nil {
				if !errors.Is(err, packetio.ErrFull) {
					t.Fatal(err)
				}
				break
			}
			written += len(packet) + 2
		}
	}
	if written > readBufferBudget || written < readBufferBudget-2*rtcpReadBufferLimit {
		t.Fatalf("buffers took %d bytes, want up to the budget of %d", written, readBufferBudget)
	}
	// Reading makes room again.
	buf := make([]byte, 1500)
	if n, err := bufs[0].Read(buf); err != nil || n != len(packet) {
		t.Fatalf("read %d, %v", n, err)
	}
	if _, err := bufs[len(bufs)-1].Write(packet[:500]); err != nil {
		t.Fatalf("no room after a read: %v", err)
	}
}
