package sfu

import "time"

// NACK budget.
//
// A NACK costs its sender a few bytes and the SFU a cache lookup, an SRTP
// encryption and a datagram per packet it names, so a subscriber that
// NACKs everything, often, turns the SFU into an amplifier. Each
// subscription therefore earns retransmissions from what it is forwarded:
// a quarter of its packets and bytes (a link losing more than that is
// unusable anyway), plus a small floor per second so that a quiet track
// (audio, a paused camera) can still recover a loss, saved up to a cap of
// about one cache's worth. A NACKed packet beyond the budget is not sent,
// and is counted. A packet resent moments ago is not sent again either: a
// receiver asks again only after a round trip.
const (
	// nackShare is the inverse of the share of forwarded packets and
	// bytes a subscription may have retransmitted: 4 is 25%.
	nackShare = 4
	// nackFloorPackets and nackFloorBytes are earned per second
	// whatever is forwarded.
	nackFloorPackets = 20
	nackFloorBytes   = nackFloorPackets * 1200
	// nackCapPackets and nackCapBytes bound what can be saved up: a
	// burst of loss this large can still be repaired at once.
	nackCapPackets = 512
	nackCapBytes   = nackCapPackets * 1200
	// nackInitialPackets is what a new subscription starts with.
	nackInitialPackets = 64
	// nackRepeatInterval is how long after resending a packet a request
	// for it again is taken as a duplicate.
	nackRepeatInterval = 50 * time.Millisecond
	// nackSeenSize is the number of recent resends remembered.
	nackSeenSize = 256
)

// nackBudget is one subscription's retransmission credit, in units of
// 1/nackShare packet or byte, so that earning per forwarded packet is an
// addition. Guarded by its downTrack's mu.
type nackBudget struct {
	packets, bytes int64
	last           time.Duration // when the floor was last added, since start
	seen           [nackSeenSize]nackSeen
}

// nackSeen is a recent resend: its sequence number and when, in
// milliseconds since the track started (it wraps after 49 days, which
// the subtraction in repeated tolerates).
type nackSeen struct {
	at  uint32
	seq uint16
	ok  bool
}

// newNackBudget returns a subscription's budget; now is the time since
// its track started.
func newNackBudget(now time.Duration) nackBudget {
	return nackBudget{packets: nackInitialPackets * nackShare, bytes: nackInitialPackets * 1200 * nackShare, last: now}
}

// earn credits one forwarded packet of size bytes.
func (b *nackBudget) earn(size int) {
	b.packets = min(b.packets+1, nackCapPackets*nackShare)
	b.bytes = min(b.bytes+int64(size), nackCapBytes*nackShare)
}

// refill adds the floor for the time since the last refill; now is time
// since the track started.
func (b *nackBudget) refill(now time.Duration) {
	elapsed := min(now-b.last, 30*time.Second)
	if elapsed <= 0 {
		return
	}
	b.last = now
	b.packets = min(b.packets+int64(elapsed)*nackFloorPackets*nackShare/int64(time.Second), nackCapPackets*nackShare)
	b.bytes = min(b.bytes+int64(elapsed)*nackFloorBytes*nackShare/int64(time.Second), nackCapBytes*nackShare)
}

// hasPacket reports whether a packet could be resent, size aside.
func (b *nackBudget) hasPacket() bool { return b.packets >= nackShare }

// spend takes one packet of size bytes from the budget, or reports false
// and takes nothing when the bytes are not there.
func (b *nackBudget) spend(size int) bool {
	if b.packets < nackShare || b.bytes < int64(size)*nackShare {
		return false
	}
	b.packets -= nackShare
	b.bytes -= int64(size) * nackShare
	return true
}

// repeated reports whether seq was resent less than nackRepeatInterval
// before now.
func (b *nackBudget) repeated(seq uint16, now time.Duration) bool {
	s := &b.seen[seq%nackSeenSize]
	return s.ok && s.seq == seq && time.Duration(uint32(now.Milliseconds())-s.at)*time.Millisecond < nackRepeatInterval
}

// resent records that seq was resent at now.
func (b *nackBudget) resent(seq uint16, now time.Duration) {
	b.seen[seq%nackSeenSize] = nackSeen{at: uint32(now.Milliseconds()), seq: seq, ok: true}
}
