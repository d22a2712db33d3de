//go:build natcall

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/client"
)

// TestNATClient is one caller of the kernel-NAT scenario
// (deploy/netns/nat-call.sh), which runs this test binary inside a client
// network namespace behind a MASQUERADE router. It joins with the token
// given, publishes audio, and passes once it has received 25 packets of
// the other caller's audio. It is built only with the natcall tag, which
// the script sets, so the ordinary test run neither runs nor skips it.
func TestNATClient(t *testing.T) {
	url, token, peer := os.Getenv("SOTTO_NAT_URL"), os.Getenv("SOTTO_NAT_TOKEN"), os.Getenv("SOTTO_NAT_PEER")
	if url == "" || token == "" || peer == "" {
		t.Fatal("TestNATClient is run by deploy/netns/nat-call.sh, which sets SOTTO_NAT_URL, SOTTO_NAT_TOKEN and SOTTO_NAT_PEER")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	got := make(chan struct{})
	c, err := client.Connect(ctx, url, client.Options{
		Token:  token,
		Logger: quietLogger(),
		// The NAT path is under test, with raw RTP; E2EE has tests of its own.
		E2EE: client.E2EEOptions{Disabled: true},
		Handlers: client.Handlers{Track: func(rt *client.RemoteTrack) {
			if rt.Info.Identity != peer {
				return
			}
			go func() {
				for n := 0; n < 25; {
					pkt, _, err := rt.Track.ReadRTP()
					if err != nil {
						return
					}
					if strings.HasPrefix(string(pkt.Payload), peer+"-") {
						n++
					}
				}
				close(got)
			}()
		}},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	pub, err := c.PublishRTP(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	self := c.Self().Identity
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := uint16(0); ; n++ {
		select {
		case <-got:
			fmt.Printf("%s: received %s's audio\n", self, peer)
			// Keep sending a little longer so that the other caller,
			// which may be a moment behind, gets its 25 packets too.
			for range 50 {
				<-tick.C
				n++
				_ = pub.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: n, Timestamp: uint32(n) * 960}, Payload: fmt.Appendf(nil, "%s-%d", self, n)})
			}
			return
		case <-ctx.Done():
			t.Fatalf("%s: no audio from %s", self, peer)
		case <-tick.C:
		}
		_ = pub.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: n, Timestamp: uint32(n) * 960}, Payload: fmt.Appendf(nil, "%s-%d", self, n)})
	}
}
