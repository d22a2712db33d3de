package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

func quietLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestRelayOnlyCall forces both callers of a call to relay-only ICE and
// hands them cmd/turn as their only ICE server, over UDP, TCP and TLS in
// turn: the call connects and media flows through the relay and the SFU
// both ways. The SFU listens on loopback, which the relay refuses by
// default, so the relay is started with --allow-peer 127.0.0.0/8: the
// operator opt-in for its own SFU.
func TestRelayOnlyCall(t *testing.T) {
	r := startCmd(t, "--auth-secret", testSecret, "--allow-peer", "127.0.0.0/8",
		"--listen", "127.0.0.1:0", "--listen", "tls://127.0.0.1:0", "--tls-cert", testCert, "--tls-key", testKey)
	tests := []struct {
		name string
		url  string
	}{
		{"udp", "turn:" + r.listen["udp"] + "?transport=udp"},
		{"tcp", "turn:" + r.listen["tcp"] + "?transport=tcp"},
		{"tls", "turns:" + r.listen["tls"] + "?transport=tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := scrape(t, r.metrics, `sotto_turn_relayed_packets_total{direction="from_peer"}`)
			relayedCall(t, tt.url)
			if after := scrape(t, r.metrics, `sotto_turn_relayed_packets_total{direction="from_peer"}`); after-before < 50 {
				t.Errorf("relay counted %v packets from the SFU, want the call's media", after-before)
			}
		})
	}
}

// relayedCall runs a two-party call whose clients may only use relayed
// candidates from turnURL, and waits until each receives the other's
// audio.
func relayedCall(t *testing.T, turnURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := quietLogger()
	node, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", Port: 0, IncludeLoopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	const key, secret = "test-key", "test-secret-test-secret-test-secret-0123"
	sig, err := signaling.NewServer(signaling.Config{
		Keys:   map[string]string{key: secret},
		Logger: log,
		Limits: signaling.ServerLimits{JoinsPerSecondPerIP: 1000, JoinBurst: 1000},
		// What cmd/sfu does with turn settings: fresh REST credentials
		// per participant.
		ICEServersFunc: func(identity string) []wire.ICEServer {
			u, p := relay.RESTCredentials(testSecret, identity, 10*time.Minute, time.Now())
			return []wire.ICEServer{{URLs: []string{turnURL}, Username: u, Credential: p}}
		},
	}, node)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, sig)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	got := map[string]chan struct{}{"alice": make(chan struct{}), "bob": make(chan struct{})}
	join := func(identity string) *client.Client {
		tok, err := wire.NewToken(key, secret, wire.Grant{Room: "relay", Identity: identity, CanPublish: true, CanSubscribe: true})
		if err != nil {
			t.Fatal(err)
		}
		var se webrtc.SettingEngine
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
		done := got[identity]
		c, err := client.Connect(ctx, hs.URL, client.Options{
			Token: tok, SettingEngine: &se, Logger: log,
			ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			// The relay path is under test, with raw RTP; E2EE has tests of its own.
			E2EE: client.E2EEOptions{Disabled: true},
			Handlers: client.Handlers{Track: func(rt *client.RemoteTrack) {
				go func() {
					// Enough packets to prove a flow, not a fluke.
					for n := 0; n < 25; {
						pkt, _, err := rt.Track.ReadRTP()
						if err != nil {
							return
						}
						if strings.HasPrefix(string(pkt.Payload), rt.Info.Identity+"-") {
							n++
						}
					}
					close(done)
				}()
			}},
		})
		if err != nil {
			t.Fatalf("%s: Connect: %v", identity, err)
		}
		return c
	}
	alice, bob := join("alice"), join("bob")
	defer alice.Close()
	defer bob.Close()
	for _, c := range []*client.Client{alice, bob} {
		pub, err := c.PublishRTP(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		go func(who string) {
			tick := time.NewTicker(20 * time.Millisecond) // an encoder's pace
			defer tick.Stop()
			for n := uint16(0); ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_ = pub.WriteRTP(&rtp.Packet{
					Header:  rtp.Header{Version: 2, SequenceNumber: n, Timestamp: uint32(n) * 960},
					Payload: fmt.Appendf(nil, "%s-%d", who, n),
				})
			}
		}(c.Self().Identity)
	}
	for who, ch := range got {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s received no relayed media", who)
		}
	}
}

// scrape returns the value of one series on a /metrics page.
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s not on %s", series, url)
	return 0
}
