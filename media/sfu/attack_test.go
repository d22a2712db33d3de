package sfu

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// The live attack: a peer joins like any participant, completes ICE and
// DTLS, publishes a track and subscribes to the others, and then sends
// hostile RTP and RTCP through its SRTP sessions while three honest peers
// hold a call on the same SFU.
//
// pion's writers cannot produce hostile bytes (its SRTP writer parses and
// re-marshals every RTP header, its RTCP writer marshals structs), so the
// hostile peer encrypts them itself: it learns its own DTLS secrets from
// its pion stack (the key log gives the master secret and client random,
// the ServerHello hook the server random), derives the SRTP keys as RFC
// 5764 says, and writes the protected packets from its ICE socket. To the
// SFU they are indistinguishable from what a hostile browser would send.

const (
	hostileRTP        = 5000 // to the publisher connection, on the hostile track's SSRC
	hostileRTCPPub    = 2500 // to the publisher connection
	hostileRTCPSub    = 2500 // to the subscriber connection, about the tracks it receives
	hostilePerTick    = 10   // packets per 5 ms: 2000 packets/s, load shaping only
	postAttackPackets = 200  // honest packets each flow must carry after the attack
	maxLossFraction   = 0.01
)

// keyTap learns one DTLS handshake's secrets from the hostile peer's own
// pion stack, where the peer is the DTLS server, and exports keying
// material from them as pion/dtls's State.ExportKeyingMaterial does on the
// server side.
type keyTap struct {
	mu           sync.Mutex
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
}

// Write receives pion/dtls's key log ("CLIENT_RANDOM <random> <secret>").
func (k *keyTap) Write(p []byte) (int, error) {
	fields := strings.Fields(string(p))
	if len(fields) != 3 || fields[0] != "CLIENT_RANDOM" {
		return len(p), nil
	}
	cr, err1 := hex.DecodeString(fields[1])
	ms, err2 := hex.DecodeString(fields[2])
	if err1 != nil || err2 != nil {
		return 0, errors.New("key log line does not decode")
	}
	k.mu.Lock()
	k.clientRandom, k.masterSecret = cr, ms
	k.mu.Unlock()
	return len(p), nil
}

func (k *keyTap) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = r[:]
	k.mu.Unlock()
	return &m
}

// ExportKeyingMaterial is the RFC 5705 exporter: the TLS 1.2 PRF with the
// hash of the cipher suite hostileAPI forces (SHA-256), seeded with the
// label and both randoms.
func (k *keyTap) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.masterSecret == nil || k.serverRandom == nil {
		return nil, errors.New("the handshake was not seen")
	}
	if len(context) != 0 {
		return nil, errors.New("exporter context is not supported")
	}
	seed := append(append([]byte(label), k.clientRandom...), k.serverRandom...)
	return prf.PHash(k.masterSecret, seed, length, sha256.New)
}

// srtpContext returns an SRTP context keyed as the peer's own pion session
// is, for what the peer sends.
func (k *keyTap) srtpContext(t *testing.T) *srtp.Context {
	t.Helper()
	cfg := srtp.Config{Profile: srtp.ProtectionProfileAes128CmHmacSha1_80}
	if err := cfg.ExtractSessionKeysFromDTLS(k, false); err != nil {
		t.Fatalf("derive SRTP keys: %v", err)
	}
	ctx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// hostileAPI builds one of the hostile peer's WebRTC stacks: a client like
// the others, but on a UDP socket the test holds, always the DTLS server,
// with one cipher suite and one SRTP profile, and its secrets tapped.
func hostileAPI(t *testing.T, tap *keyTap) (*webrtc.API, net.PacketConn) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, conn)
	t.Cleanup(func() { _ = mux.Close() })
	me, err := newMediaEngine(true)
	if err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICEUDPMux(mux)
	se.SetDTLSKeyLogWriter(tap)
	se.SetDTLSServerHelloMessageHook(tap.serverHello)
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		t.Fatal(err)
	}
	se.SetDTLSCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return api, conn
}

// hostileLink is one of the hostile peer's connections as the attack uses
// it: its socket, the SFU's address on it, and its SRTP keys.
type hostileLink struct {
	conn net.PacketConn
	sfu  net.Addr
	ctx  *srtp.Context
}

// hostileTap is one hostile connection's socket and key tap.
type hostileTap struct {
	tap  keyTap
	conn net.PacketConn
}

// hostileTaps are the hostile peer's two.
type hostileTaps struct{ pub, sub *hostileTap }

// joinHostile joins a participant whose connections the test can tap:
// otherwise a client like the others, publishing and subscribing.
func joinHostile(t *testing.T, s *SFU, sid string) (*testClient, hostileTaps) {
	t.Helper()
	taps := hostileTaps{pub: &hostileTap{}, sub: &hostileTap{}}
	var pubAPI, subAPI *webrtc.API
	pubAPI, taps.pub.conn = hostileAPI(t, &taps.pub.tap)
	subAPI, taps.sub.conn = hostileAPI(t, &taps.sub.tap)
	c := joinWith(t, s, ParticipantConfig{Room: "room", SID: sid, CanPublish: true, CanSubscribe: true, AutoSubscribe: true}, pubAPI, subAPI)
	return c, taps
}

// link waits for pc, the connection tapped by h, to come up and returns
// the means to send on it.
func (h *hostileTap) link(t *testing.T, pc *webrtc.PeerConnection) *hostileLink {
	t.Helper()
	conn, tap := h.conn, &h.tap
	waitFor(t, "the hostile connection to come up", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no selected candidate pair: %v", err)
	}
	tap.mu.Lock()
	sawServerHello := tap.serverRandom != nil
	tap.mu.Unlock()
	if !sawServerHello {
		t.Fatal("the hostile peer was not the DTLS server; its keys cannot be derived")
	}
	return &hostileLink{
		conn: conn,
		sfu:  &net.UDPAddr{IP: net.ParseIP(pair.Remote.Address), Port: int(pair.Remote.Port)},
		ctx:  tap.srtpContext(t),
	}
}

func (l *hostileLink) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := l.conn.WriteTo(b, l.sfu); err != nil {
		t.Fatalf("hostile write: %v", err)
	}
}

// sendRTP protects and sends one RTP packet, or sends it as it is when
// pion/srtp cannot even parse its header (the SFU's SRTP layer then drops
// it); it reports whether the packet was protected.
func (l *hostileLink) sendRTP(t *testing.T, plain []byte) bool {
	t.Helper()
	enc, err := l.ctx.EncryptRTP(nil, plain, nil)
	if err != nil {
		l.write(t, plain)
		return false
	}
	l.write(t, enc)
	return true
}

// sendRTCP protects and sends one RTCP datagram, or sends it as it is.
func (l *hostileLink) sendRTCP(t *testing.T, plain []byte) bool {
	t.Helper()
	enc, err := l.ctx.EncryptRTCP(nil, plain, nil)
	if err != nil {
		l.write(t, plain)
		return false
	}
	l.write(t, enc)
	return true
}

// sendCounts counts what the attack sent on one path: protected with the
// real keys, or sent as it is because pion/srtp cannot parse its header.
type sendCounts struct{ protected, raw int }

func (c *sendCounts) add(protected bool) {
	if protected {
		c.protected++
	} else {
		c.raw++
	}
}

// readCorpusDir reads the seeds of one of fuzz/'s targets.
func readCorpusDir(t *testing.T, target string) [][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "fuzz", "testdata", "fuzz", target, "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s seeds: %v", target, err)
	}
	sort.Strings(paths)
	var out [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		var lines []string
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, l)
			}
		}
		lit, ok := strings.CutPrefix(lines[len(lines)-1], "[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		s, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a []byte seed", p)
		}
		out = append(out, []byte(s))
	}
	return out
}

// retarget points a seed at SSRCs the SFU reads on a connection: every
// 32-bit word holding one of the corpus's SSRCs becomes one of targets.
// Otherwise pion/srtp would queue the packets for SSRCs nobody reads, and
// the attack would test pion's demux only.
func retarget(b []byte, targets []uint32, rng *rand.Rand) []byte {
	out := slices.Clone(b)
	for i := 0; i+4 <= len(out); i += 4 {
		switch binary.BigEndian.Uint32(out[i:]) {
		case 1, 2, 0x11111111, 0x22222222, 0x33333333, 0x44444444:
			binary.BigEndian.PutUint32(out[i:], targets[rng.IntN(len(targets))])
		}
	}
	return out
}

// mutate applies one deterministic mutation: bit flips, a truncation, a
// tweak of the 16-bit field at offset 2 (an RTCP length, an RTP sequence
// number), a random last byte (a padding count), or none (the seed as is).
func mutate(b []byte, rng *rand.Rand) []byte {
	out := slices.Clone(b)
	if len(out) == 0 {
		return out
	}
	switch rng.IntN(5) {
	case 0:
		for range 1 + rng.IntN(3) {
			out[rng.IntN(len(out))] ^= 1 << rng.IntN(8)
		}
	case 1:
		out = out[:rng.IntN(len(out))]
	case 2:
		if len(out) >= 4 {
			v := binary.BigEndian.Uint16(out[2:])
			binary.BigEndian.PutUint16(out[2:], v+uint16(rng.IntN(9))-4)
		}
	case 3:
		out[len(out)-1] = byte(rng.IntN(256))
	}
	return out
}

// flow is what one honest participant receives of another's track.
type flow struct {
	name string
	kind byte
	mu   sync.Mutex
	idx  []uint32 // payload indices in arrival order
	bad  int      // payloads that differ from what was sent
}

func (f *flow) consume(rt *remoteTrack) {
	for p := range rt.packets {
		f.mu.Lock()
		if len(p.payload) < 5 || string(p.payload) != string(testPayload(f.kind, binary.BigEndian.Uint32(p.payload))) {
			f.bad++
		} else {
			f.idx = append(f.idx, binary.BigEndian.Uint32(p.payload))
		}
		f.mu.Unlock()
	}
}

func (f *flow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.idx)
}

// lossSince returns how many packets arrived after the first from, and the
// fraction of the sequence they span that never arrived.
func (f *flow) lossSince(from int) (got int, loss float64, bad int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	window := f.idx[from:]
	if len(window) == 0 {
		return 0, 1, f.bad
	}
	seen := make(map[uint32]bool, len(window))
	lo, hi := window[0], window[0]
	for _, i := range window {
		seen[i] = true
		lo, hi = min(lo, i), max(hi, i)
	}
	span := int(hi-lo) + 1
	return len(window), float64(span-len(seen)) / float64(span), f.bad
}

// refusedByDirection sums sotto_strict_refused_total per direction, and
// lists the rules with refusals.
func refusedByDirection(t *testing.T, g prometheus.Gatherer) (map[string]float64, []string) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	var rules []string
	for _, mf := range mfs {
		if mf.GetName() != "sotto_strict_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var dir, rule string
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "direction" {
					dir = lp.GetValue()
				} else {
					rule = lp.GetValue()
				}
			}
			if v := m.GetCounter().GetValue(); v > 0 {
				sums[dir] += v
				rules = append(rules, fmt.Sprintf("%s/%s=%v", dir, rule, v))
			}
		}
	}
	sort.Strings(rules)
	return sums, rules
}

// rrWithExtension is a receiver report about ssrc with four bytes of
// profile extension: pion/rtcp parses it, and its marshaller (which
// pion/srtp runs on every packet before the interceptors) writes it back
// with a length field that leaves the extension out, so the strict check
// must refuse what reaches it. It proves the SRTCP keys work.
func rrWithExtension(ssrc uint32) []byte {
	b := []byte{0x81, 201, 0, 8, 0x5e, 0xed, 0, 1} // 36 bytes, extension included
	report := make([]byte, 24)
	binary.BigEndian.PutUint32(report, ssrc)
	return append(append(b, report...), 0xde, 0xad, 0xbe, 0xef)
}

func TestHostilePeerDuringCall(t *testing.T) {
	if testing.Short() {
		t.Skip("the live attack takes several seconds")
	}
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg})

	// The honest call: three peers, each publishing Opus and receiving the
	// other two.
	var honest []*testClient
	for _, sid := range []string{"PA_alice", "PA_bob", "PA_carol"} {
		c := join(t, s, ParticipantConfig{SID: sid, CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
		c.publish("audio", "mic")
		c.waitPublished(t)
		honest = append(honest, c)
	}

	// The hostile peer joins the same way, publishes a track and
	// subscribes to the call.
	mallory, taps := joinHostile(t, s, "PA_mallory")
	hostileTrack := mallory.publish("audio", "mic")
	mallory.waitPublished(t)

	// Every honest peer receives the other two and mallory's track.
	var flows []*flow
	var malloryAt []*remoteTrack
	for _, c := range honest {
		for _, rt := range c.waitTracks(t, 3) {
			owner := rt.track.StreamID()
			if owner == "PA_mallory" {
				malloryAt = append(malloryAt, rt)
				continue
			}
			f := &flow{name: owner + "->" + c.cfg.SID, kind: 'a'}
			flows = append(flows, f)
			go f.consume(rt)
		}
	}
	if len(flows) != 6 {
		t.Fatalf("%d honest flows, want 6", len(flows))
	}
	// A subscriber sees a track once its first packet arrives, so mallory's
	// own writing stops only now: from here on her track carries only what
	// the attack sends.
	close(hostileTrack.stopWriting)
	var downtrackSSRCs []uint32
	for _, rt := range mallory.waitTracks(t, 3) {
		downtrackSSRCs = append(downtrackSSRCs, uint32(rt.track.SSRC()))
	}
	waitFor(t, "the call to flow", func() bool {
		for _, f := range flows {
			if f.count() < 50 {
				return false
			}
		}
		return true
	})

	pub := taps.pub.link(t, mallory.pub)
	sub := taps.sub.link(t, mallory.sub)
	trackSSRC := uint32(hostileTrack.sender.GetParameters().Encodings[0].SSRC)

	// The derived keys are the real ones: a well-formed packet protected
	// with them reaches the honest peers on mallory's track, and a hostile
	// RTCP packet on each connection reaches the strict check.
	seq := uint16(20000)
	marker := []byte("mallory's keys work")
	ok, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: wire.PayloadTypeOpus, SequenceNumber: seq, SSRC: trackSSRC}, Payload: marker}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pub.sendRTP(t, ok)
	seq++
	for _, rt := range malloryAt {
		// Skip what pion wrote before it stopped.
		for !bytes.Equal(rt.next(t).payload, marker) {
			continue
		}
	}
	for i, link := range []*hostileLink{pub, sub} {
		target := trackSSRC
		if link == sub {
			target = downtrackSSRCs[0]
		}
		link.sendRTCP(t, rrWithExtension(target))
		waitFor(t, "the first RTCP refusal", func() bool {
			sums, _ := refusedByDirection(t, reg)
			return sums[dirRTCPIn] >= float64(i+1)
		})
	}

	// The attack: the seed corpus retargeted at SSRCs the SFU reads, mutated
	// deterministically, paced at 2000 packets/s.
	rng := rand.New(rand.NewPCG(4, 2019_3568))
	rtcpSeeds := readCorpusDir(t, "FuzzRTCP")
	rtpSeeds := readCorpusDir(t, "FuzzRTP")
	rtpSeeds = append(rtpSeeds, ok) // mutations of a good packet, too
	mark := make([]int, len(flows))
	for i, f := range flows {
		mark[i] = f.count()
	}
	tick := time.NewTicker(5 * time.Millisecond)
	var rtpSent, pubSent, subSent sendCounts
	for n := range hostileRTP + hostileRTCPPub + hostileRTCPSub {
		if n%hostilePerTick == 0 {
			<-tick.C
		}
		switch n % 4 {
		case 0, 1:
			p := mutate(rtpSeeds[rng.IntN(len(rtpSeeds))], rng)
			if len(p) >= 12 {
				// The header fields SRTP keys on stay those of mallory's
				// track, or pion/srtp would route the packet elsewhere
				// (or drop it as a replay) before the check.
				p[1] = p[1]&0x80 | wire.PayloadTypeOpus
				binary.BigEndian.PutUint16(p[2:], seq)
				binary.BigEndian.PutUint32(p[8:], trackSSRC)
				seq++
			}
			rtpSent.add(pub.sendRTP(t, p))
		case 2:
			pubSent.add(pub.sendRTCP(t, mutate(retarget(rtcpSeeds[rng.IntN(len(rtcpSeeds))], []uint32{trackSSRC}, rng), rng)))
		case 3:
			subSent.add(sub.sendRTCP(t, mutate(retarget(rtcpSeeds[rng.IntN(len(rtcpSeeds))], downtrackSSRCs, rng), rng)))
		}
	}
	tick.Stop()

	// The call goes on: every flow carries postAttackPackets more, intact,
	// and lost next to nothing while the attack ran.
	after := make([]int, len(flows))
	for i, f := range flows {
		after[i] = f.count()
	}
	waitFor(t, "the call to go on after the attack", func() bool {
		for i, f := range flows {
			if f.count() < after[i]+postAttackPackets {
				return false
			}
		}
		return true
	})
	for i, f := range flows {
		got, loss, bad := f.lossSince(mark[i])
		t.Logf("%s: %d packets during and after the attack, loss %.4f%%, %d payload mismatches", f.name, got, 100*loss, bad)
		if bad != 0 {
			t.Errorf("%s: %d payloads differ from what was sent", f.name, bad)
		}
		if loss > maxLossFraction {
			t.Errorf("%s: lost %.2f%% of its packets during the attack", f.name, 100*loss)
		}
	}

	sums, rules := refusedByDirection(t, reg)
	t.Logf("sent (protected + unprotectable): RTP %d + %d; RTCP to the publisher connection %d + %d, to the subscriber connection %d + %d",
		rtpSent.protected, rtpSent.raw, pubSent.protected, pubSent.raw, subSent.protected, subSent.raw)
	t.Logf("refusals: %v", rules)
	if sums[dirRTCPIn] < 10 || sums[dirRTPIn] < 10 {
		t.Errorf("refusals rtcp_in %v, rtp_in %v; want the attack to show in both", sums[dirRTCPIn], sums[dirRTPIn])
	}
	if sums[dirRTCPOut] != 0 || sums[dirRTPOut] != 0 {
		t.Errorf("the SFU refused its own packets: rtcp_out %v, rtp_out %v", sums[dirRTCPOut], sums[dirRTPOut])
	}
	if c := s.Counts(); c.Participants != 4 {
		t.Errorf("Counts %+v after the attack, want the 4 participants still there", c)
	}
}

// publishUndeclared publishes an Opus track with an offer stripped of its
// a=ssrc lines, as a client may munge it, and starts writing to it.
func (c *testClient) publishUndeclared(t *testing.T) *localTrack {
	t.Helper()
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "stream-"+c.cfg.SID)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := c.pub.AddTrack(tr)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(offer.SDP, "\r\n") {
		if !strings.HasPrefix(line, "a=ssrc") {
			kept = append(kept, line)
		}
	}
	answer, err := c.p.HandleOffer(strings.Join(kept, "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.setRemote(c.pub, c.pubEarly, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	lt := &localTrack{track: tr, sender: sender, kind: 'a', stopWriting: make(chan struct{})}
	go lt.write(c.stop)
	return lt
}

// TestUndeclaredSSRCsMintNoTracks: a client whose offer has one media
// section and no a=ssrc lines cannot create tracks by sending RTP on new
// SSRCs. pion would take each for a new remote track; the SFU refuses every
// track outside an offered media section, so nothing reaches the room.
func TestUndeclaredSSRCsMintNoTracks(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg})
	bob := join(t, s, ParticipantConfig{SID: "PA_bob", CanSubscribe: true, AutoSubscribe: true})
	mallory, taps := joinHostile(t, s, "PA_mallory")
	mallory.publishUndeclared(t)
	pub := taps.pub.link(t, mallory.pub)

	const minted = 5
	for k := range minted {
		for seq := range uint16(3) {
			p, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: wire.PayloadTypeOpus, SequenceNumber: seq, SSRC: 0xabc00000 + uint32(k)}, Payload: []byte("mint")}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !pub.sendRTP(t, p) {
				t.Fatal("a well-formed packet could not be protected")
			}
		}
	}
	// Her own track (its SSRC is undeclared too) and each minted one are
	// either refused or, were the guard gone, published.
	waitFor(t, "every undeclared track to be refused or published", func() bool {
		return int(counterValue(t, reg, "sotto_tracks_refused_total", nil))+s.Counts().Tracks >= minted+1
	})
	if c := s.Counts(); c.Tracks != 0 || c.Subscriptions != 0 {
		t.Fatalf("Counts %+v: undeclared SSRCs became tracks", c)
	}
	select {
	case ti := <-mallory.published:
		t.Fatalf("TrackPublished %+v for an undeclared SSRC", ti)
	case sdp := <-bob.offers:
		t.Fatalf("bob was offered a track:\n%s", sdp)
	default:
	}
}
