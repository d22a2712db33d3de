package sfu

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Attacks on the SFU's rates, each against a real SFU with real peers: a
// subscriber flooding NACKs, a publisher sending far beyond its limits,
// a flood of datagrams pion cannot take. Each shows the attacker limited,
// the victim's call unharmed and the counters moving.

// startFlow consumes rt as an honest flow of kind.
func startFlow(name string, kind byte, rt *remoteTrack) *flow {
	f := &flow{name: name, kind: kind}
	go f.consume(rt)
	return f
}

// checkUnharmed waits for f to carry more packets after mark, and checks
// that it lost next to nothing and nothing came corrupted.
func checkUnharmed(t *testing.T, f *flow, mark int) {
	t.Helper()
	after := f.count()
	waitFor(t, f.name+" to go on", func() bool { return f.count() >= after+postAttackPackets })
	got, loss, bad := f.lossSince(mark)
	t.Logf("%s: %d packets during and after the attack, loss %.3f%%", f.name, got, 100*loss)
	if bad != 0 || loss > maxLossFraction {
		t.Errorf("%s: %d payloads differ, %.2f%% lost during the attack", f.name, bad, 100*loss)
	}
}

// TestNACKFloodIsBudgeted: mallory subscribes to alice's video and sends
// 200 NACKs a second, each naming the 512 packets before the last she
// received. Her retransmissions stay within a quarter of what she is
// forwarded plus the floor and the starting credit; bob, on the same
// track, loses nothing.
func TestNACKFloodIsBudgeted(t *testing.T) {
	if testing.Short() {
		t.Skip("the attack takes seconds")
	}
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg})
	alice := join(t, s, ParticipantConfig{SID: "PA_alice", CanPublish: true})
	bob := join(t, s, ParticipantConfig{SID: "PA_bob", CanSubscribe: true, AutoSubscribe: true})
	alice.publish("video", "cam")
	alice.waitPublished(t)
	victim := startFlow("alice->bob", 'v', bob.waitTrack(t))

	start := time.Now() // before mallory's subscription earns anything
	mallory := join(t, s, ParticipantConfig{SID: "PA_mallory", CanSubscribe: true, AutoSubscribe: true})
	rt := mallory.waitTrack(t)
	var last atomic.Int64 // the newest sequence number mallory received
	var received atomic.Int64
	go func() {
		first := true
		for p := range rt.packets {
			// Retransmissions carry old numbers: keep the newest.
			if first || int16(p.seq-uint16(last.Load())) > 0 {
				last.Store(int64(p.seq))
				first = false
			}
			received.Add(1)
		}
	}()
	// The cache holds a full 512 packets before the attack starts.
	waitFor(t, "600 packets at mallory", func() bool { return received.Load() >= 600 })

	const nacks, span = 600, 512
	mark := victim.count()
	tick := time.NewTicker(5 * time.Millisecond)
	seqs := make([]uint16, span)
	for range nacks {
		<-tick.C
		top := uint16(last.Load())
		for i := range seqs {
			seqs[i] = top - uint16(span-1-i)
		}
		nack := &rtcp.TransportLayerNack{MediaSSRC: uint32(rt.track.SSRC()), Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
		if err := mallory.sub.WriteRTCP([]rtcp.Packet{nack}); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()

	overBudget := func() float64 {
		return counterValue(t, reg, "sotto_nack_suppressed_total", map[string]string{"reason": nackReasonBudget})
	}
	// The last NACKs are answered (or refused) on the SFU's feedback
	// goroutine after they were sent: wait for the counters to settle.
	waitFor(t, "the NACKs to be handled", func() bool { return overBudget() > 0 })
	checkUnharmed(t, victim, mark)
	elapsed := time.Since(start)

	retransmitted := counterValue(t, reg, "sotto_nack_retransmissions_total", nil)
	duplicates := counterValue(t, reg, "sotto_nack_suppressed_total", map[string]string{"reason": nackReasonDuplicate})
	// What mallory was forwarded is at most what alice sent.
	forwarded := counterValue(t, reg, "sotto_rtp_packets_in_total", map[string]string{"kind": "video"})
	bound := float64(nackInitialPackets) + forwarded/nackShare + nackFloorPackets*elapsed.Seconds() + 1
	t.Logf("%d NACKs of %d packets: %v retransmitted (bound %.0f, %v forwarded), %v over budget, %v duplicates",
		nacks, span, retransmitted, bound, forwarded, overBudget(), duplicates)
	if retransmitted == 0 || retransmitted > bound {
		t.Errorf("%v retransmissions, want between 1 and %.0f", retransmitted, bound)
	}
}

// TestNACKBudget: in-process, a subscription's budget starts at
// nackInitialPackets, grows by a quarter of what it is forwarded, and a
// packet asked for again at once is a duplicate, not a second resend.
func TestNACKBudget(t *testing.T) {
	tr := newForwardFixture(t)
	dt := subscribe(t, tr, "one", &discardWriter{}, 1000)
	packet := sourcePacket(t, 0, 0, make([]byte, 100), 0)
	const forwarded = 400
	for seq := range uint16(forwarded) {
		packet[2], packet[3] = byte(seq>>8), byte(seq)
		tr.forward(packet)
	}
	seqs := make([]uint16, 300)
	for i := range seqs {
		seqs[i] = uint16(100+i) + dt.seqOffset
	}
	nack := &rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	m := tr.metrics
	value := func(c prometheus.Counter) int {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		return int(d.GetCounter().GetValue())
	}
	dt.retransmit(nack)
	sent := value(m.nackRetransmissions)
	// The floor may add a packet or two for the time the loop took.
	if want := nackInitialPackets + forwarded/nackShare; sent < want || sent > want+2 {
		t.Errorf("%d resent, want %d", sent, want)
	}
	if got := value(m.nackOverBudget); got != len(seqs)-sent {
		t.Errorf("%d over budget, want %d", got, len(seqs)-sent)
	}
	dt.retransmit(nack)
	if got := value(m.nackDuplicates); got != sent {
		t.Errorf("%d duplicates, want the %d just resent", got, sent)
	}
	if got := value(m.nackRetransmissions); got != sent {
		t.Errorf("%d resent after the repeat, want still %d", got, sent)
	}
}

// floodVideo writes video packets of 1,000 bytes, perTick every 2 ms,
// until stop closes, and reports how many it wrote.
func floodVideo(tr *webrtc.TrackLocalStaticRTP, perTick int, stop chan struct{}, sent *atomic.Int64) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 1000)
	for i := uint32(0); ; {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for range perTick {
			binary.BigEndian.PutUint32(payload, i)
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(30000 + i), Timestamp: i * 90}, Payload: payload}
			if tr.WriteRTP(pkt) != nil {
				return
			}
			i++
			sent.Add(1)
		}
	}
}

// TestPublisherRateLimit: alice floods her video track at 2,000
// packets/s of 1,000 bytes against a limit of 100 packets/s and 1 Mbit/s.
// Bob, subscribed, receives at most the limit's worth; the excess is
// dropped and counted; alice, far beyond for seconds, is ended with
// RuleRateExceeded; carol's audio reaches bob throughout.
func TestPublisherRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("the attack takes seconds")
	}
	const limitPackets = 100
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg, VideoMaxPacketRate: limitPackets, VideoMaxBitrate: 1_000_000})
	bob := join(t, s, ParticipantConfig{SID: "PA_bob", CanSubscribe: true, AutoSubscribe: true})
	carol := join(t, s, ParticipantConfig{SID: "PA_carol", CanPublish: true})
	carol.publish("audio", "mic")
	carol.waitPublished(t)
	victim := startFlow("carol->bob", 'a', bob.waitTrack(t))

	alice := join(t, s, ParticipantConfig{SID: "PA_alice", CanPublish: true})
	cam := alice.publish("video", "cam")
	alice.waitPublished(t)
	rt := bob.waitTrack(t)
	close(cam.stopWriting)
	var atBob atomic.Int64
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for range rt.packets {
			atBob.Add(1)
		}
	}()

	mark := victim.count()
	before := atBob.Load()
	start := time.Now()
	var sent atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go floodVideo(cam.track, 4, stop, &sent)

	select {
	case rule := <-alice.refused:
		if rule != RuleRateExceeded {
			t.Fatalf("alice refused for %q, want %q", rule, RuleRateExceeded)
		}
	case <-time.After(waitTimeout):
		t.Fatal("alice was not ended")
	}
	// Nothing of alice's is forwarded once she is refused: every packet
	// bob gets was let through between start and now.
	elapsed := time.Since(start)
	select {
	case <-ended:
	case <-time.After(waitTimeout):
		t.Fatal("alice's track did not end at bob")
	}
	got := atBob.Load() - before
	// A second's burst, the rate since, and what was in flight at start.
	bound := int64(limitPackets + limitPackets*elapsed.Seconds() + 20)
	dropped := counterValue(t, reg, "sotto_rtp_packets_dropped_total", map[string]string{"reason": dropRateLimited})
	t.Logf("alice sent %d packets, bob received %d (bound %d), %v dropped", sent.Load(), got, bound, dropped)
	if got > bound {
		t.Errorf("bob received %d of alice's packets, want at most %d", got, bound)
	}
	if dropped == 0 {
		t.Error("no packet counted as rate_limited")
	}
	if n := counterValue(t, reg, "sotto_participants_refused_total", map[string]string{"rule": RuleRateExceeded}); n != 1 {
		t.Errorf("sotto_participants_refused_total{rule=%q} = %v, want 1", RuleRateExceeded, n)
	}
	checkUnharmed(t, victim, mark)
	if c := s.Counts(); c.Participants != 2 {
		t.Errorf("Counts %+v, want bob and carol still there", c)
	}
}

// lineCounter is a slog handler that keeps the messages of warning and
// error lines.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (h *lineCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.lines = append(h.lines, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }

// count returns the lines containing sub, and all lines.
func (h *lineCounter) count(sub string) (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n, len(h.lines)
}

// TestNetworkFloodIsCountedQuietly: mallory, in a call, sends 3,000
// datagrams too large for pion from her publisher connection's address,
// then SRTCP that fails authentication and SRTCP under her real keys
// that does not parse. Every kind of drop moves its counter, the log
// holds at most a line per message per logRepeatWindow, and bob keeps
// hearing alice. Batched, the SFU's socket drops the large datagrams
// itself; unbatched, pion's demux does and the log adapter counts them.
func TestNetworkFloodIsCountedQuietly(t *testing.T) {
	if testing.Short() {
		t.Skip("the attack takes seconds")
	}
	for _, tc := range []struct {
		name    string
		disable bool
	}{{"batched", false}, {"unbatched", true}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := &lineCounter{}
			s := newTestSFU(t, Config{Registerer: reg, Logger: slog.New(h), DisableBatchedWrites: tc.disable})
			alice := join(t, s, ParticipantConfig{SID: "PA_alice", CanPublish: true})
			bob := join(t, s, ParticipantConfig{SID: "PA_bob", CanSubscribe: true, AutoSubscribe: true})
			alice.publish("audio", "mic")
			alice.waitPublished(t)
			victim := startFlow("alice->bob", 'a', bob.waitTrack(t))
			mallory, taps := joinHostile(t, s, "PA_mallory")
			mic := mallory.publish("audio", "mic")
			mallory.waitPublished(t)
			link := taps.pub.link(t, mallory.pub)
			trackSSRC := uint32(mic.sender.GetParameters().Encodings[0].SSRC)
			waitFor(t, "the call to flow", func() bool { return victim.count() >= 50 })

			dropped := func(reason string) float64 {
				return counterValue(t, reg, "sotto_network_dropped_total", map[string]string{"reason": reason})
			}
			const datagrams, perTick = 3000, 15
			mark := victim.count()
			start := time.Now()
			big := make([]byte, 2000)
			big[0], big[1] = 0x80, wire.PayloadTypeOpus // RTP-shaped: pion's demux would take it for SRTP
			tick := time.NewTicker(5 * time.Millisecond)
			for i := range datagrams {
				if i%perTick == 0 {
					<-tick.C
				}
				link.write(t, big)
			}
			// RTCP-shaped with a tag that cannot verify, and a protected
			// receiver report whose length runs past its end.
			for range 20 {
				<-tick.C
				link.write(t, []byte{0x81, 201, 0, 1, 0, 0, 0, 1, 0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
				rr := binary.BigEndian.AppendUint32([]byte{0x81, 201, 0, 7}, trackSSRC)
				link.sendRTCP(t, append(rr, 1, 2, 3, 4))
			}
			tick.Stop()
			// The kernel may drop some under load; a quarter shows the count.
			waitFor(t, "the large datagrams to be counted", func() bool { return dropped(netOversized) >= datagrams/4 })
			waitFor(t, "SRTCP failing authentication to be counted", func() bool { return dropped(netSRTPAuth) > 0 })
			waitFor(t, "SRTCP that does not parse to be counted", func() bool { return dropped(netRTCPMalformed) > 0 })
			checkUnharmed(t, victim, mark)

			demux, all := h.count("failed to read from packetio.Buffer")
			allowed := 1 + int(time.Since(start)/logRepeatWindow)
			t.Logf("%v oversized, %v auth failures, %v malformed RTCP counted; %d demux lines, %d warning and error lines in all; %v suppressed",
				dropped(netOversized), dropped(netSRTPAuth), dropped(netRTCPMalformed), demux, all,
				counterValue(t, reg, "sotto_log_lines_suppressed_total", nil))
			if demux > allowed {
				t.Errorf("%d log lines for the large datagrams, want at most %d", demux, allowed)
			}
			if all > 20 {
				t.Errorf("%d warning and error lines: %q", all, h.lines)
			}
		})
	}
}

// TestLeaveIsQuiet: a call of two that both leave writes no warning.
func TestLeaveIsQuiet(t *testing.T) {
	h := &lineCounter{}
	s := newTestSFU(t, Config{Logger: slog.New(h)})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	a.publish("audio", "mic")
	b.publish("video", "cam")
	a.waitPublished(t)
	b.waitPublished(t)
	a.waitTrack(t).next(t)
	b.waitTrack(t).next(t)
	_, before := h.count("")
	for _, c := range []*testClient{a, b} {
		c.p.Close()
		_ = c.pub.Close()
		_ = c.sub.Close()
	}
	waitFor(t, "the room to empty", func() bool { return s.Counts() == Counts{} })
	if _, after := h.count(""); after != before {
		h.mu.Lock()
		t.Errorf("leaving wrote %d warning lines: %q", after-before, h.lines[before:])
		h.mu.Unlock()
	}
}

// TestPublisherLimitSpansTracks: alice spreads a flood over four video
// tracks, each a little over the per-track limit (too little to be ended
// for). Her tracks together still get no more than
// publisherTracksOfKind tracks' worth through to bob.
func TestPublisherLimitSpansTracks(t *testing.T) {
	if testing.Short() {
		t.Skip("the attack takes seconds")
	}
	const limitPackets, tracks = 400, 4
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg, VideoMaxPacketRate: limitPackets, VideoMaxBitrate: -1})
	bob := join(t, s, ParticipantConfig{SID: "PA_bob", CanSubscribe: true, AutoSubscribe: true})
	alice := join(t, s, ParticipantConfig{SID: "PA_alice", CanPublish: true})
	var atBob atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	var sent atomic.Int64
	cams := make([]*localTrack, tracks)
	for i := range cams {
		cams[i] = alice.publish("video", fmt.Sprintf("cam%d", i))
		alice.waitPublished(t)
		rt := bob.waitTrack(t)
		close(cams[i].stopWriting)
		go func() {
			for range rt.packets {
				atBob.Add(1)
			}
		}()
	}
	before := atBob.Load()
	start := time.Now()
	for _, c := range cams {
		go floodVideo(c.track, 1, stop, &sent) // 500 packets/s each
	}
	const want = 3 * limitPackets * publisherTracksOfKind
	waitFor(t, "bob to receive the flood", func() bool { return atBob.Load()-before >= want })
	elapsed := time.Since(start)
	got := atBob.Load() - before
	// The shared bucket's burst, its rate since, and what was in flight.
	bound := int64(publisherTracksOfKind*limitPackets*(1+elapsed.Seconds())) + 40
	t.Logf("alice sent %d packets on %d tracks in %v, bob received %d (bound %d)", sent.Load(), tracks, elapsed, got, bound)
	if got > bound {
		t.Errorf("bob received %d of alice's packets, want at most %d: the limit did not span her tracks", got, bound)
	}
	select {
	case rule := <-alice.refused:
		t.Fatalf("alice was ended (%s) for a flood each track's limit lets pass", rule)
	default:
	}
}
