package sfu

import "time"

// NACK budget: each NACKed packet costs the SFU a lookup, an encryption and
// a datagram, so a subscription earns retransmissions from what it is
// forwarded (a quarter, plus a floor for quiet tracks, up to a cap). A
// packet resent moments ago is not resent: a receiver asks again only
// after a round trip.
const (
	// nackShare: 4 is 25% of forwarded packets and bytes.
	nackShare = 4
	// Earned per second whatever is forwarded.
	nackFloorPackets = 20
	nackFloorBytes   = nackFloorPackets * 1200
	// What can be saved up: a burst of loss this large is repaired at once.
	nackCapPackets     = 512
	nackCapBytes       = nackCapPackets * 1200
	nackInitialPackets = 64
	// nackRepeatInterval: a request this soon after a resend is a duplicate.
	nackRepeatInterval = 50 * time.Millisecond
	nackSeenSize       = 256
)

// nackBudget is one subscription's retransmission credit, in 1/nackShare
// packets or bytes. Guarded by its downTrack's mu.
type nackBudget struct {
	packets, bytes int64
	last           time.Duration // when the floor was last added, since start
	seen           [nackSeenSize]nackSeen
}

// nackSeen is a recent resend, at milliseconds since the track started
// (wrapping after 49 days, which repeated tolerates).
type nackSeen struct {
	at  uint32
	seq uint16
	ok  bool
}

func newNackBudget(now time.Duration) nackBudget {
	return nackBudget{packets: nackInitialPackets * nackShare, bytes: nackInitialPackets * 1200 * nackShare, last: now}
}

func (b *nackBudget) earn(size int) {
	b.packets = min(b.packets+1, nackCapPackets*nackShare)
	b.bytes = min(b.bytes+int64(size), nackCapBytes*nackShare)
}

// refill adds the floor for the time since the last refill.
func (b *nackBudget) refill(now time.Duration) {
	elapsed := min(now-b.last, 30*time.Second)
	if elapsed <= 0 {
		return
	}
	b.last = now
	b.packets = min(b.packets+int64(elapsed)*nackFloorPackets*nackShare/int64(time.Second), nackCapPackets*nackShare)
	b.bytes = min(b.bytes+int64(elapsed)*nackFloorBytes*nackShare/int64(time.Second), nackCapBytes*nackShare)
}

func (b *nackBudget) hasPacket() bool { return b.packets >= nackShare }

// spend takes a packet of size bytes, or nothing and reports false.
func (b *nackBudget) spend(size int) bool {
	if b.packets < nackShare || b.bytes < int64(size)*nackShare {
		return false
	}
	b.packets -= nackShare
	b.bytes -= int64(size) * nackShare
	return true
}

func (b *nackBudget) repeated(seq uint16, now time.Duration) bool {
	s := &b.seen[seq%nackSeenSize]
	return s.ok && s.seq == seq && time.Duration(uint32(now.Milliseconds())-s.at)*time.Millisecond < nackRepeatInterval
}

func (b *nackBudget) resent(seq uint16, now time.Duration) {
	b.seen[seq%nackSeenSize] = nackSeen{at: uint32(now.Milliseconds()), seq: seq, ok: true}
}
