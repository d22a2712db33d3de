package sfu

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Batched UDP writes.
//
// Forwarding one packet to N subscribers is N SRTP packets out of the same
// UDP socket, one sendto(2) each, and on the machines measured the syscall
// and loopback or NIC delivery behind it is most of the cost of a forwarded
// packet (docs/BENCHMARKS.md). sendmmsg(2) sends many datagrams, each to
// its own address, in one call.
//
// pion/ice v4.4.2's UDP muxes (UDPMuxDefault, MultiUDPMuxDefault) write
// one datagram per call and have no batching option. pion/transport v4's
// udp.BatchConn batches, but does not fit: it queues every write and
// flushes from a goroutine on a ticker (half the interval) or when full,
// so every packet, RTCP, STUN and DTLS included, waits up to the interval
// and the ticker runs whether or not there is traffic; and it has no
// WriteToAddrPort, so the mux would fall back to WriteTo with a
// *net.UDPAddr allocated per packet. What the mux does take is any
// net.PacketConn. So the SFU gives it a socket of its own, batchConn,
// and tells it when a batch is worth making: publishedTrack.forward holds the socket's batchGroup
// for the length of its fan-out loop (and a NACK's retransmissions do the
// same). While the group is held, writes on its sockets are copied into a
// queue; when the holder lets go, or the queue is full (batchSize), or its
// first datagram has waited maxBatchWait, the queue goes out in one
// sendmmsg. While nobody holds the group, a write is one sendto,
// as before: no timer, no goroutine, and nothing waits longer than the
// fan-out loop it is part of.
//
// The queue's slots are fixed buffers (the datagram has to be copied: pion
// returns its SRTP buffer to a pool as soon as the write returns), so a
// queued write allocates nothing either.

const (
	// batchSize is the datagrams one sendmmsg sends at most: a write
	// that fills the queue sends it. Past a few tens of datagrams a
	// larger batch saves little (the syscall's entry is paid once per
	// batch; the kernel's work per datagram stays), while the first
	// packet waits for more encryptions.
	batchSize = 32
	// maxBatchWait bounds how long a queued datagram waits for the
	// rest of its batch while the holder is running: a write that finds
	// the queue's first datagram this old sends the queue. (A holder
	// descheduled mid-loop stalls its queue as it would stall its
	// unsent packets without batching.)
	maxBatchWait = 100 * time.Microsecond
	// batchSlotSize is one queued datagram's buffer; a larger write (none
	// the SFU makes: pion's MTU is 1200 for DTLS and 1460 for RTP) skips
	// the queue.
	batchSlotSize = maxPacketSize + 64
)

// batchGroup is the sockets whose writes a forwarding loop batches: the
// SFU's UDP media sockets. The zero group (and a nil one) batches nothing.
type batchGroup struct {
	conns []*batchConn
}

// hold starts a batch on every socket of the group: from now until the
// matching release, their writes are queued. Holds nest and overlap: a
// socket batches while any holder holds it.
func (g *batchGroup) hold() {
	if g == nil {
		return
	}
	for _, c := range g.conns {
		c.hold()
	}
}

// release ends a hold and sends what the group's sockets queued.
func (g *batchGroup) release() {
	if g == nil {
		return
	}
	for _, c := range g.conns {
		c.release()
	}
}

// batchWriter is ipv4.PacketConn or ipv6.PacketConn: sendmmsg on Linux, one
// sendmsg per call elsewhere (it then reports one message written).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn is one UDP media socket as the ICE UDP mux sees it. Reads are
// the socket's. It implements ice.AddrPortReaderWriter, so the mux reads
// and writes with netip.AddrPort and no allocation, as it does on a bare
// *net.UDPConn.
type batchConn struct {
	*net.UDPConn
	w   batchWriter
	is4 bool // the socket's family: a queued address must match it
	// maxWait is maxBatchWait; tests that count syscalls lift it.
	maxWait time.Duration
	// oversized counts datagrams too large for pion, skipped by reads;
	// nil skips nothing. Set before the socket is read.
	oversized prometheus.Counter

	mu    sync.Mutex
	holds int
	n     int // datagrams queued
	msgs  [batchSize]ipv4.Message
	bufs  [batchSize][batchSlotSize]byte
	iovs  [batchSize][1][]byte
	addrs [batchSize]net.UDPAddr
	ips   [batchSize][16]byte

	// first is when the queue's first datagram was queued; waited and
	// longest sum and bound how long queues waited for their flush
	// (guarded by mu, read with waits).
	first           time.Time
	waited, longest time.Duration
	batches         int64
	// Datagrams written and the syscalls that wrote them (tests and
	// benchmarks read them with counts).
	datagrams, syscalls atomic.Int64
}

// newBatchConn wraps conn. The socket's family is its local address's.
func newBatchConn(conn *net.UDPConn) *batchConn {
	c := &batchConn{UDPConn: conn, maxWait: maxBatchWait}
	local, _ := conn.LocalAddr().(*net.UDPAddr)
	if local != nil && local.IP.To4() != nil {
		c.is4 = true
		c.w = ipv4.NewPacketConn(conn)
	} else {
		c.w = ipv6Writer{ipv6.NewPacketConn(conn)}
	}
	for i := range c.msgs {
		c.msgs[i].Buffers = c.iovs[i][:]
		c.msgs[i].Addr = &c.addrs[i]
	}
	return c
}

// ipv6Writer adapts ipv6.PacketConn, whose Message is the same type as
// ipv4's.
type ipv6Writer struct{ *ipv6.PacketConn }

func (w ipv6Writer) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return w.PacketConn.WriteBatch(ms, flags)
}

func (c *batchConn) hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

func (c *batchConn) release() {
	c.mu.Lock()
	c.holds--
	c.flushLocked()
	c.mu.Unlock()
}

// ReadFromAddrPort is the socket's ReadFromUDPAddrPort, less datagrams
// larger than pion's receive MTU (maxPacketSize): pion would carry each
// through ICE to its demux and drop it there with an error line.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || n <= maxPacketSize || c.oversized == nil {
			return n, addr, err
		}
		c.oversized.Inc()
	}
}

// WriteToAddrPort sends b to addr now, or queues it while the socket is
// held. A queued write reports success: its error, if the send fails, is
// known only at the flush, and UDP promised nothing more.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	if c.holds == 0 {
		c.mu.Unlock()
		return c.writeNow(b, addr)
	}
	ip := addr.Addr()
	if len(b) > batchSlotSize || ip.Is4() != c.is4 || ip.Is4In6() {
		// Not queueable: send it now, after what is queued, so the
		// socket's datagrams leave in the order they were written.
		c.flushLocked()
		n, err := c.writeNow(b, addr)
		c.mu.Unlock()
		return n, err
	}
	i := c.n
	if i == 0 {
		c.first = time.Now()
	}
	m := &c.msgs[i]
	c.iovs[i][0] = c.bufs[i][:copy(c.bufs[i][:], b)]
	a := &c.addrs[i]
	if c.is4 {
		v := ip.As4()
		a.IP = append(c.ips[i][:0], v[:]...)
	} else {
		v := ip.As16()
		a.IP = append(c.ips[i][:0], v[:]...)
	}
	a.Port = int(addr.Port())
	a.Zone = ip.Zone()
	m.Addr = a
	c.n++
	if c.n == batchSize || (c.n > 1 && time.Since(c.first) >= c.maxWait) {
		c.flushLocked()
	}
	c.mu.Unlock()
	return len(b), nil
}

// WriteTo is WriteToAddrPort for the mux's writes that carry a net.Addr.
func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, ua.AddrPort())
	}
	c.mu.Lock()
	c.flushLocked()
	c.mu.Unlock()
	c.datagrams.Add(1)
	c.syscalls.Add(1)
	return c.UDPConn.WriteTo(b, addr)
}

func (c *batchConn) writeNow(b []byte, addr netip.AddrPort) (int, error) {
	n, err := c.UDPConn.WriteToUDPAddrPort(b, addr)
	c.datagrams.Add(1)
	c.syscalls.Add(1)
	return n, err
}

// flushLocked sends the queue. A datagram the kernel refuses is skipped,
// as a refused sendto would have lost it alone. Called with c.mu held.
func (c *batchConn) flushLocked() {
	if c.n == 0 {
		return
	}
	wait := time.Since(c.first)
	c.waited += wait
	c.longest = max(c.longest, wait)
	c.batches++
	sent := 0
	for sent < c.n {
		n, err := c.w.WriteBatch(c.msgs[sent:c.n], 0)
		c.syscalls.Add(1)
		if err != nil && n <= 0 {
			n = 1 // the first datagram failed: drop it, send the rest
		}
		sent += n
	}
	c.datagrams.Add(int64(c.n))
	c.n = 0
}

// waits reports the batches sent, their mean wait (from the first
// datagram queued to the flush) and the longest.
func (c *batchConn) waits() (batches int64, mean, longest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batches == 0 {
		return 0, 0, 0
	}
	return c.batches, c.waited / time.Duration(c.batches), c.longest
}

// counts reports the datagrams written and the syscalls that wrote them.
func (c *batchConn) counts() (datagrams, syscalls int64) {
	return c.datagrams.Load(), c.syscalls.Load()
}

// batchNet is the host's network, as pion's ICE sees it, with UDP sockets
// that are batchConns: ice.NewMultiUDPMuxFromPort opens the SFU's sockets
// through it, one per interface address, and group collects them.
type batchNet struct {
	*stdnet.Net
	group     batchGroup
	oversized prometheus.Counter // batchConn.oversized
}

func newBatchNet() (*batchNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &batchNet{Net: n}, nil
}

// ListenUDP binds a socket as the host's network does and wraps it.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	bc := newBatchConn(c)
	bc.oversized = n.oversized
	n.group.conns = append(n.group.conns, bc)
	return bc, nil
}

// counts sums the group's sockets' counts.
func (g *batchGroup) counts() (datagrams, syscalls int64) {
	if g == nil {
		return 0, 0
	}
	for _, c := range g.conns {
		d, s := c.counts()
		datagrams += d
		syscalls += s
	}
	return datagrams, syscalls
}
