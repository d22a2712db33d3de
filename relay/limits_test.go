package relay

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBandwidthLimit floods one allocation far beyond its bandwidth and
// expects the excess dropped and counted, never more relayed than the
// limit allows in the time the flood took.
func TestBandwidthLimit(t *testing.T) {
	const bandwidth = 10000 // bytes per second; the burst is one second's worth
	s := startRelay(t, func(c *Config) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Bandwidth = bandwidth
	})
	pc, relayed := pionClientAlloc(t, s, "flood")
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	payload := make([]byte, 1000)
	start := time.Now()
	const sent = 100
	for range sent {
		if _, err := relayed.WriteTo(payload, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// A request on the same socket is answered after every datagram sent
	// before it has been handled: the relay reads one socket in order.
	if err := pc.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	relayedPackets := testutil.ToFloat64(s.m.packets.WithLabelValues(toPeer))
	dropped := testutil.ToFloat64(s.m.dropped.WithLabelValues(dropBandwidth))
	allowed := (bandwidth + elapsed.Seconds()*bandwidth) / float64(len(payload))
	if relayedPackets > allowed+1 {
		t.Errorf("relayed %v datagrams of %d bytes in %v, limit allows %.1f", relayedPackets, len(payload), elapsed, allowed)
	}
	if elapsed < 5*time.Second && dropped == 0 {
		t.Errorf("nothing dropped: relayed %v of %d in %v", relayedPackets, sent, elapsed)
	}
}

// deletions is a slog handler that reports every allocation the relay
// deletes: tests wait on it instead of on the clock.
type deletions struct {
	slog.Handler
	ch chan struct{}
}

func (d deletions) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "turn: allocation deleted") {
		d.ch <- struct{}{}
	}
	return nil
}

func (d deletions) Enabled(context.Context, slog.Level) bool { return true }

// TestMaxLifetime expects an allocation to end at the maximum lifetime
// although the client asked for an hour, and its quota slot freed.
func TestMaxLifetime(t *testing.T) {
	del := deletions{Handler: slog.Default().Handler(), ch: make(chan struct{}, 4)}
	s := startRelay(t, func(c *Config) {
		c.MaxLifetime = 200 * time.Millisecond
		c.MaxAllocationsPerUser = 1
		c.Logger = slog.New(del)
	})
	c := restClient(t, s, "long")
	if _, err := c.do(stun.MethodAllocate, requestedUDP{}, lifetime(3600)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-del.ch:
	case <-time.After(30 * time.Second): // bounds a broken test only
		t.Fatal("allocation outlived the maximum lifetime")
	}
	if n := s.AllocationCount(); n != 0 {
		t.Errorf("%d allocations left", n)
	}
	// The quota slot is free again: the same user may allocate anew.
	if err := restClient(t, s, "long").allocate(); err != nil {
		t.Errorf("allocate after expiry: %v", err)
	}
}

// TestTCPAllocationConnect makes an RFC 6062 TCP allocation and expects
// Connect refused for a denied peer and accepted, with data relayed, for
// an allowed one.
func TestTCPAllocationConnect(t *testing.T) {
	s := startRelay(t, func(c *Config) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.AllowEndpoints = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.3:9")}
	})
	peerLn, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		// Linux routes all of 127.0.0.0/8 to lo; a machine that does
		// not cannot run the relay's peer-policy tests honestly.
		t.Fatalf("cannot listen on 127.0.0.2 (the allowed peer of this test): %v", err)
	}
	defer peerLn.Close()
	go func() {
		c, err := peerLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		_, _ = c.Write(append([]byte("echo "), buf[:n]...))
	}()

	ctrl, err := net.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	user, pass := RESTCredentials(testSecret, "tcp-user", time.Hour, time.Now())
	pc, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.Addrs()[1].String(), TURNServerAddr: s.Addrs()[1].String(),
		Conn: turn.NewSTUNConn(ctrl), Username: user, Password: pass, Realm: testRealm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Listen(); err != nil {
		t.Fatal(err)
	}
	alloc, err := pc.AllocateTCP()
	if err != nil {
		t.Fatalf("AllocateTCP: %v", err)
	}
	defer alloc.Close()

	// 127.0.0.3 passes the policy for port 9 only; its port 80 is refused
	// when the relay would dial it, and answered 403 all the same.
	for _, denied := range []string{"127.0.0.1", "169.254.169.254", "10.0.0.1", "127.0.0.3"} {
		before := testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonPeerDenied))
		if _, err := alloc.Connect(&net.TCPAddr{IP: net.ParseIP(denied), Port: 80}); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("Connect %s: %v, want 403", denied, err)
		}
		if testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonPeerDenied)) != before+1 {
			t.Errorf("Connect %s refusal not counted", denied)
		}
	}

	conn, err := alloc.DialTCP("tcp", nil, peerLn.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatalf("DialTCP allowed peer: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "echo hello" {
		t.Fatalf("read through TCP allocation: %q %v", buf[:n], err)
	}
}

// TestAllowEndpoint opens one loopback endpoint (an SFU's media port on
// the relay's host) and expects datagrams relayed to it, while the same
// IP's other ports get nothing.
func TestAllowEndpoint(t *testing.T) {
	open, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	s := startRelay(t, func(c *Config) {
		c.AllowEndpoints = []netip.AddrPort{netip.MustParseAddrPort(open.LocalAddr().String())}
	})
	pc, relayed := pionClientAlloc(t, s, "sfu-user")
	for range 5 {
		if _, err := relayed.WriteTo([]byte("to the closed port"), closed.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := relayed.WriteTo([]byte("to the sfu"), open.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = open.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, _, err := open.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "to the sfu" {
		t.Fatalf("open endpoint: %q %v", buf[:n], err)
	}
	// Everything sent before this request has been handled when it is
	// answered.
	if err := pc.CreatePermission(open.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.dropped.WithLabelValues(dropEndpointPort)); got != 5 {
		t.Errorf("endpoint_port drops = %v, want 5", got)
	}
	// Other loopback addresses stay refused.
	if err := pc.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil {
		t.Error("127.0.0.2 permitted")
	}
}

// TestSilentTCPClientDropped connects over TCP and sends nothing: the
// relay closes the connection after the first-frame timeout instead of
// holding it forever.
func TestSilentTCPClientDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10s first-frame timeout")
	}
	s := startRelay(t, nil)
	c, err := net.Dial("tcp", s.Addrs()[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // bounds a broken test only
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay sent something to a silent client")
	} else if time.Since(start) > 30*time.Second {
		t.Fatalf("connection held %v: %v", time.Since(start), err)
	}
}

// TestRotationOverTCP allocates over a TCP control connection with a
// credential signed by the second of two secrets: the relay must find the
// request in the TCP stream to pick the secret that verifies it.
func TestRotationOverTCP(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.Secrets = []string{"the-newer-secret-0123456789abcdef", testSecret} })
	for _, secret := range []string{"the-newer-secret-0123456789abcdef", testSecret} {
		ctrl, err := net.Dial("tcp", s.Addrs()[1].String())
		if err != nil {
			t.Fatal(err)
		}
		user, pass := RESTCredentials(secret, "tcp-rotation", time.Hour, time.Now())
		pc, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: s.Addrs()[1].String(), TURNServerAddr: s.Addrs()[1].String(),
			Conn: turn.NewSTUNConn(ctrl), Username: user, Password: pass, Realm: testRealm,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Listen(); err != nil {
			t.Fatal(err)
		}
		relayed, err := pc.Allocate()
		if err != nil {
			t.Errorf("allocate over TCP with secret %q: %v", secret[:8], err)
		} else {
			_ = relayed.Close()
		}
		pc.Close()
		_ = ctrl.Close()
	}
}
