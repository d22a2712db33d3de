package sfu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sotto-rtc/sotto/internal/hold"
)

// waitTimeout is how long a test waits for something that happens within
// milliseconds on an idle machine; generous so a loaded CI box still passes.
const waitTimeout = 20 * time.Second

// testLogger discards logs unless SOTTO_TEST_LOG is set, so failures can
// be debugged without making every run noisy.
func testLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestSFU starts an SFU on a free loopback port, closed at cleanup.
func newTestSFU(t *testing.T, cfg Config) *SFU {
	t.Helper()
	cfg.ListenIP = "127.0.0.1"
	cfg.Port = 0
	cfg.IncludeLoopback = true
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testClient is a real pion peer playing a participant's client: it drives
// the Participant directly, as signaling would, and turns Events into
// channels a test can wait on.
type testClient struct {
	t   *testing.T
	sfu *SFU
	p   *Participant
	cfg ParticipantConfig
	pub *webrtc.PeerConnection
	sub *webrtc.PeerConnection

	published   chan TrackInfo
	unpublished chan TrackInfo
	offers      chan string // subscriber offers, after they were answered
	failed      chan string
	refused     chan string // rules of Events.Refused
	remote      chan *remoteTrack
	errs        chan error

	// The SFU's candidates, held until the remote description is set.
	pubEarly, subEarly *hold.Gate[webrtc.ICECandidateInit]

	stop chan struct{} // closed at cleanup: ends writers and readers

	// subStarted is closed once the subscriber connection's ICE agent
	// started; pion mistakes a renegotiation offer applied before that for
	// an ICE restart (the SFU guards its side in HandleOffer).
	subStarted     chan struct{}
	subStartedOnce sync.Once
}

// newClientAPI builds the client side's WebRTC stack: loopback UDP4 only,
// no mDNS, no interceptors. SRTP replay protection is off so the NACK test
// can ask for a packet it already has and see it arrive again; a real
// client only NACKs what it lost, which replay protection lets through.
func newClientAPI(t *testing.T) *webrtc.API {
	t.Helper()
	return newClientAPIOn(t, webrtc.NetworkTypeUDP4)
}

// newClientAPIOn is newClientAPI on another network type (ICE-TCP tests).
func newClientAPIOn(t *testing.T, network webrtc.NetworkType) *webrtc.API {
	t.Helper()
	me, err := newMediaEngine(true) // as browsers do: they offer audio levels
	if err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.DisableSRTPReplayProtection(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// join joins cfg's participant (room "room" unless set) and starts it.
func join(t *testing.T, s *SFU, cfg ParticipantConfig) *testClient {
	t.Helper()
	return joinOn(t, s, cfg, webrtc.NetworkTypeUDP4)
}

// joinOn is join with the client on another network type.
func joinOn(t *testing.T, s *SFU, cfg ParticipantConfig, network webrtc.NetworkType) *testClient {
	t.Helper()
	api := newClientAPIOn(t, network)
	return joinWith(t, s, cfg, api, api)
}

// joinWith is join with the client's two connections built by the given
// APIs (the hostile peer needs hooks into each connection's DTLS).
func joinWith(t *testing.T, s *SFU, cfg ParticipantConfig, pubAPI, subAPI *webrtc.API) *testClient {
	t.Helper()
	if cfg.Room == "" {
		cfg.Room = "room"
	}
	if cfg.Identity == "" {
		cfg.Identity = "id-" + cfg.SID
	}
	c := &testClient{
		t:           t,
		sfu:         s,
		published:   make(chan TrackInfo, 16),
		unpublished: make(chan TrackInfo, 16),
		offers:      make(chan string, 64),
		failed:      make(chan string, 4),
		refused:     make(chan string, 4),
		remote:      make(chan *remoteTrack, 16),
		errs:        make(chan error, 16),
		stop:        make(chan struct{}),
		subStarted:  make(chan struct{}),
	}
	var err error
	if c.pub, err = pubAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	c.pubEarly = hold.NewGate(func(ic webrtc.ICECandidateInit) { _ = c.pub.AddICECandidate(ic) })
	c.subEarly = hold.NewGate(func(ic webrtc.ICECandidateInit) { _ = c.sub.AddICECandidate(ic) })
	cfg.Events = Events{
		SubscriberOffer:  c.onSubscriberOffer,
		ICECandidate:     c.onSFUCandidate,
		TrackPublished:   func(ti TrackInfo) { c.published <- ti },
		TrackUnpublished: func(ti TrackInfo) { c.unpublished <- ti },
		ConnectionFailed: func(target string) { c.failed <- target },
		Refused:          func(rule string) { c.refused <- rule },
	}
	c.cfg = cfg
	c.p, err = s.Join(cfg)
	if err != nil {
		t.Fatalf("Join %s: %v", cfg.SID, err)
	}
	c.pub.OnICECandidate(func(ic *webrtc.ICECandidate) { c.sendCandidate(targetPublisher, ic) })
	c.sub.OnICECandidate(func(ic *webrtc.ICECandidate) { c.sendCandidate(targetSubscriber, ic) })
	c.sub.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st != webrtc.ICEConnectionStateNew {
			c.subStartedOnce.Do(func() { close(c.subStarted) })
		}
	})
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rt := &remoteTrack{track: tr, packets: make(chan receivedPacket, 4096)}
		c.remote <- rt
		rt.read(c.stop)
	})
	t.Cleanup(c.close)
	c.p.Start()
	return c
}

func (c *testClient) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.p.Close()
	_ = c.pub.Close()
	_ = c.sub.Close()
	select {
	case err := <-c.errs:
		c.t.Errorf("%s: %v", c.cfg.SID, err)
	default:
	}
}

func (c *testClient) fail(err error) {
	select {
	case <-c.stop:
		return // tearing down: the client's own connections are closing
	default:
	}
	select {
	case c.errs <- err:
	default:
	}
}

func (c *testClient) sendCandidate(target string, ic *webrtc.ICECandidate) {
	if ic == nil {
		return
	}
	// ErrClosed is expected while tearing down.
	if err := c.p.AddICECandidate(target, ic.ToJSON()); err != nil && !errors.Is(err, ErrClosed) {
		c.fail(fmt.Errorf("AddICECandidate %s: %w", target, err))
	}
}

// onSFUCandidate applies an SFU candidate once the matching remote
// description is set (as a real client must).
func (c *testClient) onSFUCandidate(target string, ic *webrtc.ICECandidateInit) {
	if ic == nil {
		return
	}
	if target == targetSubscriber {
		c.subEarly.Pass(*ic)
	} else {
		c.pubEarly.Pass(*ic)
	}
}

func (c *testClient) setRemote(pc *webrtc.PeerConnection, early *hold.Gate[webrtc.ICECandidateInit], d webrtc.SessionDescription) error {
	if err := pc.SetRemoteDescription(d); err != nil {
		return err
	}
	early.Open()
	return nil
}

func (c *testClient) onSubscriberOffer(sdp string) {
	if c.sub.RemoteDescription() != nil {
		select {
		case <-c.subStarted:
		case <-c.stop:
			return
		case <-time.After(waitTimeout):
			c.fail(errors.New("subscriber transport never started"))
			return
		}
	}
	if err := c.setRemote(c.sub, c.subEarly, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.fail(fmt.Errorf("subscriber offer: %w", err))
		return
	}
	answer, err := c.sub.CreateAnswer(nil)
	if err == nil {
		err = c.sub.SetLocalDescription(answer)
	}
	if err == nil {
		err = c.p.HandleAnswer(answer.SDP)
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		c.fail(fmt.Errorf("subscriber answer: %w", err))
		return
	}
	select {
	case c.offers <- sdp:
	default:
	}
}

// negotiatePublisher offers the publisher connection's current tracks.
func (c *testClient) negotiatePublisher() error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	answer, err := c.p.HandleOffer(offer.SDP)
	if err != nil {
		return err
	}
	return c.setRemote(c.pub, c.pubEarly, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// localTrack is a track the client publishes and feeds with numbered
// packets until the test ends or stopWriting is closed.
type localTrack struct {
	track       *webrtc.TrackLocalStaticRTP
	sender      *webrtc.RTPSender
	kind        byte
	stopWriting chan struct{}
}

// publish adds a track of kind ("audio" or "video") with the client track
// id id, renegotiates and starts writing packets.
func (c *testClient) publish(kind, id string) *localTrack {
	c.t.Helper()
	capab := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if kind == "video" {
		capab = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(capab, id, "stream-"+c.cfg.SID)
	if err != nil {
		c.t.Fatal(err)
	}
	sender, err := c.pub.AddTrack(tr)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.negotiatePublisher(); err != nil {
		c.t.Fatalf("publish %s: %v", id, err)
	}
	lt := &localTrack{track: tr, sender: sender, kind: kind[0], stopWriting: make(chan struct{})}
	go lt.write(c.stop)
	return lt
}

// write sends packet after packet, paced so loopback never overflows a
// socket buffer; pacing is load shaping, not synchronisation.
func (lt *localTrack) write(stop chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := uint32(0); ; i++ {
		select {
		case <-stop:
			return
		case <-lt.stopWriting:
			return
		case <-tick.C:
		}
		pkt := &rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				SequenceNumber: uint16(1000 + i),
				Timestamp:      i * 960,
				Marker:         true,
			},
			Payload: testPayload(lt.kind, i),
		}
		if err := lt.track.WriteRTP(pkt); err != nil {
			return
		}
	}
}

// testPayload is packet i's payload: its index, its kind and a body whose
// length and bytes depend on both, so any mix-up shows.
func testPayload(kind byte, i uint32) []byte {
	b := make([]byte, 5+int(i%97))
	binary.BigEndian.PutUint32(b, i)
	b[4] = kind
	for j := 5; j < len(b); j++ {
		b[j] = byte(uint32(j)*31 + i + uint32(kind))
	}
	return b
}

// remoteTrack is a track the client receives, with its packets.
type remoteTrack struct {
	track   *webrtc.TrackRemote
	packets chan receivedPacket
}

type receivedPacket struct {
	seq     uint16
	payload []byte
}

func (rt *remoteTrack) read(stop chan struct{}) {
	defer close(rt.packets)
	for {
		pkt, _, err := rt.track.ReadRTP()
		if err != nil {
			return
		}
		select {
		case rt.packets <- receivedPacket{seq: pkt.SequenceNumber, payload: pkt.Payload}:
		case <-stop:
			return
		default: // a test that stopped looking must not block the reader
		}
	}
}

// next returns the next packet received, failing the test at the deadline.
func (rt *remoteTrack) next(t *testing.T) receivedPacket {
	t.Helper()
	select {
	case p, ok := <-rt.packets:
		if !ok {
			t.Fatalf("track %s ended", rt.track.ID())
		}
		return p
	case <-time.After(waitTimeout):
		t.Fatalf("no packet on track %s", rt.track.ID())
	}
	return receivedPacket{}
}

// expectContiguous reads n packets and checks that each carries exactly
// the payload the publisher wrote and that indices and sequence numbers
// advance by one.
func (rt *remoteTrack) expectContiguous(t *testing.T, kind byte, n int) {
	t.Helper()
	first := rt.next(t)
	checkPayload(t, kind, first.payload)
	prevIdx, prevSeq := binary.BigEndian.Uint32(first.payload), first.seq
	for range n - 1 {
		p := rt.next(t)
		checkPayload(t, kind, p.payload)
		idx := binary.BigEndian.Uint32(p.payload)
		if idx != prevIdx+1 || p.seq != prevSeq+1 {
			t.Fatalf("track %s: packet %d (seq %d) follows packet %d (seq %d)", rt.track.ID(), idx, p.seq, prevIdx, prevSeq)
		}
		prevIdx, prevSeq = idx, p.seq
	}
}

func checkPayload(t *testing.T, kind byte, payload []byte) {
	t.Helper()
	if len(payload) < 5 {
		t.Fatalf("payload of %d bytes", len(payload))
	}
	want := testPayload(kind, binary.BigEndian.Uint32(payload))
	if string(payload) != string(want) {
		t.Fatalf("payload differs from what was sent:\n got %x\nwant %x", payload, want)
	}
}

// waitEnded waits for the track's stream to end, discarding packets.
func (rt *remoteTrack) waitEnded(t *testing.T) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-rt.packets:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("track %s did not end", rt.track.ID())
		}
	}
}

// waitTrack returns the next track the client receives.
func (c *testClient) waitTrack(t *testing.T) *remoteTrack {
	t.Helper()
	select {
	case rt := <-c.remote:
		return rt
	case <-time.After(waitTimeout):
		t.Fatalf("%s received no track", c.cfg.SID)
	}
	return nil
}

// waitTracks returns the next n tracks the client receives, by track id.
func (c *testClient) waitTracks(t *testing.T, n int) map[string]*remoteTrack {
	t.Helper()
	out := make(map[string]*remoteTrack, n)
	for range n {
		rt := c.waitTrack(t)
		out[rt.track.ID()] = rt
	}
	return out
}

func (c *testClient) waitPublished(t *testing.T) TrackInfo {
	t.Helper()
	select {
	case ti := <-c.published:
		return ti
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no TrackPublished", c.cfg.SID)
	}
	return TrackInfo{}
}

func (c *testClient) waitUnpublished(t *testing.T) TrackInfo {
	t.Helper()
	select {
	case ti := <-c.unpublished:
		return ti
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no TrackUnpublished", c.cfg.SID)
	}
	return TrackInfo{}
}

// waitOffer returns the first subscriber offer (already answered) that
// satisfies ok.
func (c *testClient) waitOffer(t *testing.T, ok func(sdp string) bool) string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case sdp := <-c.offers:
			if ok(sdp) {
				return sdp
			}
		case <-deadline:
			t.Fatalf("%s: no matching subscriber offer", c.cfg.SID)
		}
	}
}

// publishAV publishes an Opus and a VP8 track and returns them with the
// TrackInfos the SFU reported, by kind.
func (c *testClient) publishAV(t *testing.T) (audio, video *localTrack, infos map[webrtc.RTPCodecType]TrackInfo) {
	t.Helper()
	audio = c.publish("audio", "mic")
	video = c.publish("video", "cam")
	infos = make(map[webrtc.RTPCodecType]TrackInfo)
	for range 2 {
		ti := c.waitPublished(t)
		infos[ti.Kind] = ti
	}
	if len(infos) != 2 {
		t.Fatalf("published %v, want one audio and one video track", infos)
	}
	return audio, video, infos
}

// readRTCP counts the picture-loss requests a publisher's sender gets.
func readPLIs(sender *webrtc.RTPSender, stop chan struct{}) chan struct{} {
	plis := make(chan struct{}, 1024)
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				if errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.EOF) {
					return
				}
				continue
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					select {
					case plis <- struct{}{}:
					case <-stop:
						return
					}
				}
			}
		}
	}()
	return plis
}

// counterValue reads a counter (with the given label values, in order of
// the label names) from a registry.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// waitFor polls cond until it holds or the deadline passes. It is for
// state with no event to wait on (counters, goroutine counts).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
