package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// TestTURNCredentialsInJoined checks that a node configured with a TURN
// relay hands every participant, in joined, the relay's URLs with TURN
// REST credentials of its own: "expiry:identity" signed with the shared
// secret, expiring after the configured TTL, next to the static servers.
func TestTURNCredentialsInJoined(t *testing.T) {
	const (
		apiKey     = "turn-test"
		turnSecret = "turn-shared-secret-0123456789"
		ttl        = 90 * time.Minute
	)
	turnURLs := []string{"turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349?transport=tcp"}
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0", "--api-key", apiKey,
		"--ice-server", "stun:stun.example.org:3478",
		"--turn-url", strings.Join(turnURLs, ","), "--turn-credential-ttl", ttl.String()},
		map[string]string{"SOTTO_API_SECRET": testSecret, "SOTTO_TURN_SECRET": turnSecret})

	for _, identity := range []string{"alice", "bob"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		tok, err := wire.NewToken(apiKey, testSecret, wire.Grant{Room: "r", Identity: identity, CanSubscribe: true})
		if err != nil {
			t.Fatal(err)
		}
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.base, "http")+wire.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		join, _ := json.Marshal(wire.Join{Type: wire.TypeJoin, Protocol: wire.ProtocolVersion, Token: tok})
		if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
			t.Fatal(err)
		}
		typ, raw := readMessage(ctx, t, ws)
		if typ != wire.TypeJoined {
			t.Fatalf("answer to join is %s: %s", typ, raw)
		}
		var j wire.Joined
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		if len(j.ICEServers) != 2 || j.ICEServers[0].URLs[0] != "stun:stun.example.org:3478" {
			t.Fatalf("%s: ice_servers %+v, want the static STUN server then the TURN relay", identity, j.ICEServers)
		}
		turn := j.ICEServers[1]
		if strings.Join(turn.URLs, ",") != strings.Join(turnURLs, ",") {
			t.Errorf("%s: TURN URLs %v, want %v", identity, turn.URLs, turnURLs)
		}
		expiry, who, ok := strings.Cut(turn.Username, ":")
		if !ok || who != identity {
			t.Fatalf("%s: username %q, want expiry:%s", identity, turn.Username, identity)
		}
		exp, err := strconv.ParseInt(expiry, 10, 64)
		if err != nil {
			t.Fatalf("%s: username %q: %v", identity, turn.Username, err)
		}
		if d := time.Until(time.Unix(exp, 0)); d < ttl-time.Minute || d > ttl+time.Second {
			t.Errorf("%s: credential expires in %v, want %v", identity, d, ttl)
		}
		mac := hmac.New(sha1.New, []byte(turnSecret))
		mac.Write([]byte(turn.Username))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); turn.Credential != want {
			t.Errorf("%s: credential %q is not base64(HMAC-SHA1(secret, username)) %q", identity, turn.Credential, want)
		}
		_ = ws.CloseNow()
		cancel()
	}
}

// TestInProcessRelay runs the gateway with its TURN relay in-process (the
// turn: section's listen), and two callers forced to relay-only ICE call
// each other through it. The SFU's media port is on loopback, which the
// relay refuses by default: the gateway opens exactly that endpoint.
func TestInProcessRelay(t *testing.T) {
	const apiKey = "relay-test"
	file := filepath.Join(t.TempDir(), "sfu.yaml")
	if err := os.WriteFile(file, []byte("media_ip: 127.0.0.1\nturn:\n  listen: [\"127.0.0.1:0\"]\n  min_port: 0\n  max_port: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, []string{"--config", file, "--http", "127.0.0.1:0", "--media-port", "0", "--api-key", apiKey},
		map[string]string{"SOTTO_API_SECRET": testSecret, "SOTTO_TURN_SECRET": "in-process-turn-secret-0123"})
	if !strings.Contains(n.stdout.String(), "TURN:       udp 127.0.0.1:") {
		t.Fatalf("banner does not show the relay:\n%s", n.stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	heard := map[string]chan struct{}{"alice": make(chan struct{}), "bob": make(chan struct{})}
	var clients []*client.Client
	for who, done := range heard {
		tok, err := wire.NewToken(apiKey, testSecret, wire.Grant{Room: "r", Identity: who, CanPublish: true, CanSubscribe: true})
		if err != nil {
			t.Fatal(err)
		}
		var se webrtc.SettingEngine
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		c, err := client.Connect(ctx, n.base, client.Options{
			Token: tok, SettingEngine: &se, ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			// The relay path is under test, with raw RTP; E2EE has tests of its own.
			E2EE: client.E2EEOptions{Disabled: true},
			Handlers: client.Handlers{Track: func(rt *client.RemoteTrack) {
				go func() {
					for got := 0; got < 25; {
						pkt, _, err := rt.Track.ReadRTP()
						if err != nil {
							return
						}
						if strings.HasPrefix(string(pkt.Payload), rt.Info.Identity+"-") {
							got++
						}
					}
					close(done)
				}()
			}},
		})
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	for _, c := range clients {
		pub, err := c.PublishRTP(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
		if err != nil {
			t.Fatal(err)
		}
		go func(self string) {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for seq := uint16(0); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_ = pub.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: fmt.Appendf(nil, "%s-%d", self, seq)})
			}
		}(c.Self().Identity)
	}
	for who, done := range heard {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("%s heard nothing through the in-process relay", who)
		}
	}
	_, metrics := get(t, &http.Client{Timeout: 5 * time.Second}, n.base+"/metrics")
	m := regexp.MustCompile(`sotto_turn_relayed_packets_total\{direction="from_peer"\} (\d+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatal("/metrics lacks the relay's series")
	}
	if v, _ := strconv.Atoi(m[1]); v < 50 {
		t.Errorf("relay counted %d packets from the SFU, want the call's media", v)
	}
}
