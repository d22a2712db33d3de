package fuzz

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST passwords are HMAC-SHA1 by definition
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sotto-rtc/sotto/relay"
)

// The relay FuzzTURNMessage attacks: built by relay.New as cmd/turn builds
// it, with its real credential check (two REST secrets, so that the
// rotation path which decodes recorded requests runs, and a static user),
// peer policy and quotas, on loopback.
const (
	turnRealm      = "sotto.fuzz"
	turnOldSecret  = "fuzz-secret-old"
	turnNewSecret  = "fuzz-secret-new"
	turnStaticUser = "static"
	turnStaticPass = "static-password"
	// turnUsername is a REST username that expires in 2100, so seeds can
	// carry it.
	turnUsername = "4102444800:alice"
	// turnDeadline bounds every wait for the relay. Loopback answers in
	// microseconds; this only bounds a broken relay (or a stuck stream).
	turnDeadline = 5 * time.Second
	// maxUDPPayload is the largest datagram IPv4 loopback carries.
	maxUDPPayload = 65507
	// standingRenewal re-creates the standing allocation well before pion's
	// 10-minute default lifetime and channel binding run out.
	standingRenewal = 4 * time.Minute
)

// The TURN message types the harness sends and reads.
var (
	allocateRequest = stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	allocateSuccess = stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse)
	refreshRequest  = stun.NewType(stun.MethodRefresh, stun.ClassRequest)
)

// turnTarget is one relay and the sockets that talk to it, shared by every
// input of a fuzzing process.
type turnTarget struct {
	srv *relay.Server
	reg *prometheus.Registry
	udp *net.UDPAddr
	tcp string
	// client holds a standing allocation with channel 0x4000 bound to
	// peer; every input is sent from it, so that ChannelData and Send
	// indications reach the relayed socket.
	client *net.UDPConn
	// fresh has no allocation; a signed Allocate goes there, and is
	// deleted again after it.
	fresh *net.UDPConn
	// peer is the one loopback endpoint the relay may reach
	// (Config.AllowEndpoints); it echoes what it gets.
	peer *net.UDPConn

	mu         sync.Mutex
	nonce      stun.Nonce
	nonceAt    time.Time
	standing   bool
	standingAt time.Time
}

var (
	turnOnce   sync.Once
	turnShared *turnTarget
	turnErr    error
)

// theTURNTarget starts the relay the first time a process needs it. It
// runs until the process exits.
func theTURNTarget(t testing.TB) *turnTarget {
	t.Helper()
	turnOnce.Do(func() { turnShared, turnErr = newTURNTarget() })
	if turnErr != nil {
		t.Fatal(turnErr)
	}
	return turnShared
}

func newTURNTarget() (*turnTarget, error) {
	listen := func() (*net.UDPConn, error) {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}
	peer, err := listen()
	if err != nil {
		return nil, err
	}
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	reg := prometheus.NewRegistry()
	srv, err := relay.New(context.Background(), relay.Config{
		Realm:     turnRealm,
		Secrets:   []string{turnOldSecret, turnNewSecret},
		Users:     map[string]string{turnStaticUser: turnStaticPass},
		Listeners: []relay.Listener{{Network: relay.UDP, Address: "127.0.0.1:0"}, {Network: relay.TCP, Address: "127.0.0.1:0"}},
		// Relayed sockets bound to loopback cannot send off the host
		// (the kernel refuses a loopback source towards anywhere else),
		// so nothing the fuzzer permits leaves the machine.
		RelayIP:               netip.MustParseAddr("127.0.0.1"),
		AllowEndpoints:        []netip.AddrPort{peerAddr},
		MaxAllocationsPerUser: 2,
		MaxAllocations:        8,
		Bandwidth:             1 << 20,
		MaxLifetime:           time.Hour,
		Logger:                slog.New(slog.DiscardHandler),
		Registerer:            reg,
	})
	if err != nil {
		_ = peer.Close()
		return nil, err
	}
	h := &turnTarget{srv: srv, reg: reg, peer: peer, udp: srv.Addrs()[0].(*net.UDPAddr), tcp: srv.Addrs()[1].String()}
	for _, c := range []**net.UDPConn{&h.client, &h.fresh} {
		if *c, err = h.dial(); err != nil {
			return nil, err
		}
	}
	go h.echo()
	return h, nil
}

// dial opens a client socket to the relay's UDP listener.
func (h *turnTarget) dial() (*net.UDPConn, error) { return net.DialUDP("udp4", nil, h.udp) }

// redial replaces *c with a socket on a new port. An allocation is made
// on a 5-tuple no allocation had before: pion/turn v5.1.0 deletes a
// deleted allocation's 5-tuple a second time when its relay socket's
// read loop ends, which may be after a new allocation took the 5-tuple
// (allocation.packetConnHandler), and would take that one with it.
func (h *turnTarget) redial(t testing.TB, c **net.UDPConn) {
	t.Helper()
	n, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	_ = (*c).Close()
	*c = n
}

// echo sends every datagram the peer gets back to where it came from, so
// that the relay's path towards the client runs too.
func (h *turnTarget) echo() {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := h.peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = h.peer.WriteToUDPAddrPort(buf[:n], from)
	}
}

// restPassword is the TURN REST password of username under secret
// (coturn's use-auth-secret): base64(HMAC-SHA1(secret, username)).
func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// password is what a client that knows username's password signs with:
// the static user's, else the REST password under the newer secret.
func password(username string) string {
	if username == turnStaticUser {
		return turnStaticPass
	}
	return restPassword(turnNewSecret, username)
}

// signedAs is the credential a signed input was signed with.
type signedAs struct{ username, realm string }

// sign returns data as a client holding the key would send it: every
// NONCE replaced by one the relay issued, MESSAGE-INTEGRITY recomputed
// for the message's own USERNAME and REALM, FINGERPRINT recomputed (each
// only when it has its proper size; a truncated one is left for pion's
// check to meet with a valid nonce). It returns nil unless data is a STUN
// message carrying MESSAGE-INTEGRITY. The fuzzer can forge neither nonce
// nor integrity, so without this no mutant would get past the nonce
// check to the credential check, the peer policy or the allocation code.
func (h *turnTarget) sign(data []byte) ([]byte, *stun.Message, signedAs) {
	m := &stun.Message{Raw: append([]byte(nil), data...)}
	if m.Decode() != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return nil, nil, signedAs{}
	}
	var (
		user  stun.Username
		realm stun.Realm
	)
	_ = user.GetFrom(m)
	_ = realm.GetFrom(m)
	out := &stun.Message{Type: m.Type, TransactionID: m.TransactionID}
	out.WriteHeader()
	for _, a := range m.Attributes {
		switch a.Type {
		case stun.AttrNonce:
			out.Add(stun.AttrNonce, h.nonce)
		case stun.AttrMessageIntegrity:
			if len(a.Value) != sha1.Size {
				out.Add(a.Type, a.Value) // a truncated one meets pion's check as it is
				continue
			}
			_ = stun.NewLongTermIntegrity(user.String(), realm.String(), password(user.String())).AddTo(out)
		case stun.AttrFingerprint:
			if len(a.Value) != 4 {
				out.Add(a.Type, a.Value)
				continue
			}
			_ = stun.Fingerprint.AddTo(out)
		default:
			out.Add(a.Type, a.Value)
		}
	}
	return out.Raw, out, signedAs{user.String(), realm.String()}
}

// turnOutcome is what the relay did with one input.
type turnOutcome struct {
	// answer is the relay's answer to the input (to its signed form, when
	// it has one), nil if there was none.
	answer *stun.Message
	signed bool
}

// run sends data to the relay as a datagram (and signed, when it can be),
// proves the relay alive with a Binding on every socket used, deletes any
// allocation the input made, and sends data again on a TCP connection
// that the relay must end after the client's EOF.
func (h *turnTarget) run(t testing.TB, data []byte) turnOutcome {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.nonceAt) > 30*time.Minute { // pion's nonces last an hour
		h.refreshNonce(t)
	}
	if !h.standing || time.Since(h.standingAt) > standingRenewal {
		h.establish(t)
	}

	var out turnOutcome
	if len(data) <= maxUDPPayload {
		if _, err := h.client.Write(data); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	signed, sm, cred := h.sign(data)
	conn := h.client
	if signed != nil {
		out.signed = true
		if sm.Type == allocateRequest {
			conn = h.fresh
		}
		if len(signed) <= maxUDPPayload {
			if _, err := conn.Write(signed); err != nil {
				t.Fatalf("send signed: %v", err)
			}
		}
	}
	var txid [stun.TransactionIDSize]byte
	isSTUN := len(data) >= 20
	if isSTUN {
		copy(txid[:], data[8:20])
	}
	for _, c := range []*net.UDPConn{h.client, conn} {
		seen := h.alive(t, c)
		for _, m := range seen {
			if isSTUN && m.TransactionID == txid {
				out.answer = m
			}
		}
		if conn == h.client {
			break
		}
	}
	if signed != nil && sm.Type.Method == stun.MethodRefresh {
		h.standing = false // the input may have deleted or shortened it
	}
	if conn == h.fresh && out.answer != nil && out.answer.Type == allocateSuccess {
		h.deallocate(t, h.fresh, cred)
		h.redial(t, &h.fresh)
	}
	if n := h.srv.AllocationCount(); n > 1 {
		t.Fatalf("%d allocations open after an input; only the standing one may be", n)
	}
	h.stream(t, data)
	return out
}

// alive completes a Binding transaction on c and returns the STUN
// messages that arrived before its answer. The relay handles a
// listener's datagrams one after the other, so the answer also means
// that everything sent before it has been handled.
func (h *turnTarget) alive(t testing.TB, c *net.UDPConn) []*stun.Message {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	seen, resp, err := roundTrip(c, req)
	if err != nil {
		t.Fatalf("the relay no longer answers a Binding request: %v", err)
	}
	var mapped stun.XORMappedAddress
	if resp.Type != stun.BindingSuccess || mapped.GetFrom(resp) != nil ||
		mapped.String() != c.LocalAddr().String() {
		t.Fatalf("Binding answered with %v (mapped %v, want %v)", resp, mapped, c.LocalAddr())
	}
	return seen
}

// roundTrip sends req on c and waits for the message with its
// transaction ID, returning also every STUN message that came first.
func roundTrip(c *net.UDPConn, req *stun.Message) (seen []*stun.Message, resp *stun.Message, err error) {
	if _, err := c.Write(req.Raw); err != nil {
		return nil, nil, err
	}
	if err := c.SetReadDeadline(time.Now().Add(turnDeadline)); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 1<<16)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return seen, nil, fmt.Errorf("%s: %w", req.Type, err)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil {
			continue // ChannelData from the echoing peer
		}
		if m.TransactionID == req.TransactionID {
			return seen, m, nil
		}
		seen = append(seen, m)
	}
}

// request does one transaction of the harness's own, signed as the
// credential says, and fails unless the answer is a success.
func (h *turnTarget) request(t testing.TB, c *net.UDPConn, cred signedAs, method stun.Method, attrs ...stun.Setter) *stun.Message {
	t.Helper()
	for attempt := 0; ; attempt++ {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		setters = append(setters, usernameAttr(cred.username), stun.NewRealm(cred.realm), h.nonce,
			stun.NewLongTermIntegrity(cred.username, cred.realm, password(cred.username)), stun.Fingerprint)
		_, resp, err := roundTrip(c, stun.MustBuild(setters...))
		if err != nil {
			t.Fatalf("harness %s: %v", method, err)
		}
		var code stun.ErrorCodeAttribute
		switch {
		case resp.Type.Class == stun.ClassSuccessResponse:
			return resp
		case code.GetFrom(resp) == nil && code.Code == stun.CodeStaleNonce && attempt == 0:
			h.takeNonce(t, resp)
		default:
			t.Fatalf("harness %s as %q: answered %v (%v)", method, cred.username, resp.Type, code)
		}
	}
}

func (h *turnTarget) takeNonce(t testing.TB, resp *stun.Message) {
	t.Helper()
	var n stun.Nonce
	if err := n.GetFrom(resp); err != nil {
		t.Fatalf("challenge without a NONCE: %v", resp)
	}
	h.nonce, h.nonceAt = n, time.Now()
}

// refreshNonce asks for a new nonce with an unsigned Allocate, which
// the relay answers with a 401 challenge.
func (h *turnTarget) refreshNonce(t testing.TB) {
	t.Helper()
	_, resp, err := roundTrip(h.fresh, stun.MustBuild(stun.TransactionID, allocateRequest, requestedTransport(17)))
	if err != nil {
		t.Fatalf("unsigned Allocate: %v", err)
	}
	var code stun.ErrorCodeAttribute
	if code.GetFrom(resp) != nil || code.Code != stun.CodeUnauthorized {
		t.Fatalf("unsigned Allocate answered %v, want a 401 challenge", resp)
	}
	h.takeNonce(t, resp)
}

// establish (re)creates the standing allocation: UDP, channel 0x4000
// bound to the peer.
func (h *turnTarget) establish(t testing.TB) {
	t.Helper()
	cred := signedAs{turnUsername, turnRealm}
	h.deallocate(t, h.client, cred)
	h.redial(t, &h.client)
	h.request(t, h.client, cred, stun.MethodAllocate, requestedTransport(17))
	peer := h.peer.LocalAddr().(*net.UDPAddr)
	h.request(t, h.client, cred, stun.MethodChannelBind, channelNumber(0x4000),
		xorPeer{&stun.XORMappedAddress{IP: peer.IP, Port: peer.Port}})
	h.standing, h.standingAt = true, time.Now()
}

// deallocate deletes c's allocation, if it has one: pion answers a
// Refresh without an allocation with silence, so a Binding after it
// shows it handled.
func (h *turnTarget) deallocate(t testing.TB, c *net.UDPConn, cred signedAs) {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, refreshRequest, lifetimeZero{},
		usernameAttr(cred.username), stun.NewRealm(cred.realm), h.nonce,
		stun.NewLongTermIntegrity(cred.username, cred.realm, password(cred.username)), stun.Fingerprint)
	if _, err := c.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	h.alive(t, c)
}

// stream sends data on a new TCP connection, half-closes it, and fails
// unless the relay ends the connection too: a relay whose read loop is
// stuck on the stream never does.
func (h *turnTarget) stream(t testing.TB, data []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.tcp, turnDeadline)
	if err != nil {
		t.Fatalf("the relay no longer accepts TCP: %v", err)
	}
	tc := c.(*net.TCPConn)
	defer func() {
		_ = tc.SetLinger(0) // no TIME_WAIT per input
		_ = tc.Close()
	}()
	_ = tc.SetDeadline(time.Now().Add(turnDeadline))
	_, _ = tc.Write(data) // the relay may have closed already
	_ = tc.CloseWrite()
	if _, err := io.Copy(io.Discard, tc); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the relay did not end a %d-byte TCP stream within %v of the client's EOF: its read loop is stuck", len(data), turnDeadline)
		}
		// A reset is an end too: the relay closed with bytes unread.
	}
}

// requestedTransport is REQUESTED-TRANSPORT (17 is UDP).
type requestedTransport byte

func (p requestedTransport) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedTransport, []byte{byte(p), 0, 0, 0})
	return nil
}

// channelNumber is CHANNEL-NUMBER.
type channelNumber uint16

func (n channelNumber) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
	return nil
}

// usernameAttr is USERNAME of any length: pion's Username refuses to
// write more than 513 bytes, but the relay reads longer ones.
type usernameAttr string

func (u usernameAttr) AddTo(m *stun.Message) error {
	m.Add(stun.AttrUsername, []byte(u))
	return nil
}

// lifetimeZero is LIFETIME 0: delete the allocation.
type lifetimeZero struct{}

func (lifetimeZero) AddTo(m *stun.Message) error {
	m.Add(stun.AttrLifetime, []byte{0, 0, 0, 0})
	return nil
}

// checkSTUN is the parsing half: pion's STUN decoder and attribute
// getters on the raw bytes, as pion/turn runs them before anything of
// Sotto's, and the relay's peer policy on every XOR-PEER-ADDRESS. It
// fails on a broken property; pion may refuse whatever it likes.
func checkSTUN(t *testing.T, data []byte) {
	t.Helper()
	m := &stun.Message{Raw: append([]byte(nil), data...)}
	if err := m.Decode(); err != nil {
		return
	}
	if int(m.Length)+20 > len(data) || m.Length%4 != 0 {
		t.Fatalf("decoded a message of length %d from %d bytes", m.Length, len(data))
	}
	// Rebuilt from what was decoded, the message decodes to the same.
	re := &stun.Message{Type: m.Type, TransactionID: m.TransactionID}
	re.WriteHeader()
	for _, a := range m.Attributes {
		if int(a.Length) != len(a.Value) {
			t.Fatalf("%v: length %d, %d bytes of value", a.Type, a.Length, len(a.Value))
		}
		re.Add(a.Type, a.Value)
	}
	back := &stun.Message{Raw: re.Raw}
	if err := back.Decode(); err != nil {
		t.Fatalf("rebuilt message does not decode: %v", err)
	}
	if back.Type != m.Type || len(back.Attributes) != len(m.Attributes) {
		t.Fatalf("rebuilt message decodes as %v with %d attributes, not %v with %d", back.Type, len(back.Attributes), m.Type, len(m.Attributes))
	}
	for i, a := range back.Attributes {
		if !a.Equal(m.Attributes[i]) {
			t.Fatalf("attribute %d: %v, rebuilt %v", i, m.Attributes[i], a)
		}
	}
	// What pion/turn and the relay read off a request, none of which may
	// panic. (pion/stun enforces the text attributes' maximum sizes when
	// writing only: a 1000-byte USERNAME decodes, see the seed
	// username_1000_bytes.)
	var (
		user  stun.Username
		realm stun.Realm
		nonce stun.Nonce
		sw    stun.Software
		code  stun.ErrorCodeAttribute
		unk   stun.UnknownAttributes
		mapd  stun.MappedAddress
	)
	_ = user.GetFrom(m)
	_ = realm.GetFrom(m)
	_ = nonce.GetFrom(m)
	_ = sw.GetFrom(m)
	_ = code.GetFrom(m)
	_ = unk.GetFrom(m)
	_ = mapd.GetFrom(m)
	_ = stun.Fingerprint.Check(m)
	before := string(m.Raw)
	_ = stun.NewLongTermIntegrity(turnUsername, turnRealm, "x").Check(m)
	_ = stun.NewShortTermIntegrity("x").Check(m)
	if string(m.Raw) != before {
		t.Fatal("MESSAGE-INTEGRITY check left the message changed")
	}
	for _, a := range m.Attributes {
		switch a.Type {
		case stun.AttrXORPeerAddress, stun.AttrXORRelayedAddress, stun.AttrXORMappedAddress:
		default:
			continue
		}
		// pion reads the first of a type; read each on its own.
		one := &stun.Message{TransactionID: m.TransactionID}
		one.WriteHeader()
		one.Add(a.Type, a.Value)
		var xa stun.XORMappedAddress
		if xa.GetFromAs(one, a.Type) != nil {
			continue
		}
		if xa.Port < 0 || xa.Port > 0xffff {
			t.Fatalf("%v: port %d", a.Type, xa.Port)
		}
		if a.Type == stun.AttrXORPeerAddress {
			checkPeerPolicy(t, xa.IP)
		}
	}
}

// checkPeerPolicy: whatever the relay's policy lets through is outside
// every denied range in every spelling of the address, and an address
// gets the same verdict however it is spelled (IPv4, IPv4-mapped,
// IPv4-compatible): the coturn bypass was one address in another
// spelling.
func checkPeerPolicy(t *testing.T, ip net.IP) {
	t.Helper()
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return
	}
	u := relay.Unmap(a)
	if relay.Unmap(u) != u {
		t.Fatalf("Unmap(%v) = %v, and again %v", a, u, relay.Unmap(u))
	}
	// The relay's default policy, and one with an allow range and an own
	// address.
	defaultPolicy := relay.NewPeerPolicy(nil, nil)
	openedPolicy := relay.NewPeerPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		[]netip.Addr{netip.MustParseAddr("198.18.0.1")})
	spellings := []netip.Addr{a, u}
	if u.Is4() {
		b := u.As4()
		compat := netip.AddrFrom16([16]byte{12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		spellings = append(spellings, netip.AddrFrom16(u.As16()), compat)
	}
	for _, p := range []*relay.PeerPolicy{defaultPolicy, openedPolicy} {
		err := p.Check(a)
		if err != nil {
			var pd *relay.PeerDeniedError
			if !errors.As(err, &pd) || pd.Reason == "" || pd.Addr != u {
				t.Fatalf("Check(%v) refused with %v, want a *PeerDeniedError for %v with a reason", a, err, u)
			}
		}
		for _, s := range spellings {
			if (p.Check(s) == nil) != (err == nil) {
				// IPv4-compatible 0.0.0.0 and 0.0.0.1 are IPv6's :: and
				// ::1, denied on their own account.
				if s.Is6() && (s == netip.IPv6Unspecified() || s == netip.IPv6Loopback()) {
					continue
				}
				t.Fatalf("%v and %v (the same peer) get different verdicts: %v, %v", a, s, err, p.Check(s))
			}
		}
		if err != nil || p == openedPolicy {
			continue
		}
		for _, s := range spellings {
			for _, d := range relay.DefaultDenyList() {
				if d.Contains(s) {
					t.Fatalf("%v allowed, but %v is in the denied %v", a, s, d)
				}
			}
		}
		if u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsMulticast() || u.IsUnspecified() || u.IsInterfaceLocalMulticast() {
			t.Fatalf("%v (%v) allowed", a, u)
		}
	}
}

// validTURN are well-formed messages of a client: the mutator's start.
// Signed ones carry a placeholder NONCE and MESSAGE-INTEGRITY, which
// sign replaces.
func validTURN(t testing.TB) [][]byte {
	t.Helper()
	signed := func(setters ...stun.Setter) []byte {
		setters = append([]stun.Setter{stun.TransactionID}, setters...)
		setters = append(setters, stun.NewUsername(turnUsername), stun.NewRealm(turnRealm),
			stun.NewNonce("nonce"), stun.NewLongTermIntegrity(turnUsername, turnRealm, "placeholder"), stun.Fingerprint)
		return stun.MustBuild(setters...).Raw
	}
	peer := &stun.XORMappedAddress{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	return [][]byte{
		stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw,
		stun.MustBuild(stun.TransactionID, allocateRequest, requestedTransport(17)).Raw,
		signed(allocateRequest, requestedTransport(17)),
		signed(refreshRequest, lifetimeZero{}),
		signed(stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), xorPeer{peer}),
		signed(stun.NewType(stun.MethodChannelBind, stun.ClassRequest), channelNumber(0x4001), xorPeer{peer}),
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), xorPeer{peer},
			dataAttr("hello")).Raw,
		{0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}, // ChannelData on the standing channel
	}
}

// xorPeer writes an XOR-MAPPED-ADDRESS as XOR-PEER-ADDRESS.
type xorPeer struct{ a *stun.XORMappedAddress }

func (p xorPeer) AddTo(m *stun.Message) error { return p.a.AddToAs(m, stun.AttrXORPeerAddress) }

// dataAttr is DATA.
type dataAttr string

func (d dataAttr) AddTo(m *stun.Message) error {
	m.Add(stun.AttrData, []byte(d))
	return nil
}

// FuzzTURNMessage sends arbitrary bytes to a running relay (relay.New,
// with its credential check, peer policy and quotas) as a UDP datagram
// from a client holding an allocation, again signed with a valid nonce
// and key when the bytes are a STUN message carrying MESSAGE-INTEGRITY,
// and as a TCP stream. The relay must answer a Binding request on every
// socket afterwards, keep no allocation the input made, and end the TCP
// stream when the client does. The bytes also go through pion's STUN
// decoder and getters directly, and every XOR-PEER-ADDRESS through the
// relay's peer policy (checkSTUN).
func FuzzTURNMessage(f *testing.F) {
	for _, m := range validTURN(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSTUN(t, data)
		h := theTURNTarget(t)
		h.run(t, data)
	})
}

// refusals reads sotto_turn_refusals_total by reason.
func (h *turnTarget) refusals(t testing.TB) map[string]float64 {
	t.Helper()
	return h.counters(t, "sotto_turn_refusals_total")
}

// dropped reads sotto_turn_dropped_packets_total by reason.
func (h *turnTarget) dropped(t testing.TB) map[string]float64 {
	t.Helper()
	return h.counters(t, "sotto_turn_dropped_packets_total")
}

func (h *turnTarget) counters(t testing.TB, name string) map[string]float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelValue(m, "reason")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestTURNSeeds: every hostile TURN seed gets the answer its name says
// from the running relay, and the refusal or drop it should count. The
// code is the relay's answer to the datagram (to its signed form, for a
// seed carrying MESSAGE-INTEGRITY): 0 for none, 200 for success. Every
// seed also goes through FuzzTURNMessage's checks (checkSTUN, and run's
// liveness, allocation and TCP checks) here.
func TestTURNSeeds(t *testing.T) {
	type want struct {
		code    int
		refusal string // sotto_turn_refusals_total reason counted
		dropped string // sotto_turn_dropped_packets_total reason counted
	}
	none := want{}
	ok := want{code: 200}
	expect := map[string]want{
		"empty":                          none,
		"truncated_header":               none,
		"bad_magic_cookie":               none,
		"msg_length_not_multiple_of_4":   none,
		"msg_length_beyond_datagram":     none,
		"attr_length_overrun":            none,
		"datagram_1600_bytes":            none, // pion's inbound MTU is 1600: dropped unread
		"success_response_from_client":   none,
		"fingerprint_wrong":              ok,          // pion/turn does not check FINGERPRINT
		"unknown_comprehension_required": {code: 420}, // with UNKNOWN-ATTRIBUTES
		"nonce_missing":                  {code: 400},
		"integrity_truncated":            {code: 401, refusal: "forged"},
		"integrity_empty":                {code: 401, refusal: "forged"},
		"realm_wrong":                    {code: 401, refusal: "wrong_realm"},
		"username_expired":               {code: 401, refusal: "expired"},
		"username_expiry_overflow":       {code: 401, refusal: "unknown_user"},
		"username_negative_expiry":       {code: 401, refusal: "unknown_user"},
		"username_without_colon":         {code: 401, refusal: "unknown_user"},
		"username_expiry_only":           ok, // coturn's bare-expiry form; the whole username is the user
		"username_static_user":           ok,
		// pion/stun bounds USERNAME when writing only; signed by the
		// secret, a long one is a credential like any other.
		"username_1000_bytes": ok,
		// RFC 6062 wants TCP allocations requested over TCP; pion makes
		// one over UDP too (still counted, bounded and policed).
		"allocate_tcp_transport_over_udp": ok,
		"refresh_lifetime_zero":           ok, // deletes the standing allocation; run makes it again
		"peer_address_family_3":           {code: 400},
		// pion refuses an IPv6 peer on an IPv4 allocation before asking
		// the policy; checkSTUN puts the policy to these addresses.
		"create_permission_ipv4_compatible_metadata": {code: 443},
		"create_permission_ipv6_address_4_bytes":     {code: 443},
		"create_permission_to_private":               {code: 403, refusal: "peer_denied"},
		"channel_bind_to_metadata":                   {code: 403, refusal: "peer_denied"},
		"channel_bind_to_mapped_private":             {code: 403, refusal: "peer_denied"},
		// pion binds a channel number outside 0x4000-0x7FFF (RFC 8656:
		// 400); no ChannelData can use it.
		"channel_bind_number_out_of_range": ok,
		"channel_data_length_overrun":      none,
		"channel_data_unbound_channel":     none,
		"send_to_closed_endpoint_port":     {dropped: "endpoint_port"},
		// Over UDP these are a length beyond the datagram; over TCP pion
		// sizes the first three as 0 and spins (the relay refuses the
		// stream, see TestPionTURNDefects), the last as 19 bytes.
		"stream_stun_length_ffec":         none,
		"stream_channel_data_length_fffc": none,
		"stream_channel_data_length_fff9": none,
		"stream_stun_length_ffff":         none,
	}
	seeds := readCorpus(t, "FuzzTURNMessage")
	checkSeedTable(t, "FuzzTURNMessage", seeds, expect)
	h := theTURNTarget(t)
	for name, data := range seeds {
		w, found := expect[name]
		if !found {
			continue
		}
		t.Run(name, func(t *testing.T) {
			checkSTUN(t, data)
			refused, dropped := h.refusals(t), h.dropped(t)
			out := h.run(t, data)
			code := 0
			if out.answer != nil {
				code = 200
				var ec stun.ErrorCodeAttribute
				if ec.GetFrom(out.answer) == nil {
					code = int(ec.Code)
				}
			}
			if code != w.code {
				t.Errorf("answer %d, want %d (%v)", code, w.code, out.answer)
			}
			checkCounted(t, "refusal", refused, h.refusals(t), w.refusal)
			checkCounted(t, "drop", dropped, h.dropped(t), w.dropped)
		})
	}
}

// checkCounted fails unless exactly the counter of reason (none when "")
// moved between before and after, by one.
func checkCounted(t *testing.T, what string, before, after map[string]float64, reason string) {
	t.Helper()
	for r, v := range after {
		d := v - before[r]
		switch {
		case r == reason && d != 1:
			t.Errorf("%s %q counted %v times, want once", what, r, d)
		case r != reason && d != 0:
			t.Errorf("%s %q counted %v times, want none", what, r, d)
		}
	}
}

// TestPionTURNDefects shows, against pion/turn v5.1.0, the defect the
// relay's TCP framing guards against (relay's tapConn), so that a pion
// upgrade that fixes it is noticed: pion's STUNConn sizes frames in 16
// bits, and a STUN length of 0xFFEC or a ChannelData length of 0xFFF9 to
// 0xFFFC wraps to a frame of 0 bytes, which ReadFrom returns forever
// without reading again; the server's read loop then spins a core for
// good. Each input is a FuzzTURNMessage seed.
func TestPionTURNDefects(t *testing.T) {
	seeds := readCorpus(t, "FuzzTURNMessage")
	for _, tt := range []struct {
		seed string
		size int // the frame size pion reads
	}{
		{"stream_stun_length_ffec", 0},
		{"stream_channel_data_length_fffc", 0},
		{"stream_channel_data_length_fff9", 0},
		{"stream_stun_length_ffff", 19},
	} {
		t.Run(tt.seed, func(t *testing.T) {
			client, server := net.Pipe()
			defer func() { _ = client.Close(); _ = server.Close() }()
			go func() { _, _ = client.Write(seeds[tt.seed]) }()
			conn := turn.NewSTUNConn(server)
			_ = server.SetReadDeadline(time.Now().Add(turnDeadline))
			buf := make([]byte, 1600)
			for range 3 { // the same frame again and again, for a 0
				n, _, err := conn.ReadFrom(buf)
				if err != nil || n != tt.size {
					t.Fatalf("pion read a %d-byte frame (%v); pion's framing changed: update relay's tapConn and docs/FUZZING.md", n, err)
				}
				if tt.size != 0 {
					break
				}
			}
		})
	}
}
