package sfu

import "sync"

// maxPacketSize bounds an RTP packet the SFU keeps or forwards. pion's
// receive MTU is 1460 bytes, so 1500 leaves room and keeps every cache slot
// the same fixed size.
const maxPacketSize = 1500

// maxPacketCacheSize bounds Config.PacketCacheSize: the cache is indexed by
// a 16-bit sequence number, so more slots than 65536 could never be used.
const maxPacketCacheSize = 1 << 16

// packetCache keeps the last packets of one published track, as they came
// from the publisher, so that a NACK from any of the track's subscribers can
// be answered without asking the publisher again. The idea is Galene's
// packetcache: a ring of fixed-size slots indexed by the low bits of the
// sequence number, each slot remembering which sequence number it holds, so
// inserting and looking up cost no allocation and a stale slot is never
// mistaken for the packet asked for.
type packetCache struct {
	mu    sync.Mutex
	mask  uint16
	slots []cacheSlot
}

type cacheSlot struct {
	valid bool
	seq   uint16
	n     uint16
	buf   [maxPacketSize]byte
}

// newPacketCache returns a cache of size slots rounded up to a power of two
// (so the slot is seq&mask) and clamped to [1, 65536].
func newPacketCache(size int) *packetCache {
	n := 1
	for n < size && n < maxPacketCacheSize {
		n <<= 1
	}
	return &packetCache{
		mask:  uint16(n - 1),
		slots: make([]cacheSlot, n),
	}
}

// size reports the number of slots.
func (c *packetCache) size() int { return len(c.slots) }

// store copies packet into the slot of seq, replacing whatever was there. A
// packet larger than a slot is not kept: a NACK for it will miss.
func (c *packetCache) store(seq uint16, packet []byte) {
	if len(packet) > maxPacketSize {
		return
	}
	c.mu.Lock()
	s := &c.slots[seq&c.mask]
	s.valid = true
	s.seq = seq
	s.n = uint16(copy(s.buf[:], packet))
	c.mu.Unlock()
}

// load copies the packet with sequence number seq into dst and returns its
// length, or 0 when the cache no longer (or never) held it.
func (c *packetCache) load(seq uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq&c.mask]
	if !s.valid || s.seq != seq {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}
