package relay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	sdk "github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// symmetricNAT maps and filters per destination address and port: every
// new peer sees a new source port, so a server-reflexive address learnt
// from STUN is useless to anyone else (RFC 4787's worst case).
func symmetricNAT() *vnet.NATType {
	return &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
}

// Addresses on the lab's WAN.
const (
	labRelayIP = "1.2.3.4"
	labSFUIP   = "1.2.3.5"
)

// natLab is a simulated internet (pion's vnet): a WAN with the relay on
// 1.2.3.4, a public SFU host on 1.2.3.5, and two callers each behind its
// own symmetric NAT (public 1.2.3.10 and 1.2.3.20). A firewall on the WAN
// drops every UDP datagram between the callers' NATs and the SFU host:
// the callers' networks let UDP out to the relay only, as many corporate
// and hotel networks do. Without it a caller behind a symmetric NAT
// reaches a public SFU directly (its own checks open the NAT mapping the
// SFU's replies come back on), and the relay would carry nothing.
type natLab struct {
	wan        *vnet.Router
	relay      *Server
	callerNets [2]*vnet.Net
	sfuNet     *vnet.Net
}

// labFirewall passes a WAN chunk unless it travels between a caller's
// public address and the SFU host.
func labFirewall(c vnet.Chunk) bool {
	ip := func(a net.Addr) string {
		if u, ok := a.(*net.UDPAddr); ok {
			return u.IP.String()
		}
		return ""
	}
	src, dst := ip(c.SourceAddr()), ip(c.DestinationAddr())
	caller := func(s string) bool { return s == "1.2.3.10" || s == "1.2.3.20" }
	return !(caller(src) && dst == labSFUIP || src == labSFUIP && caller(dst))
}

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: pionLoggerFactory{log: testLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	relayNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.4"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(relayNet); err != nil {
		t.Fatal(err)
	}
	sfuNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{labSFUIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(sfuNet); err != nil {
		t.Fatal(err)
	}
	wan.AddChunkFilter(labFirewall)
	lab := &natLab{wan: wan, sfuNet: sfuNet}
	for i, lan := range []struct{ cidr, public, host string }{
		{"10.1.0.0/24", "1.2.3.10", "10.1.0.2"},
		{"10.2.0.0/24", "1.2.3.20", "10.2.0.2"},
	} {
		nat, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lan.cidr, StaticIPs: []string{lan.public}, NATType: symmetricNAT(), LoggerFactory: pionLoggerFactory{log: testLogger()}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddRouter(nat); err != nil {
			t.Fatal(err)
		}
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{lan.host}})
		if err != nil {
			t.Fatal(err)
		}
		if err := nat.AddNet(n); err != nil {
			t.Fatal(err)
		}
		lab.callerNets[i] = n
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wan.Stop() })
	lab.relay = startRelay(t, func(c *Config) {
		c.Net = relayNet
		c.Listeners = []Listener{{Network: UDP, Address: labRelayIP + ":3478"}}
		c.RelayIP = netip.MustParseAddr(labRelayIP)
	})
	return lab
}

// caller is one pion peer connection in the lab, with an audio track it
// sends and a channel closed once it has received 20 of the other side's
// packets.
type caller struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	heard chan struct{}
}

func newCaller(t *testing.T, n *vnet.Net, name string, servers []webrtc.ICEServer) *caller {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetNet(n)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// Short ICE timeouts: the direct attempt is expected to fail, and
	// should say so quickly.
	se.SetICETimeouts(2*time.Second, 3*time.Second, 500*time.Millisecond)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me))
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	c := &caller{pc: pc, track: track, heard: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for n := 0; n < 20; {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if strings.HasPrefix(string(pkt.Payload), "audio-") {
				n++
			}
		}
		close(c.heard)
	})
	return c
}

// connect exchanges complete offers and answers (no trickle) between a
// and b.
func connect(t *testing.T, a, b *caller) {
	t.Helper()
	offer, err := a.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(a.pc)
	if err := a.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := b.pc.SetRemoteDescription(*a.pc.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := a.pc.SetRemoteDescription(*b.pc.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

// iceOutcome returns a channel that receives the first final ICE state
// of pc: connected or failed.
func iceOutcome(pc *webrtc.PeerConnection) <-chan webrtc.ICEConnectionState {
	ch := make(chan webrtc.ICEConnectionState, 1)
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateFailed {
			select {
			case ch <- s:
			default:
			}
		}
	})
	return ch
}

// labTURN returns the lab relay as TURN server, with REST credentials for
// identity.
func labTURN(identity string) (urls []string, username, credential string) {
	u, p := RESTCredentials(testSecret, identity, time.Hour, time.Now())
	return []string{"turn:" + labRelayIP + ":3478?transport=udp"}, u, p
}

// startLabSFU starts an SFU on the lab's SFU host and a signaling server
// in front of it. The signaling WebSocket stays on real loopback: only
// media crosses the lab. Callers get TURN credentials for the lab's relay
// in "joined"; the SFU itself gets none, so it has its host candidate
// only. It returns the SFU, the signaling base URL and a token maker for
// room "lab".
func startLabSFU(t *testing.T, lab *natLab) (*sfu.SFU, string, func(identity string) string) {
	t.Helper()
	node, err := sfu.New(sfu.Config{ListenIP: labSFUIP, Port: 7781, Net: lab.sfuNet, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	const key, secret = "lab-key", "lab-secret-lab-secret-lab-secret"
	sig, err := signaling.NewServer(signaling.Config{
		Keys:   map[string]string{key: secret},
		Logger: testLogger(),
		ICEServersFunc: func(identity string) []wire.ICEServer {
			urls, u, p := labTURN(identity)
			return []wire.ICEServer{{URLs: urls, Username: u, Credential: p}}
		},
	}, node)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, sig)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	token := func(identity string) string {
		tok, err := wire.NewToken(key, secret, wire.Grant{Room: "lab", Identity: identity, CanPublish: true, CanSubscribe: true, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return node, hs.URL, token
}

// countAudio closes heard once 20 of the lab's audio packets arrived on
// tr.
// countFrames closes heard once 20 of the other caller's frames arrived,
// end-to-end encrypted (the SDK's default) and decrypted.
func countFrames(rt *sdk.RemoteTrack, heard chan struct{}) {
	for n := 0; n < 20; {
		f, err := rt.ReadFrame()
		if err != nil {
			return
		}
		if f.Encrypted && strings.HasPrefix(string(f.Data), "audio-") {
			n++
		}
	}
	close(heard)
}

// TestSymmetricNATNeedsRelay runs the lab (see natLab) three ways.
//
// Peer to peer, two callers behind symmetric NATs cannot connect with
// only STUN (the relay's binding service): that failure is asserted. With
// the relay as TURN server they do, the selected pair is relayed, and
// audio flows both ways.
//
// Through the SFU, each caller (the Go SDK on the lab's network) has one
// leg to the SFU. The caller's direct candidates cannot reach the SFU
// (the lab's firewall, not the NAT, blocks them; that is by construction
// and not asserted again), so ICE picks the relay: the subtest asserts
// that audio each caller publishes reaches the other through the SFU, and
// that the relay forwarded it in both directions (packets to and from
// its peer, the SFU).
func TestSymmetricNATNeedsRelay(t *testing.T) {
	lab := newNATLab(t)

	t.Run("STUN only fails", func(t *testing.T) {
		stun := []webrtc.ICEServer{{URLs: []string{"stun:1.2.3.4:3478"}}}
		a, b := newCaller(t, lab.callerNets[0], "a", stun), newCaller(t, lab.callerNets[1], "b", stun)
		outcome := iceOutcome(a.pc)
		connect(t, a, b)
		select {
		case s := <-outcome:
			if s != webrtc.ICEConnectionStateFailed {
				t.Fatalf("callers behind symmetric NATs connected without a relay (%s)", s)
			}
		case <-time.After(60 * time.Second): // bounds a broken test only
			t.Fatal("ICE neither connected nor failed")
		}
	})

	t.Run("through the relay", func(t *testing.T) {
		servers := func(identity string) []webrtc.ICEServer {
			u, p := RESTCredentials(testSecret, identity, time.Hour, time.Now())
			return []webrtc.ICEServer{{URLs: []string{"turn:1.2.3.4:3478?transport=udp"}, Username: u, Credential: p}}
		}
		a, b := newCaller(t, lab.callerNets[0], "a", servers("a")), newCaller(t, lab.callerNets[1], "b", servers("b"))
		outcome := iceOutcome(a.pc)
		connect(t, a, b)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		select {
		case s := <-outcome:
			if s != webrtc.ICEConnectionStateConnected {
				t.Fatalf("ICE %s through the relay", s)
			}
		case <-ctx.Done():
			t.Fatal("ICE did not finish")
		}
		for _, c := range []*caller{a, b} {
			go func(c *caller) {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for n := uint16(0); ; n++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					_ = c.track.WriteRTP(&rtp.Packet{
						Header:  rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: n, Timestamp: uint32(n) * 960},
						Payload: fmt.Appendf(nil, "audio-%d", n),
					})
				}
			}(c)
		}
		for i, c := range []*caller{a, b} {
			select {
			case <-c.heard:
			case <-ctx.Done():
				t.Fatalf("caller %d heard nothing", i)
			}
		}
		pair, err := a.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("no selected pair: %v", err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay && pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("selected pair %s does not use the relay", pair)
		}
		if got := testutil.ToFloat64(lab.relay.m.packets.WithLabelValues(fromPeer)); got < 20 {
			t.Errorf("relay counted %v packets from peers, want the audio", got)
		}
	})

	t.Run("through the relay and the SFU", func(t *testing.T) {
		node, url, token := startLabSFU(t, lab)
		relayed := func(d string) float64 { return testutil.ToFloat64(lab.relay.m.packets.WithLabelValues(d)) }
		toBefore, fromBefore := relayed(toPeer), relayed(fromPeer)

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		names := [2]string{"alice", "bob"}
		heard := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		var pubs [2]*sdk.Publication
		for i, name := range names {
			var once sync.Once
			var se webrtc.SettingEngine
			se.SetNet(lab.callerNets[i])
			se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
			c, err := sdk.Connect(ctx, url, sdk.Options{
				Token:         token(name),
				Logger:        testLogger(),
				SettingEngine: &se,
				E2EE:          sdk.E2EEOptions{Admission: sdk.AdmitAll},
				Handlers: sdk.Handlers{Track: func(rt *sdk.RemoteTrack) {
					if rt.Participant.Identity == names[1-i] {
						once.Do(func() { go countFrames(rt, heard[i]) })
					}
				}},
			})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if pubs[i], err = c.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}); err != nil {
				t.Fatalf("%s publish: %v", name, err)
			}
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		for _, pub := range pubs {
			wg.Go(func() {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for n := 0; ; n++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					_ = pub.WriteSample(pionmedia.Sample{Data: fmt.Appendf(nil, "audio-%d", n), Duration: 20 * time.Millisecond})
				}
			})
		}
		for i, name := range names {
			select {
			case <-heard[i]:
			case <-ctx.Done():
				t.Fatalf("%s heard nothing from %s through the SFU", name, names[1-i])
			}
		}
		if got := node.Counts().Subscriptions; got != 2 {
			t.Errorf("SFU holds %d subscriptions, want 2 (each caller to the other)", got)
		}
		// Each caller heard 20 packets of the other's audio: 40 came from
		// the SFU through the relay, and 40 went into it before. ICE's
		// own checks through the relay stay below that when the media
		// path is direct (without the firewall it is about 15 each way).
		if got := relayed(toPeer) - toBefore; got < 40 {
			t.Errorf("relay forwarded %v packets to the SFU, want the callers' audio (40 or more)", got)
		}
		if got := relayed(fromPeer) - fromBefore; got < 40 {
			t.Errorf("relay forwarded %v packets from the SFU, want the forwarded audio (40 or more)", got)
		}
	})
}
