package relay

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testRealm  = "sotto.test"
	testSecret = "test-turn-secret-0123456789abcdef"
)

func testLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startRelay runs a relay on loopback (UDP and TCP, free ports) with the
// test secret; edit changes the configuration first.
func startRelay(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Realm:     testRealm,
		Secrets:   []string{testSecret},
		Listeners: []Listener{{Network: UDP, Address: "127.0.0.1:0"}, {Network: TCP, Address: "127.0.0.1:0"}},
		RelayIP:   netip.MustParseAddr("127.0.0.1"),
		Logger:    testLogger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func restClient(t *testing.T, s *Server, identity string) *rawClient {
	t.Helper()
	user, pass := RESTCredentials(testSecret, identity, time.Hour, time.Now())
	return dialRaw(t, s.Addrs()[0], user, pass)
}

// wireIP parses a test address; an address written with a colon stays
// 16 bytes long, so it goes on the wire as IPv6 even when IPv4-mapped.
func wireIP(s string) net.IP {
	ip := net.ParseIP(s)
	if !strings.Contains(s, ":") {
		return ip.To4()
	}
	return ip
}

func TestUnmap(t *testing.T) {
	tests := []struct{ in, want string }{
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::ffff:169.254.169.254", "169.254.169.254"},
		{"::127.0.0.1", "127.0.0.1"}, // IPv4-compatible
		{"::a9fe:a9fe", "169.254.169.254"},
		{"::", "::"},
		{"::1", "::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"8.8.8.8", "8.8.8.8"},
	}
	for _, tt := range tests {
		if got := Unmap(netip.MustParseAddr(tt.in)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("Unmap(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPeerPolicy(t *testing.T) {
	p := NewPeerPolicy(
		[]netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("::ffff:192.168.7.0/120")},
		[]netip.Addr{netip.MustParseAddr("198.18.0.1")},
	)
	tests := []struct {
		addr   string
		reason string // "" when allowed
	}{
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::127.0.0.1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "private"},
		{"100.127.255.255", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"169.254.169.254", "link-local"},
		{"::ffff:169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.1", "documentation"},
		{"2001:db8::1", "documentation"},
		{"198.18.0.1", "relay address"},
		{"::ffff:198.18.0.1", "relay address"},
		// Opened by the allow list, exactly and no further.
		{"10.1.2.3", ""},
		{"::ffff:10.1.2.3", ""},
		{"10.1.3.1", "private"},
		{"192.168.7.9", ""},
		{"192.168.8.9", "private"},
		// The internet.
		{"8.8.8.8", ""},
		{"2606:4700::1111", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
	}
	for _, tt := range tests {
		err := p.Check(netip.MustParseAddr(tt.addr))
		var got string
		if err != nil {
			pe, ok := err.(*PeerDeniedError)
			if !ok {
				t.Fatalf("%s: error %T, want *PeerDeniedError", tt.addr, err)
			}
			got = pe.Reason
		}
		if got != tt.reason {
			t.Errorf("Check(%s): reason %q, want %q", tt.addr, got, tt.reason)
		}
	}
}

// TestDeniedPeersRefused sends CreatePermission and ChannelBind for every
// class of the default deny list to a relay started with nothing but a
// secret, in the forms an attacker would try, and expects each refused.
func TestDeniedPeersRefused(t *testing.T) {
	s := startRelay(t, nil)
	c := restClient(t, s, "mallory")
	if err := c.allocate(); err != nil {
		t.Fatalf("allocate: %v", err)
	}
	tests := []struct {
		peer string
		// pion refuses an IPv6 peer on an IPv4 allocation with 443
		// before any policy runs, and an IPv4-compatible address
		// (::127.0.0.1) is IPv6 on the wire; TestPeerPolicy covers how
		// the policy judges those on an IPv6 allocation. Every other
		// address, IPv4-mapped ones included (pion takes them as IPv4),
		// reaches the policy, whose refusal is 403 on both (pion's
		// ChannelBind says 401; the relay corrects it).
		v6only bool
	}{
		{peer: "0.0.0.0"}, {peer: "0.0.0.1"}, {peer: "127.0.0.1"}, {peer: "127.1.2.3"},
		{peer: "::ffff:127.0.0.1"}, {peer: "::127.0.0.1", v6only: true}, {peer: "::ffff:169.254.169.254"}, {peer: "::ffff:10.0.0.1"},
		{peer: "10.0.0.1"}, {peer: "172.16.5.4"}, {peer: "192.168.0.1"}, {peer: "100.64.0.1"},
		{peer: "169.254.169.254"}, {peer: "224.0.0.251"}, {peer: "240.0.0.1"}, {peer: "255.255.255.255"},
		{peer: "192.0.2.10"}, {peer: "198.51.100.10"}, {peer: "203.0.113.10"},
		{peer: "::", v6only: true}, {peer: "::1", v6only: true}, {peer: "fc00::1", v6only: true},
		{peer: "fe80::1", v6only: true}, {peer: "ff02::1", v6only: true}, {peer: "2001:db8::1", v6only: true},
	}
	for i, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			before := testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonPeerDenied))
			peer := peerAddr{ip: wireIP(tt.peer), port: 5000 + i}
			wantPerm, wantBind := 403, 403
			if tt.v6only {
				wantPerm, wantBind = 443, 443
			}
			if _, err := c.do(stun.MethodCreatePermission, peer); errorCode(err) != wantPerm {
				t.Errorf("CreatePermission %s: %v, want error %d", tt.peer, err, wantPerm)
			}
			if _, err := c.do(stun.MethodChannelBind, channelNumber(0x4000+i), peer); errorCode(err) != wantBind {
				t.Errorf("ChannelBind %s: %v, want error %d", tt.peer, err, wantBind)
			}
			wantCount := 2.0
			if tt.v6only {
				wantCount = 0
			}
			if got := testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonPeerDenied)) - before; got != wantCount {
				t.Errorf("peer_denied refusals grew by %v, want %v", got, wantCount)
			}
		})
	}

	// The same through pion's own client, as an ordinary library user.
	pc := pionClient(t, s, "mallory-2")
	for _, p := range []string{"127.0.0.1", "0.0.0.0", "169.254.169.254", "10.0.0.1", "192.168.1.1"} {
		if err := pc.CreatePermission(&net.UDPAddr{IP: net.ParseIP(p), Port: 9}); err == nil {
			t.Errorf("pion client: CreatePermission %s succeeded", p)
		}
	}
}

// pionClient returns a pion TURN client with a UDP allocation on s.
func pionClient(t *testing.T, s *Server, identity string) *turn.Client {
	t.Helper()
	pc, _ := pionClientAlloc(t, s, identity)
	return pc
}

func pionClientAlloc(t *testing.T, s *Server, identity string) (*turn.Client, net.PacketConn) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	user, pass := RESTCredentials(testSecret, identity, time.Hour, time.Now())
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.Addrs()[0].String(), TURNServerAddr: s.Addrs()[0].String(),
		Conn: conn, Username: user, Password: pass, Realm: testRealm,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { _ = relayed.Close(); c.Close(); _ = conn.Close() })
	return c, relayed
}

// TestAllowPeerRelays opens loopback with an allow range and relays
// datagrams both ways between a pion client and a peer socket, through
// Send indications first and the channel pion binds next.
func TestAllowPeerRelays(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	pc, relayed := pionClientAlloc(t, s, "alice")
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	buf := make([]byte, 1500)
	for i := range 20 {
		msg := []byte("ping " + string(rune('a'+i)))
		if _, err := relayed.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatalf("relay write %d: %v", i, err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := peer.ReadFrom(buf)
		if err != nil || string(buf[:n]) != string(msg) {
			t.Fatalf("peer read %d: %q %v", i, buf[:n], err)
		}
		if _, err := peer.WriteTo([]byte("pong"), from); err != nil {
			t.Fatal(err)
		}
		_ = relayed.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err = relayed.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "pong" {
			t.Fatalf("client read %d: %q %v", i, buf[:n], err)
		}
	}
	// The relay counts a datagram after sending it, so the peer may have
	// it first; a request on the client's socket is answered only after
	// everything before it on that socket has been handled.
	if err := pc.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.packets.WithLabelValues(toPeer)); got < 20 {
		t.Errorf("to_peer packets = %v, want at least 20", got)
	}
	if got := testutil.ToFloat64(s.m.bytes.WithLabelValues(fromPeer)); got < 80 {
		t.Errorf("from_peer bytes = %v, want at least 80", got)
	}
	if got := testutil.ToFloat64(s.m.allocations); got != 1 {
		t.Errorf("allocations gauge = %v, want 1", got)
	}
}

func TestCredentials(t *testing.T) {
	now := time.Now()
	s := startRelay(t, func(c *Config) {
		c.Secrets = []string{"new-secret-new-secret-0123456789", testSecret} // rotation: both accepted
		c.Users = map[string]string{"static": "static-password"}
	})
	expiredUser, expiredPass := RESTCredentials(testSecret, "alice", -time.Minute, now)
	goodUser, goodPass := RESTCredentials(testSecret, "alice", time.Hour, now)
	newUser, newPass := RESTCredentials("new-secret-new-secret-0123456789", "bob", time.Hour, now)
	_, otherPass := RESTCredentials("not-the-secret-0123456789abcdef", "alice", time.Hour, now)
	tests := []struct {
		name       string
		user, pass string
		realm      string // "" takes the server's
		noAuth     bool
		wantCode   int
		wantReason string
	}{
		{name: "unauthenticated", user: goodUser, pass: goodPass, noAuth: true, wantCode: 401},
		{name: "valid, old secret", user: goodUser, pass: goodPass},
		{name: "valid, new secret", user: newUser, pass: newPass},
		{name: "static user", user: "static", pass: "static-password"},
		{name: "expired", user: expiredUser, pass: expiredPass, wantCode: 401, wantReason: reasonExpired},
		{name: "forged", user: goodUser, pass: otherPass, wantCode: 401, wantReason: reasonForged},
		{name: "wrong realm", user: goodUser, pass: goodPass, realm: "evil.example", wantCode: 401, wantReason: reasonWrongRealm},
		{name: "static wrong password", user: "static", pass: "guess", wantCode: 401, wantReason: reasonForged},
		{name: "unknown user", user: "nobody", pass: "x", wantCode: 401, wantReason: reasonUnknownUser},
		{name: "not a number", user: "soon:alice", pass: "x", wantCode: 401, wantReason: reasonUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.wantReason != "" {
				before = testutil.ToFloat64(s.m.refusals.WithLabelValues(tt.wantReason))
			}
			c := dialRaw(t, s.Addrs()[0], tt.user, tt.pass)
			c.realm, c.noAuth = tt.realm, tt.noAuth
			resp, err := c.do(stun.MethodAllocate, requestedUDP{})
			if got := errorCode(err); got != tt.wantCode || (err != nil && got == 0) {
				t.Fatalf("allocate: %v, want code %d", err, tt.wantCode)
			}
			if tt.wantCode == 401 {
				// RFC 8489 section 9.2.4: a 401 names the realm and a nonce
				// to retry with.
				var r stun.Realm
				var n stun.Nonce
				if r.GetFrom(resp) != nil || r.String() != testRealm || n.GetFrom(resp) != nil {
					t.Errorf("401 without REALM %q and NONCE: %v", testRealm, resp)
				}
			}
			if tt.wantReason != "" {
				if got := testutil.ToFloat64(s.m.refusals.WithLabelValues(tt.wantReason)) - before; got != 1 {
					t.Errorf("%s refusals grew by %v, want 1", tt.wantReason, got)
				}
			}
		})
	}
}

// TestQuota fills the per-user and the total allocation quotas and
// expects 486 beyond them, and a slot back when an allocation ends.
func TestQuota(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.MaxAllocationsPerUser = 2; c.MaxAllocations = 3 })
	a1, a2, a3 := restClient(t, s, "alice"), restClient(t, s, "alice"), restClient(t, s, "alice")
	for _, c := range []*rawClient{a1, a2} {
		if err := c.allocate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a3.allocate(); errorCode(err) != 486 {
		t.Fatalf("third allocation of one user: %v, want 486", err)
	}
	b1, b2 := restClient(t, s, "bob"), restClient(t, s, "bob")
	if err := b1.allocate(); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if err := b2.allocate(); errorCode(err) != 486 {
		t.Fatalf("fourth allocation in total: %v, want 486", err)
	}
	if got := testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonQuotaUser)); got != 1 {
		t.Errorf("quota_user refusals = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.refusals.WithLabelValues(reasonQuotaTotal)); got != 1 {
		t.Errorf("quota_total refusals = %v, want 1", got)
	}
	// Deleting an allocation (Refresh with lifetime 0) gives its slot back.
	if _, err := a1.do(stun.MethodRefresh, lifetime(0)); err != nil {
		t.Fatalf("refresh 0: %v", err)
	}
	if err := b2.allocate(); err != nil {
		t.Fatalf("after a deletion: %v", err)
	}
}

type lifetime uint32

func (l lifetime) AddTo(m *stun.Message) error {
	m.Add(stun.AttrLifetime, []byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)})
	return nil
}
