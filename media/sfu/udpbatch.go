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

// Batched UDP writes: while a forwarding loop holds a batchGroup, writes
// on its sockets are queued and leave in one sendmmsg(2) when it lets go,
// when the queue is full or when its first datagram is maxBatchWait old;
// otherwise a write is one sendto(2). No timer, no goroutine. Why, and
// what it costs: docs/BENCHMARKS.md, "Batched writes".

const (
	// batchSize: past a few tens of datagrams a batch saves little more.
	batchSize    = 32
	maxBatchWait = 100 * time.Microsecond
	// batchSlotSize is one queued datagram's buffer; a larger write skips
	// the queue.
	batchSlotSize = maxPacketSize + 64
)

// batchGroup is the SFU's UDP media sockets. A nil group batches nothing.
type batchGroup struct {
	conns []*batchConn
}

// hold queues the group's writes until the matching release. Holds nest.
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

// batchWriter is ipv4.PacketConn or ipv6.PacketConn: sendmmsg on Linux.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn is one UDP media socket as the ICE UDP mux sees it. As an
// ice.AddrPortReaderWriter it reads and writes without allocating.
type batchConn struct {
	*net.UDPConn
	w         batchWriter
	is4       bool               // the socket's family: a queued address must match it
	maxWait   time.Duration      // maxBatchWait; tests that count syscalls lift it
	oversized prometheus.Counter // datagrams too large for pion, skipped; nil skips none

	mu    sync.Mutex
	holds int
	n     int // datagrams queued
	msgs  [batchSize]ipv4.Message
	bufs  [batchSize][batchSlotSize]byte
	iovs  [batchSize][1][]byte
	addrs [batchSize]net.UDPAddr
	ips   [batchSize][16]byte

	// When the queue's first datagram was queued, and the waits of flushed
	// queues (read with waits).
	first               time.Time
	waited, longest     time.Duration
	batches             int64
	datagrams, syscalls atomic.Int64
}

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

// ipv6Writer adapts ipv6.PacketConn, whose Message is ipv4's.
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

// ReadFromAddrPort skips datagrams larger than pion's receive MTU, which
// pion would carry to its demux only to drop with an error line.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || n <= maxPacketSize || c.oversized == nil {
			return n, addr, err
		}
		c.oversized.Inc()
	}
}

// WriteToAddrPort sends b now, or queues it while the socket is held; a
// queued write reports success, as UDP promises nothing more.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	if c.holds == 0 {
		c.mu.Unlock()
		return c.writeNow(b, addr)
	}
	ip := addr.Addr()
	if len(b) > batchSlotSize || ip.Is4() != c.is4 || ip.Is4In6() {
		// Not queueable: send it after what is queued, to keep the order.
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

// flushLocked sends the queue, skipping a datagram the kernel refuses.
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

// waits reports the batches sent, their mean and longest wait.
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

// batchNet is the host's network with batchConn UDP sockets, for
// ice.NewMultiUDPMuxFromPort; group collects them.
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
