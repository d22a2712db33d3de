package sfu

import "sync"

// maxPacketSize bounds an RTP packet the SFU keeps or forwards, above
// pion's receive MTU of 1460.
const maxPacketSize = 1500

// maxPacketCacheSize: the cache is indexed by a 16-bit sequence number.
const maxPacketCacheSize = 1 << 16

// packetCache keeps one track's last packets to answer any subscriber's
// NACK: a ring of fixed slots indexed by the sequence number's low bits,
// each remembering its sequence number (after Galene's packetcache).
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

// newPacketCache rounds size up to a power of two within [1, 65536].
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

func (c *packetCache) size() int { return len(c.slots) }

// store copies packet into seq's slot; a packet larger than a slot is not kept.
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

// load copies seq's packet into dst and returns its length, or 0.
func (c *packetCache) load(seq uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq&c.mask]
	if !s.valid || s.seq != seq {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}
