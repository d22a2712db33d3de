package client_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// localServer is a real Sotto node on loopback for the tests and examples:
// an SFU and the signaling server in front of it, reached through one or
// more HTTP front ends.
type localServer struct {
	node *sfu.SFU
	sig  *signaling.Server
	key  string
	sec  string
	log  *slog.Logger

	mu        sync.Mutex
	frontends []*frontend
}

// frontend is one HTTP listener for the signaling server. Tests give each
// client its own, so that closing a frontend's connections drops exactly
// that client's WebSocket, the way a network failure would.
type frontend struct {
	// URL is the server's base URL, "http://127.0.0.1:port".
	URL string
	hs  *httptest.Server

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// quietLogger discards the logs: tests assert on behaviour. With
// SOTTO_TEST_LOG=1 they go to stderr, debug and up.
func quietLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startLocalServer() (*localServer, error) {
	return startLocalServerWith(signaling.ServerLimits{})
}

// startLocalServerWith starts a server with limits; zero fields take the
// server's defaults, but joins are never rate limited (tests join and
// rejoin fast from one address).
func startLocalServerWith(limits signaling.ServerLimits, media ...func(*sfu.Config)) (*localServer, error) {
	log := quietLogger()
	cfg := sfu.Config{ListenIP: "127.0.0.1", Port: 0, IncludeLoopback: true, Logger: log}
	for _, f := range media {
		f(&cfg)
	}
	node, err := sfu.New(cfg)
	if err != nil {
		return nil, err
	}
	const key, secret = "test-key", "test-secret-test-secret-test-secret-0123"
	limits.JoinsPerSecondPerIP, limits.JoinBurst = 1000, 1000
	sig, err := signaling.NewServer(signaling.Config{
		Keys:   map[string]string{key: secret},
		Logger: log,
		Limits: limits,
	}, node)
	if err != nil {
		_ = node.Close()
		return nil, err
	}
	return &localServer{node: node, sig: sig, key: key, sec: secret}, nil
}

// Frontend starts another HTTP listener for the signaling server.
func (s *localServer) Frontend() *frontend {
	f := &frontend{conns: make(map[net.Conn]struct{})}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, s.sig)
	f.hs = httptest.NewUnstartedServer(mux)
	f.hs.Config.ConnState = func(c net.Conn, st http.ConnState) {
		// The WebSocket takes the connection over (hijacks it): from
		// then on only closing the net.Conn ends it from this side.
		if st == http.StateHijacked {
			f.mu.Lock()
			f.conns[c] = struct{}{}
			f.mu.Unlock()
		}
	}
	f.hs.Start()
	f.URL = f.hs.URL
	s.mu.Lock()
	s.frontends = append(s.frontends, f)
	s.mu.Unlock()
	return f
}

// Drop closes every WebSocket connection this frontend has accepted, as a
// network failure would: no close frame, no going_away.
func (f *frontend) Drop() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.conns)
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
	return n
}

// Token returns an access token for identity in room "test".
func (s *localServer) Token(identity string, canPublish, canSubscribe bool) string {
	t, err := wire.NewToken(s.key, s.sec, wire.Grant{
		Room: "test", Identity: identity, CanPublish: canPublish, CanSubscribe: canSubscribe,
	})
	if err != nil {
		panic(fmt.Sprintf("token: %v", err))
	}
	return t
}

// Close stops the frontends, then the SFU.
func (s *localServer) Close() {
	s.mu.Lock()
	fs := s.frontends
	s.frontends = nil
	s.mu.Unlock()
	for _, f := range fs {
		f.Drop()
		f.hs.Close()
	}
	_ = s.node.Close()
}

// loopbackSettings makes pion gather loopback candidates only, quickly:
// what a test on one machine needs.
func loopbackSettings() *webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return &se
}

// opus is the codec the tests publish: the SFU never decodes a payload,
// so any bytes will do as Opus frames.
func opus() webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
}

// sendAudio writes a 20ms sample carrying "sotto-<n>" every 20ms until stop
// is closed, then closes done. Pacing is what a microphone would do; the
// tests wait for what they expect to receive, never for time to pass.
func sendAudio(p *client.Publication, stop <-chan struct{}) (done <-chan struct{}) {
	d := make(chan struct{})
	go func() {
		defer close(d)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			_ = p.WriteSample(media.Sample{Data: fmt.Appendf(nil, "sotto-%d", n), Duration: 20 * time.Millisecond})
		}
	}()
	return d
}

// sendVP8 writes a 30fps stream of small VP8 keyframes as RTP until stop
// is closed, then closes done. The SFU looks at the VP8 payload
// descriptor and frame tag only; the rest need not decode.
func sendVP8(p *client.Publication, stop <-chan struct{}) (done <-chan struct{}) {
	d := make(chan struct{})
	go func() {
		defer close(d)
		t := time.NewTicker(33 * time.Millisecond)
		defer t.Stop()
		// Payload descriptor (S=1, partition 0), frame tag (keyframe,
		// shown), start code, 320x240.
		frame := []byte{0x10, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}
		for n := uint16(0); ; n++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			_ = p.WriteRTP(&rtp.Packet{
				Header:  rtp.Header{Version: 2, Marker: true, SequenceNumber: n, Timestamp: uint32(n) * 3000},
				Payload: frame,
			})
		}
	}()
	return d
}
