package sfu

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// checkForwarded checks that c receives exactly the tracks in infos, named
// as the SFU reported them, with the publisher's payloads in order.
func checkForwarded(t *testing.T, c *testClient, owner string, infos map[webrtc.RTPCodecType]TrackInfo) {
	t.Helper()
	got := c.waitTracks(t, len(infos))
	for kind, ti := range infos {
		rt := got[ti.SID]
		if rt == nil {
			t.Fatalf("%s: no track with id %s among %v", c.cfg.SID, ti.SID, keys(got))
		}
		if rt.track.StreamID() != owner {
			t.Errorf("%s: track %s has stream id %q, want the owner's SID %q", c.cfg.SID, ti.SID, rt.track.StreamID(), owner)
		}
		if rt.track.Kind() != kind {
			t.Errorf("%s: track %s is %s, want %s", c.cfg.SID, ti.SID, rt.track.Kind(), kind)
		}
		rt.expectContiguous(t, kind.String()[0], 30)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestForwardAudioAndVideo(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})

	_, _, infos := a.publishAV(t)
	for kind, ti := range infos {
		if ti.ParticipantSID != "PA_a" || ti.Identity != "id-PA_a" || !strings.HasPrefix(ti.SID, "TR_") || len(ti.SID) != 15 {
			t.Errorf("%s track info %+v", kind, ti)
		}
	}
	if infos[webrtc.RTPCodecTypeAudio].Codec != webrtc.MimeTypeOpus || infos[webrtc.RTPCodecTypeVideo].Codec != webrtc.MimeTypeVP8 {
		t.Errorf("codecs %+v", infos)
	}
	if infos[webrtc.RTPCodecTypeAudio].ClientTrackID != "mic" || infos[webrtc.RTPCodecTypeVideo].ClientTrackID != "cam" {
		t.Errorf("client track ids %+v", infos)
	}
	checkForwarded(t, b, "PA_a", infos)

	if got := len(s.RoomTracks("room")); got != 2 {
		t.Errorf("RoomTracks: %d tracks, want 2", got)
	}
	if got := len(a.p.Tracks()); got != 2 {
		t.Errorf("Tracks: %d, want 2", got)
	}
	if c := s.Counts(); c != (Counts{Rooms: 1, Participants: 2, Tracks: 2, Subscriptions: 2}) {
		t.Errorf("Counts %+v", c)
	}
}

func TestForwardOverICETCP(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := joinOn(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true}, webrtc.NetworkTypeTCP4)
	_, _, infos := a.publishAV(t)
	checkForwarded(t, b, "PA_a", infos)
}

func TestNewBindsMediaPort(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantTCP bool
		wantErr bool
	}{
		{name: "UDP and TCP on one port", cfg: Config{ListenIP: "127.0.0.1"}, wantTCP: true},
		{name: "TCP disabled", cfg: Config{ListenIP: "127.0.0.1", DisableTCP: true}},
		{name: "public IPs", cfg: Config{ListenIP: "127.0.0.1", PublicIPs: []string{"192.0.2.1"}}, wantTCP: true},
		{name: "unspecified address", cfg: Config{ListenIP: "0.0.0.0", IncludeLoopback: true}, wantTCP: true},
		{name: "not an IP", cfg: Config{ListenIP: "localhost"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger()
			s, err := New(tc.cfg)
			if tc.wantErr {
				if err == nil {
					_ = s.Close()
					t.Fatal("New succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Port() == 0 {
				t.Fatal("Port() = 0")
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port()))
			conn, err := net.DialTimeout("tcp", addr, waitTimeout)
			if conn != nil {
				_ = conn.Close()
			}
			if (err == nil) != tc.wantTCP {
				t.Errorf("TCP dial to %s: %v, want TCP listening %v", addr, err, tc.wantTCP)
			}
			// The UDP port is ours: binding it again fails.
			if c, err := net.ListenPacket("udp", addr); err == nil {
				_ = c.Close()
				t.Errorf("UDP %s is not bound", addr)
			}
		})
	}
}

// TestUnspecifiedListenIPBindsEveryAddress holds that on 0.0.0.0 the SFU
// answers from the address a peer sent to: one UDP socket per interface
// address, all on Port(), none on the unspecified address.
func TestUnspecifiedListenIPBindsEveryAddress(t *testing.T) {
	s, err := New(Config{ListenIP: "0.0.0.0", IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mux, ok := s.udpMux.(*ice.MultiUDPMuxDefault)
	if !ok {
		t.Fatalf("UDP mux is %T, want one socket per address", s.udpMux)
	}
	var loopback bool
	for _, a := range mux.GetListenAddresses() {
		u := a.(*net.UDPAddr)
		if u.IP.IsUnspecified() || u.Port != s.Port() {
			t.Errorf("UDP socket on %s, want an interface address on port %d", u, s.Port())
		}
		loopback = loopback || u.IP.IsLoopback()
	}
	if !loopback {
		t.Error("no loopback socket with IncludeLoopback")
	}
	// Each of those sockets batches the SFU's writes (udpbatch.go).
	if s.batch == nil || len(s.batch.conns) != len(mux.GetListenAddresses()) {
		t.Errorf("batch group %+v, want one batchConn per listen address", s.batch)
	}
}

// TestForwardOnEveryInterfaceBatched forwards through the SFU listening on
// the unspecified address, where its sockets come from batchNet, to two
// subscribers, so that each packet's fan-out is one batch.
func TestForwardOnEveryInterfaceBatched(t *testing.T) {
	s, err := New(Config{ListenIP: "0.0.0.0", IncludeLoopback: true, DisableTCP: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
	c := join(t, s, ParticipantConfig{SID: "PA_c", CanSubscribe: true, AutoSubscribe: true})
	_, _, infos := a.publishAV(t)
	checkForwarded(t, b, "PA_a", infos)
	checkForwarded(t, c, "PA_a", infos)
	if d, n := s.batch.counts(); d == 0 || n >= d {
		t.Errorf("%d datagrams in %d write syscalls: nothing was batched", d, n)
	}
}

func TestDisableBatchedWrites(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "0.0.0.0"} {
		s, err := New(Config{ListenIP: ip, IncludeLoopback: true, DisableTCP: true, DisableBatchedWrites: true, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if s.batch != nil {
			t.Errorf("%s: batch group %+v with DisableBatchedWrites", ip, s.batch)
		}
		_ = s.Close()
	}
}

func TestLateJoinerGetsExistingTracks(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	_, _, infos := a.publishAV(t)

	c := join(t, s, ParticipantConfig{SID: "PA_c", CanSubscribe: true, AutoSubscribe: true})
	checkForwarded(t, c, "PA_a", infos)

	// A participant without auto-subscribe gets tracks only on request.
	d := join(t, s, ParticipantConfig{SID: "PA_d", CanSubscribe: true})
	if err := d.p.Subscribe(infos[webrtc.RTPCodecTypeVideo].SID); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := d.p.Subscribe(infos[webrtc.RTPCodecTypeVideo].SID); err != nil {
		t.Fatalf("Subscribe again: %v", err)
	}
	checkForwarded(t, d, "PA_a", map[webrtc.RTPCodecType]TrackInfo{webrtc.RTPCodecTypeVideo: infos[webrtc.RTPCodecTypeVideo]})
	if c := s.Counts(); c.Subscriptions != 3 {
		t.Errorf("Counts %+v, want 3 subscriptions", c)
	}
}

func TestUnpublishAndRepublish(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
	_, video, infos := a.publishAV(t)
	old := infos[webrtc.RTPCodecTypeVideo]
	got := b.waitTracks(t, 2)
	got[old.SID].next(t)
	b.waitOffer(t, func(sdp string) bool { return containsAll(sdp, old.SID) })

	if err := a.p.Unpublish(old.SID); err != nil {
		t.Fatalf("Unpublish: %v", err)
	}
	if ti := a.waitUnpublished(t); ti.SID != old.SID {
		t.Fatalf("TrackUnpublished for %s, want %s", ti.SID, old.SID)
	}
	b.waitOffer(t, func(sdp string) bool { return !strings.Contains(sdp, old.SID) })
	// The subscriber's track ends once its section is inactive.
	got[old.SID].waitEnded(t)
	if c := s.Counts(); c != (Counts{Rooms: 1, Participants: 2, Tracks: 1, Subscriptions: 1}) {
		t.Errorf("Counts after unpublish %+v", c)
	}
	if err := a.p.Unpublish(old.SID); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("second Unpublish: %v, want ErrUnknownTrack", err)
	}

	// The client drops its sender, then publishes a new camera track.
	close(video.stopWriting)
	if err := a.pub.RemoveTrack(video.sender); err != nil {
		t.Fatal(err)
	}
	if err := a.negotiatePublisher(); err != nil {
		t.Fatalf("renegotiate after removal: %v", err)
	}
	a.publish("video", "cam2")
	ti := a.waitPublished(t)
	if ti.SID == old.SID || ti.ClientTrackID != "cam2" || ti.Kind != webrtc.RTPCodecTypeVideo {
		t.Fatalf("republished %+v (old SID %s)", ti, old.SID)
	}
	checkForwarded(t, b, "PA_a", map[webrtc.RTPCodecType]TrackInfo{webrtc.RTPCodecTypeVideo: ti})
	select {
	case extra := <-a.unpublished:
		t.Errorf("unexpected TrackUnpublished %+v", extra)
	default:
	}
	if c := s.Counts(); c != (Counts{Rooms: 1, Participants: 2, Tracks: 2, Subscriptions: 2}) {
		t.Errorf("Counts after republish %+v", c)
	}
}

func TestNACKAnsweredFromCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
	a.publish("video", "cam")
	a.waitPublished(t)
	rt := b.waitTrack(t)
	rt.next(t)
	want := rt.next(t)

	nack := &rtcp.TransportLayerNack{
		MediaSSRC: uint32(rt.track.SSRC()),
		Nacks:     rtcp.NackPairsFromSequenceNumbers([]uint16{want.seq}),
	}
	if err := b.sub.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
	for {
		p := rt.next(t)
		if p.seq != want.seq {
			continue
		}
		if !bytes.Equal(p.payload, want.payload) {
			t.Fatalf("retransmission of %d carries %x, want %x", p.seq, p.payload, want.payload)
		}
		break
	}
	// The counter moves just after the write the client already saw.
	waitFor(t, "the retransmission to be counted", func() bool {
		return counterValue(t, reg, "sotto_nack_retransmissions_total", nil) == 1
	})
	if n := counterValue(t, reg, "sotto_rtp_packets_dropped_total", map[string]string{"reason": dropCacheMiss}); n != 0 {
		t.Errorf("%v cache misses, want 0", n)
	}
}

func TestKeyframeRequests(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		plis     int // sent by the subscriber in a burst
		// The bind of the subscriber's downtrack asks for one key frame of
		// its own, through the same throttle.
		wantSent, wantThrottled float64
	}{
		{name: "forwarded", interval: time.Nanosecond, plis: 1, wantSent: 2, wantThrottled: 0},
		{name: "burst throttled", interval: time.Hour, plis: 10, wantSent: 1, wantThrottled: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := newTestSFU(t, Config{Registerer: reg, KeyframeRequestInterval: tc.interval})
			a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
			b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
			video := a.publish("video", "cam")
			plis := readPLIs(video.sender, a.stop)
			a.waitPublished(t)
			rt := b.waitTrack(t)
			rt.next(t)

			pkts := make([]rtcp.Packet, 0, tc.plis)
			for range tc.plis {
				pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: uint32(rt.track.SSRC())})
			}
			for _, p := range pkts {
				if err := b.sub.WriteRTCP([]rtcp.Packet{p}); err != nil {
					t.Fatal(err)
				}
			}
			sent := func() float64 {
				return counterValue(t, reg, "sotto_keyframe_requests_total", map[string]string{"result": "sent"})
			}
			throttled := func() float64 {
				return counterValue(t, reg, "sotto_keyframe_requests_total", map[string]string{"result": "throttled"})
			}
			waitFor(t, "every key-frame request to be handled", func() bool {
				return sent()+throttled() == tc.wantSent+tc.wantThrottled
			})
			if sent() != tc.wantSent || throttled() != tc.wantThrottled {
				t.Fatalf("sent %v throttled %v, want %v and %v", sent(), throttled(), tc.wantSent, tc.wantThrottled)
			}
			for i := 0; i < int(tc.wantSent); i++ {
				select {
				case <-plis:
				case <-time.After(waitTimeout):
					t.Fatalf("publisher saw %d PLIs, want %v", i, tc.wantSent)
				}
			}
			select {
			case <-plis:
				t.Fatalf("publisher saw more than %v PLIs", tc.wantSent)
			default:
			}
		})
	}
}

// makeOffer returns an offer with sending sending sections and one
// receive-only section, from a real pion peer.
func makeOffer(t *testing.T, sending int) string {
	t.Helper()
	pc, err := newClientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range sending {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
			"t"+string(rune('0'+i)), "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

func TestOfferPermissions(t *testing.T) {
	s := newTestSFU(t, Config{})
	tests := []struct {
		name    string
		cfg     ParticipantConfig
		sending int
		want    error
	}{
		{"no publish grant", ParticipantConfig{CanSubscribe: true}, 1, ErrPermission},
		{"receive only without publish grant", ParticipantConfig{CanSubscribe: true}, 0, nil},
		{"too many tracks", ParticipantConfig{CanPublish: true, MaxTracks: 2}, 3, ErrTooManyTracks},
		{"at the track limit", ParticipantConfig{CanPublish: true, MaxTracks: 2}, 2, nil},
		{"no limit", ParticipantConfig{CanPublish: true}, 3, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Room = "perm"
			tc.cfg.SID = "PA_" + string(rune('a'+i))
			p, err := s.Join(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.HandleOffer(makeOffer(t, tc.sending))
			if !errors.Is(err, tc.want) {
				t.Fatalf("HandleOffer: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.Join(ParticipantConfig{Room: "perm"}); err == nil {
		t.Error("Join without SID succeeded")
	}
	p, err := s.Join(ParticipantConfig{Room: "perm", SID: "PA_x"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := s.Join(ParticipantConfig{Room: "perm", SID: "PA_x"}); err == nil {
		t.Error("second Join with the same SID succeeded")
	}
	if _, err := p.HandleOffer("not sdp"); !errors.Is(err, ErrNegotiation) {
		t.Errorf("HandleOffer(garbage): %v, want ErrNegotiation", err)
	}
	if err := p.HandleAnswer("v=0"); !errors.Is(err, ErrNegotiation) {
		t.Errorf("HandleAnswer without an offer: %v, want ErrNegotiation", err)
	}
	if err := p.AddICECandidate("sideways", webrtc.ICECandidateInit{Candidate: "x"}); err == nil {
		t.Error("AddICECandidate to an unknown target succeeded")
	}
}

func TestTrackPermissions(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanPublish: true, CanSubscribe: true})
	n := join(t, s, ParticipantConfig{SID: "PA_n"}) // no grants
	a.publish("audio", "mic")
	own := a.waitPublished(t)

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"subscribe without grant", func() error { return n.p.Subscribe(own.SID) }, ErrPermission},
		{"subscribe to unknown track", func() error { return b.p.Subscribe("TR_nosuchtrack") }, ErrUnknownTrack},
		{"subscribe to own track", func() error { return a.p.Subscribe(own.SID) }, ErrUnknownTrack},
		{"unsubscribe unknown track", func() error { return b.p.Unsubscribe("TR_nosuchtrack") }, ErrUnknownTrack},
		{"unsubscribe when not subscribed", func() error { return b.p.Unsubscribe(own.SID) }, nil},
		{"unpublish another's track", func() error { return b.p.Unpublish(own.SID) }, ErrNotOwner},
		{"unpublish unknown track", func() error { return b.p.Unpublish("TR_nosuchtrack") }, ErrUnknownTrack},
		{"mute another's track", func() error { _, err := b.p.SetMuted(own.SID, true); return err }, ErrNotOwner},
		{"mute unknown track", func() error { _, err := a.p.SetMuted("TR_nosuchtrack", true); return err }, ErrUnknownTrack},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	ti, err := a.p.SetMuted(own.SID, true)
	if err != nil || !ti.Muted {
		t.Fatalf("SetMuted own track: %+v, %v", ti, err)
	}
	if rt := s.RoomTracks("room"); len(rt) != 1 || !rt[0].Muted {
		t.Errorf("RoomTracks after mute: %+v", rt)
	}
}

func TestCloseLeavesNothingBehind(t *testing.T) {
	s := newTestSFU(t, Config{})
	baseline := runtime.NumGoroutine()

	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	c := join(t, s, ParticipantConfig{Room: "other", SID: "PA_c", CanSubscribe: true, AutoSubscribe: true})
	_, _, infos := a.publishAV(t)
	b.publish("audio", "mic")
	bInfo := b.waitPublished(t)
	checkForwarded(t, b, "PA_a", infos)
	checkForwarded(t, a, "PA_b", map[webrtc.RTPCodecType]TrackInfo{webrtc.RTPCodecTypeAudio: bInfo})
	if got := s.Counts(); got != (Counts{Rooms: 2, Participants: 3, Tracks: 3, Subscriptions: 3}) {
		t.Fatalf("Counts %+v", got)
	}

	a.close()
	for range 2 {
		a.waitUnpublished(t) // fired by Close, before it returned
	}
	if got := s.Counts(); got != (Counts{Rooms: 2, Participants: 2, Tracks: 1, Subscriptions: 0}) {
		t.Errorf("Counts after A left %+v", got)
	}
	b.close()
	c.close()
	if got := s.Counts(); got != (Counts{}) {
		t.Errorf("Counts after everyone left %+v", got)
	}
	b.p.Close() // idempotent

	waitGoroutines(t, baseline)

	if _, err := s.Join(ParticipantConfig{Room: "room", SID: "PA_z"}); err != nil {
		t.Errorf("Join after everyone left: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Join(ParticipantConfig{Room: "room", SID: "PA_y"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	if got := s.Counts(); got != (Counts{}) {
		t.Errorf("Counts after Close %+v", got)
	}
}

// waitGoroutines waits for the goroutine count to come back to about
// baseline: pion ends some goroutines shortly after Close returns. On
// failure it prints every goroutine left.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	const slack = 2
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+slack {
			return
		}
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines left, baseline %d:\n%s", n, baseline, buf.String())
		}
		<-tick.C
	}
}

// TestAudioLevelExtensionOffByDefault: the RFC 6464 audio-level extension
// would have browsers tell the node who speaks, packet by packet, so the
// SFU negotiates it with neither the publisher nor the subscriber unless
// Config.AudioLevelExtension turns it on. The test client offers it, as
// browsers do.
func TestAudioLevelExtensionOffByDefault(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("AudioLevelExtension=%v", on), func(t *testing.T) {
			s := newTestSFU(t, Config{AudioLevelExtension: on})
			a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true})
			b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
			a.publish("audio", "mic")
			a.waitPublished(t)
			if !strings.Contains(a.pub.LocalDescription().SDP, sdp.AudioLevelURI) {
				t.Fatal("the test client did not offer the audio-level extension; the test checks nothing")
			}
			answer := a.pub.RemoteDescription().SDP
			offer := b.waitOffer(t, func(o string) bool { return strings.Contains(o, "m=audio") })
			for what, desc := range map[string]string{"the publisher's answer": answer, "the subscriber's offer": offer} {
				if got := strings.Contains(desc, sdp.AudioLevelURI); got != on {
					t.Errorf("%s names %s: %v, want %v", what, sdp.AudioLevelURI, got, on)
				}
			}
		})
	}
}
