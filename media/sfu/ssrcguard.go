package sfu

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v4/packetio"
	"github.com/prometheus/client_golang/prometheus"
)

// The SSRC guard bounds what pion keeps for the SSRCs a client names: pion
// opens a buffered read stream for every SSRC it sees, in front of the
// interceptors, and keeps those no track claims (docs/FUZZING.md, "a read
// stream per SSRC a client names"). Each connection's BufferFactory counts
// its streams and their bytes; past the bound the participant is refused.
const (
	// ssrcHeadroom: a client's legitimate extra streams are a handful.
	ssrcHeadroom = 64
	// ssrcsPerTrack: three simulcast layers, each with RTX, so the bound
	// scales with the tracks a connection carries.
	ssrcsPerTrack = 6
	// readBufferBudget bounds the bytes one connection's read buffers
	// hold: seconds of the fastest video; past it packets drop.
	readBufferBudget = 8 << 20
	// One stream's buffer limits, as pion/srtp's own.
	rtpReadBufferLimit  = 1000 * 1000
	rtcpReadBufferLimit = 100 * 1000
)

const ruleTooManySSRCs = "too_many_ssrcs"

const (
	kindRTP = iota
	kindRTCP
)

func streamKindName(k int) string {
	if k == kindRTCP {
		return "rtcp"
	}
	return "rtp"
}

// ssrcGuard is one peer connection's BufferFactory. It never calls back
// into pion or the SFU from pion's goroutines: it checks on its own.
type ssrcGuard struct {
	// tracks counts the connection's tracks; it may take SFU.mu.
	tracks func() int
	// refuse ends the participant's session; called at most once.
	refuse  func(kind string, live, limit int)
	dropped [2]prometheus.Counter

	live    [2]atomic.Int64 // open streams by kind
	pending atomic.Int64    // checks asked for and not yet done
	tripped atomic.Bool

	// held estimates the bytes buffered: it grows with every packet and
	// is recounted whenever it passes the budget.
	held atomic.Int64

	mu      sync.Mutex
	buffers map[*guardedBuffer]struct{}
}

func newSSRCGuard(tracks func() int, refuse func(kind string, live, limit int), dropped [2]prometheus.Counter) *ssrcGuard {
	return &ssrcGuard{tracks: tracks, refuse: refuse, dropped: dropped, buffers: make(map[*guardedBuffer]struct{})}
}

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

// askCheck has the bound checked soon, on the guard's goroutine, as
// counting tracks takes SFU.mu, which pion's goroutines must not wait for.
func (g *ssrcGuard) askCheck() {
	if g.pending.Add(1) == 1 {
		go g.check()
	}
}

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

// admit reports whether cost bytes fit the budget, and counts them if so.
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

// Write reports packetio.ErrFull past the budget: pion drops the packet.
func (b *guardedBuffer) Write(p []byte) (int, error) {
	if !b.g.admit(int64(len(p)) + 2) { // packetio stores a 2-byte length with each packet
		b.g.dropped[b.kind].Inc()
		return 0, packetio.ErrFull
	}
	return b.Buffer.Write(p)
}

func (b *guardedBuffer) Close() error {
	b.close.Do(func() {
		b.g.mu.Lock()
		delete(b.g.buffers, b)
		b.g.mu.Unlock()
		b.g.live[b.kind].Add(-1)
	})
	return b.Buffer.Close()
}

// refusedBuffer is the buffer of a stream opened after the guard
// tripped: it takes nothing and reads as ended.
type refusedBuffer struct{}

func (refusedBuffer) Write([]byte) (int, error) { return 0, packetio.ErrFull }
func (refusedBuffer) Read([]byte) (int, error)  { return 0, io.EOF }
func (refusedBuffer) Close() error              { return nil }
