package sfu

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v4/packetio"
	"github.com/prometheus/client_golang/prometheus"
)

// The SSRC guard bounds what pion keeps for the SSRCs a client names.
//
// pion/srtp v3.0.13 creates a read stream, with a buffer, for every SSRC
// it sees: SessionSRTP for each new RTP SSRC, SessionSRTCP for every
// destination SSRC of every authenticated RTCP packet (a receiver report
// names up to 31). pion/webrtc v4.2.20 keeps the streams no track claims
// until the connection closes: undeclaredRTCPMediaProcessor holds every
// unhandled RTCP stream ("Incoming unhandled RTCP ssrc"), and
// undeclaredRTPMediaProcessor stores every unknown RTP stream, with an
// RTCP stream opened for it, whatever its probing found
// (DTLSTransport.storeSimulcastStream). All of it happens in front of the
// interceptors, on packets that may be perfectly valid. A participant
// naming tens of thousands of SSRCs grew the SFU's heap by 160 MB.
//
// pion asks SettingEngine.BufferFactory for every one of those buffers,
// so each of a participant's connections gets a factory of its own (a
// webrtc.API per connection, see SFU.newPeerConnection) that counts the
// live streams of each kind and the bytes their buffers hold. Past the
// bound the participant's session ends: no client has a use for that many
// streams, and only its own call is affected.
const (
	// ssrcHeadroom is how many read streams of each kind (RTP, RTCP) a
	// connection may hold on top of ssrcsPerTrack per track it carries.
	// A client's legitimate extras are a handful at most: the SSRC its
	// receive-only reports come from, SDES chunks for its own sources,
	// pion's bandwidth-probe SSRC 0. 64 leaves ample room; an attacker
	// has to stay below it to stay connected, and 64 streams hold next to
	// nothing.
	ssrcHeadroom = 64
	// ssrcsPerTrack is the streams of each kind one track may open: three
	// simulcast layers, each with an RTX repair stream. The SFU negotiates
	// neither today (one stream per track), so this is room for both, and
	// it scales the bound with the room: a subscriber in a full room of
	// the default limits (99 others, 8 tracks each) holds 792 legitimate
	// RTCP streams, which no fixed bound of 64 would allow.
	ssrcsPerTrack = 6
	// readBufferBudget bounds the bytes all read buffers of one
	// connection hold at once. The SFU reads every stream it uses as
	// packets arrive, so only a stalled reader or a stream nobody reads
	// (an undeclared SSRC) holds data; 8 MB is seconds of the fastest
	// video. Past it packets are dropped (sotto_read_buffer_dropped_total),
	// as pion drops them when one stream's buffer is full.
	readBufferBudget = 8 << 20
	// rtpReadBufferLimit and rtcpReadBufferLimit are one stream's buffer
	// limits: pion/srtp's own (srtpBufferSize, srtcpBufferSize).
	rtpReadBufferLimit  = 1000 * 1000
	rtcpReadBufferLimit = 100 * 1000
)

// ruleTooManySSRCs is the sotto_participants_refused_total rule of a
// participant whose connection held more streams than the bound.
const ruleTooManySSRCs = "too_many_ssrcs"

// Stream kinds, indices of the guard's counters.
const (
	kindRTP = iota
	kindRTCP
)

// streamKindName is a kind as logs and metrics spell it.
func streamKindName(k int) string {
	if k == kindRTCP {
		return "rtcp"
	}
	return "rtp"
}

// ssrcGuard is one peer connection's BufferFactory and the bounds it
// keeps. Buffers come and go on pion's goroutines; the guard never calls
// back into pion or the SFU from there, but checks the bound on a
// goroutine of its own.
type ssrcGuard struct {
	// tracks returns how many tracks the connection carries now. It may
	// take SFU.mu; it runs on the guard's own goroutine only.
	tracks func() int
	// refuse ends the participant's session; called at most once, on the
	// guard's own goroutine.
	refuse func(kind string, live, limit int)
	// dropped counts packets refused for the budget, by kind.
	dropped [2]prometheus.Counter

	live    [2]atomic.Int64 // open streams by kind
	pending atomic.Int64    // checks asked for and not yet done
	tripped atomic.Bool

	// held estimates the bytes in the connection's buffers: it grows with
	// every packet written and is set to the true sum whenever it passes
	// the budget, so it never counts less than is held by more than the
	// packets written concurrently with a recount.
	held atomic.Int64

	mu      sync.Mutex
	buffers map[*guardedBuffer]struct{}
}

func newSSRCGuard(tracks func() int, refuse func(kind string, live, limit int), dropped [2]prometheus.Counter) *ssrcGuard {
	return &ssrcGuard{tracks: tracks, refuse: refuse, dropped: dropped, buffers: make(map[*guardedBuffer]struct{})}
}

// newBuffer is the connection's SettingEngine.BufferFactory.
func (g *ssrcGuard) newBuffer(pt packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	if g.tripped.Load() {
		// The participant is being closed; its streams take nothing more.
		return refusedBuffer{}
	}
	k, limit := kindRTP, rtpReadBufferLimit
	if pt == packetio.RTCPBufferPacket {
		k, limit = kindRTCP, rtcpReadBufferLimit
	}
	b := &guardedBuffer{Buffer: packetio.NewBuffer(), g: g, kind: k}
	b.SetLimitSize(limit)
	g.mu.Lock()
	g.buffers[b] = struct{}{}
	g.mu.Unlock()
	if g.live[k].Add(1) > ssrcHeadroom {
		g.askCheck()
	}
	return b
}

// askCheck has the bound checked soon, on the guard's goroutine: the
// tracks a connection carries are the SFU's to count, under its lock,
// which pion's goroutines must not wait for.
func (g *ssrcGuard) askCheck() {
	if g.pending.Add(1) == 1 {
		go g.check()
	}
}

// check compares the live streams with the bound until no check is
// pending.
func (g *ssrcGuard) check() {
	for {
		asked := g.pending.Load()
		if !g.tripped.Load() {
			limit := int64(ssrcHeadroom + ssrcsPerTrack*g.tracks())
			for k := range g.live {
				if n := g.live[k].Load(); n > limit && g.tripped.CompareAndSwap(false, true) {
					g.refuse(streamKindName(k), int(n), int(limit))
				}
			}
		}
		if g.pending.CompareAndSwap(asked, 0) {
			return
		}
	}
}

// admit reports whether a packet of cost bytes fits in the connection's
// budget, and counts it if so.
func (g *ssrcGuard) admit(cost int64) bool {
	if g.held.Add(cost) <= readBufferBudget {
		return true
	}
	// The estimate only ever grows: count what the buffers hold now.
	g.mu.Lock()
	defer g.mu.Unlock()
	var sum int64
	for b := range g.buffers {
		sum += int64(b.Size())
	}
	ok := sum+cost <= readBufferBudget
	if ok {
		sum += cost
	}
	g.held.Store(sum)
	return ok
}

// guardedBuffer is one stream's buffer, counted by its guard.
type guardedBuffer struct {
	*packetio.Buffer
	g     *ssrcGuard
	kind  int
	close sync.Once
}

// Write queues one packet, unless the connection's buffers hold their
// budget: then it reports packetio.ErrFull, which pion/srtp takes for a
// full buffer and drops the packet silently.
func (b *guardedBuffer) Write(p []byte) (int, error) {
	if !b.g.admit(int64(len(p)) + 2) { // packetio stores a 2-byte length with each packet
		b.g.dropped[b.kind].Inc()
		return 0, packetio.ErrFull
	}
	return b.Buffer.Write(p)
}

// Close closes the buffer and gives its stream back to the guard.
func (b *guardedBuffer) Close() error {
	b.close.Do(func() {
		b.g.mu.Lock()
		delete(b.g.buffers, b)
		b.g.mu.Unlock()
		b.g.live[b.kind].Add(-1)
	})
	return b.Buffer.Close()
}

// refusedBuffer stands in for the buffer of a stream opened after the
// guard tripped: it takes nothing (pion/srtp drops what does not fit
// silently) and reads as ended.
type refusedBuffer struct{}

func (refusedBuffer) Write([]byte) (int, error) { return 0, packetio.ErrFull }
func (refusedBuffer) Read([]byte) (int, error)  { return 0, io.EOF }
func (refusedBuffer) Close() error              { return nil }
