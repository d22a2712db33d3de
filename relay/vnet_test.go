package relay

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// symmetricNAT maps and filters per destination address and port: every
// new peer sees a new source port, so a server-reflexive address learnt
// from STUN is useless to anyone else (RFC 4787's worst case).
func symmetricNAT() *vnet.NATType {
	return &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
}

// natLab is a simulated internet (pion's vnet): a WAN with the relay on
// 1.2.3.4, and two callers each behind its own symmetric NAT.
type natLab struct {
	wan        *vnet.Router
	relay      *Server
	callerNets [2]*vnet.Net
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
	lab := &natLab{wan: wan}
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
		c.Listeners = []Listener{{Network: UDP, Address: "1.2.3.4:3478"}}
		c.RelayIP = netip.MustParseAddr("1.2.3.4")
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

// TestSymmetricNATNeedsRelay puts two callers behind symmetric NATs on
// pion's virtual network. With only STUN (the relay's binding service)
// they cannot connect; with the relay as TURN server they do, and audio
// flows both ways through it.
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
}
