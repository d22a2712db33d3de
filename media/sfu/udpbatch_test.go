package sfu

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// loopbackPair is a batchConn and a plain socket it sends to.
func loopbackPair(t *testing.T) (*batchConn, *net.UDPConn, netip.AddrPort) {
	t.Helper()
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	c := newBatchConn(a)
	c.maxWait = time.Hour // the syscall counts must not depend on the machine's speed
	return c, b, b.LocalAddr().(*net.UDPAddr).AddrPort()
}

// datagram i of a test: its index and a length that varies with it.
func datagram(i int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, 20+i%700)
	b[0], b[1] = byte(i>>8), byte(i)
	return b
}

// expectDatagrams reads n datagrams and checks they are want(0..n-1), in
// order.
func expectDatagrams(t *testing.T, r *net.UDPConn, want func(int) []byte, n int) {
	t.Helper()
	buf := make([]byte, 4096)
	for i := range n {
		_ = r.SetReadDeadline(time.Now().Add(waitTimeout))
		k, err := r.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.Equal(buf[:k], want(i)) {
			t.Fatalf("datagram %d: got %d bytes starting %x, want %d bytes starting %x", i, k, buf[:2], len(want(i)), want(i)[:2])
		}
	}
}

func TestBatchConn(t *testing.T) {
	tests := []struct {
		name         string
		held         bool
		n            int
		wantSyscalls int64
	}{
		{name: "not held: one sendto each", held: false, n: 5, wantSyscalls: 5},
		{name: "held: one sendmmsg at release", held: true, n: 10, wantSyscalls: 1},
		{name: "held: a full queue is sent at once", held: true, n: batchSize + 3, wantSyscalls: 2},
		{name: "held: exactly full", held: true, n: 2 * batchSize, wantSyscalls: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, r, to := loopbackPair(t)
			if tc.held {
				c.hold()
			}
			for i := range tc.n {
				if n, err := c.WriteToAddrPort(datagram(i), to); err != nil || n != len(datagram(i)) {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
			}
			if tc.held {
				c.release()
			}
			expectDatagrams(t, r, datagram, tc.n)
			d, s := c.counts()
			if d != int64(tc.n) || s != tc.wantSyscalls {
				t.Errorf("%d datagrams in %d syscalls, want %d in %d", d, s, tc.n, tc.wantSyscalls)
			}
		})
	}
}

// TestBatchConnKeepsOrder: a write that cannot be queued (too large for a
// slot, or a net.Addr that is not a UDP address) goes out after what was
// queued before it, and what follows it is queued again.
func TestBatchConnKeepsOrder(t *testing.T) {
	c, r, to := loopbackPair(t)
	big := bytes.Repeat([]byte{0xB1}, batchSlotSize+1)
	want := func(i int) []byte {
		if i == 3 {
			return big
		}
		return datagram(i)
	}
	c.hold()
	for i := range 6 {
		var err error
		if i == 3 {
			_, err = c.WriteTo(big, net.UDPAddrFromAddrPort(to))
		} else {
			_, err = c.WriteToAddrPort(datagram(i), to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, s := c.counts(); s != 2 {
		t.Errorf("%d syscalls before release, want 2 (the queue of three, then the large one)", s)
	}
	c.release()
	expectDatagrams(t, r, want, 6)
}

// TestBatchConnNestedHolds: holds overlap (several forwarding loops at
// once); each release sends what is queued, and the socket stays batched
// until the last one.
func TestBatchConnNestedHolds(t *testing.T) {
	c, r, to := loopbackPair(t)
	c.hold()
	c.hold()
	for i := range 3 {
		_, _ = c.WriteToAddrPort(datagram(i), to)
	}
	c.release()
	for i := 3; i < 6; i++ {
		_, _ = c.WriteToAddrPort(datagram(i), to)
	}
	if _, s := c.counts(); s != 1 {
		t.Errorf("%d syscalls while still held once, want 1", s)
	}
	c.release()
	_, _ = c.WriteToAddrPort(datagram(6), to) // not held: sent at once
	expectDatagrams(t, r, datagram, 7)
	if d, s := c.counts(); d != 7 || s != 3 {
		t.Errorf("%d datagrams in %d syscalls, want 7 in 3", d, s)
	}
}

// TestNilBatchGroup: tracks of an SFU without batching (Net, or
// DisableBatchedWrites) and of the forwarding tests have none.
func TestNilBatchGroup(t *testing.T) {
	var g *batchGroup
	g.hold()
	g.release()
	if d, s := g.counts(); d != 0 || s != 0 {
		t.Errorf("counts %d, %d", d, s)
	}
}

// TestForwardBatchesWrites: on a real SFU, one packet to ten subscribers
// leaves in one sendmmsg, not ten sendtos. Other writes (ICE keepalives,
// sender reports) may happen meanwhile, so the bound is loose.
func TestForwardBatchesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("connects ten peers")
	}
	const subscribers, packets = 10, 200
	f := newFanoutFixture(t, subscribers, Config{})
	f.use(subscribers)
	for _, c := range f.sfu.batch.conns {
		c.mu.Lock()
		c.maxWait = time.Hour // one batch per fan-out, however slow the machine
		c.mu.Unlock()
	}
	d0, s0 := f.sfu.batch.counts()
	for range packets {
		f.forwardOne()
	}
	d, s := f.sfu.batch.counts()
	d, s = d-d0, s-s0
	t.Logf("%d datagrams in %d write syscalls", d, s)
	if d < subscribers*packets {
		t.Errorf("%d datagrams written, want at least %d", d, subscribers*packets)
	}
	if s > d/4 {
		t.Errorf("%d write syscalls for %d datagrams: not batched", s, d)
	}
	// Arrival is checked per subscriber, not packet by packet: 200
	// unpaced packets can overflow a peer's socket buffer on a loaded
	// machine. TestBatchConn checks what a batch delivers, exactly.
	for i, sink := range f.sinks {
		waitFor(t, fmt.Sprintf("packets to reach subscriber %d", i), func() bool { return sink.rtp.load() > 0 })
	}
}

// TestOutgoingCheckMatchesWholePacket: the outgoing check, which marshals
// only the header, decides as the check of the whole marshalled packet.
func TestOutgoingCheckMatchesWholePacket(t *testing.T) {
	opts := newStrictOptions()
	ext := func(profile uint16, ids ...uint8) rtp.Header {
		h := rtp.Header{Version: 2, SSRC: 1, Extension: true, ExtensionProfile: profile}
		for _, id := range ids {
			_ = h.SetExtension(id, []byte{1, 2, 3})
		}
		return h
	}
	long := ext(rtp.ExtensionProfileTwoByte)
	for id := uint8(1); id <= 8; id++ {
		_ = long.SetExtension(id, bytes.Repeat([]byte{id}, 60)) // > maxCheckedHeader in all
	}
	tests := []struct {
		name    string
		h       rtp.Header
		payload int
	}{
		{"plain", rtp.Header{Version: 2, SSRC: 1}, 1100},
		{"empty payload", rtp.Header{Version: 2, SSRC: 1}, 0},
		{"padding", rtp.Header{Version: 2, SSRC: 1, Padding: true, PaddingSize: 4}, 100},
		{"padding only", rtp.Header{Version: 2, SSRC: 1, Padding: true, PaddingSize: 200}, 0},
		{"padding without size", rtp.Header{Version: 2, SSRC: 1, Padding: true}, 10},
		{"csrcs", rtp.Header{Version: 2, SSRC: 1, CSRC: []uint32{1, 2, 3}}, 100},
		{"one-byte extensions", ext(rtp.ExtensionProfileOneByte, 1, 2, 14), 1000},
		{"two-byte extensions", ext(rtp.ExtensionProfileTwoByte, 1, 200), 1000},
		{"too large", rtp.Header{Version: 2, SSRC: 1}, maxPacketSize},
		{"just fits", rtp.Header{Version: 2, SSRC: 1}, maxPacketSize - 12},
		{"long header", long, 200},
		{"long header, too large", long, 1100},
		{"version 0", rtp.Header{SSRC: 1}, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.payload)
			got := checkOutgoingRTP(opts, &tc.h, payload)
			// The whole packet cannot be built in these two cases, which
			// the check refuses before building anything.
			var want rtcpstrict.Rule
			switch {
			case tc.h.Padding && tc.h.PaddingSize == 0:
				want = rtcpstrict.RuleRTPPaddingZero
			case tc.h.MarshalSize()+len(payload)+int(tc.h.PaddingSize) > maxPacketSize:
				want = rtcpstrict.RuleRTPTooLarge
			default:
				want = checkOutgoingPacket(opts, &tc.h, payload)
			}
			if got != want {
				t.Errorf("header-only check %q, whole packet %q", got, want)
			}
		})
	}
	// TestOutgoingCheckAllocs (alloc_test.go) counts its allocations.
}

// TestBatchConnAgeBound: a queue whose first datagram has waited
// maxWait is sent by the next write, held or not.
func TestBatchConnAgeBound(t *testing.T) {
	c, r, to := loopbackPair(t)
	c.maxWait = time.Millisecond
	c.hold()
	_, _ = c.WriteToAddrPort(datagram(0), to)
	time.Sleep(2 * time.Millisecond)
	_, _ = c.WriteToAddrPort(datagram(1), to)
	if d, s := c.counts(); d != 2 || s != 1 {
		t.Errorf("%d datagrams in %d syscalls before release, want 2 in 1", d, s)
	}
	c.release()
	expectDatagrams(t, r, datagram, 2)
}
