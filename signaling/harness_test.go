package signaling_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// waitTimeout bounds every wait for something that takes milliseconds on
// an idle machine; generous so that a loaded CI box still passes.
const waitTimeout = 15 * time.Second

// testLogger discards logs unless SOTTO_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// harness is a signaling server in front of a real SFU on loopback UDP,
// served over a real HTTP server.
type harness struct {
	srv *signaling.Server
	sfu *sfu.SFU
	reg *prometheus.Registry
	url string
}

func newHarness(t *testing.T, mutate func(*signaling.Config)) *harness {
	t.Helper()
	sfu, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", Port: 0, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("sfu.New: %v", err)
	}
	reg := prometheus.NewRegistry()
	cfg := signaling.Config{
		Keys:       map[string]string{testKey: testSecret},
		Logger:     testLogger(),
		Registerer: reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := signaling.NewServer(cfg, sfu)
	if err != nil {
		_ = sfu.Close()
		t.Fatalf("NewServer: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
		ts.Close()
		_ = sfu.Close()
	})
	return &harness{srv: srv, sfu: sfu, reg: reg, url: "ws" + strings.TrimPrefix(ts.URL, "http") + wire.Path}
}

// grant is a token's grants, as bits.
type grant int

const (
	canPublish grant = 1 << iota
	canSubscribe

	noGrants grant = 0
	pubSub         = canPublish | canSubscribe
)

func token(t *testing.T, identity, room string, g grant) string {
	t.Helper()
	tok, err := wire.NewToken(testKey, testSecret, wire.Grant{
		Room: room, Identity: identity, CanPublish: g&canPublish != 0, CanSubscribe: g&canSubscribe != 0, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// msg is one message from the server.
type msg struct {
	raw    []byte
	fields map[string]json.RawMessage
}

func (m msg) typ() string { return m.str("type") }

func (m msg) str(key string) string {
	var s string
	_ = json.Unmarshal(m.fields[key], &s)
	return s
}

func (m msg) boolean(key string) bool {
	var b bool
	_ = json.Unmarshal(m.fields[key], &b)
	return b
}

func (m msg) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(m.raw, v); err != nil {
		t.Fatalf("decode %s: %v", m.raw, err)
	}
}

func (m msg) String() string { return string(m.raw) }

// client is a raw protocol client over coder/websocket. Reads happen on
// the test goroutine only; writes may come from any goroutine.
type client struct {
	t        *testing.T
	name     string
	conn     *websocket.Conn
	sid      string
	identity string
	// seen records every message read, for assertions about what did not
	// arrive.
	seen []msg
	// onMessage, when set, sees every message read (a pion peer applies
	// candidates with it).
	onMessage func(msg)
}

func (h *harness) dial(t *testing.T, name string) *client {
	t.Helper()
	return h.dialWith(t, name, nil)
}

func (h *harness) dialWith(t *testing.T, name string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, h.url, opts)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &client{t: t, name: name, conn: conn}
}

func (c *client) trySend(v any) error {
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, data)
}

// send writes v (a string is sent as is); test goroutine only.
func (c *client) send(v any) {
	c.t.Helper()
	if err := c.trySend(v); err != nil {
		c.t.Fatalf("%s: send: %v", c.name, err)
	}
}

func (c *client) read() (msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	m := msg{raw: data}
	if err := json.Unmarshal(data, &m.fields); err != nil {
		return msg{}, fmt.Errorf("server sent non-JSON %q: %w", data, err)
	}
	c.seen = append(c.seen, m)
	if c.onMessage != nil {
		c.onMessage(m)
	}
	return m, nil
}

// next returns the next message.
func (c *client) next() msg {
	c.t.Helper()
	m, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return m
}

// waitFor reads until a message matches, and returns it.
func (c *client) waitFor(what string, match func(msg) bool) msg {
	c.t.Helper()
	var skipped []string
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v (skipped %v)", c.name, what, err, skipped)
		}
		if match(m) {
			return m
		}
		skipped = append(skipped, m.typ())
	}
}

func (c *client) waitType(typ string) msg {
	c.t.Helper()
	return c.waitFor(typ, func(m msg) bool { return m.typ() == typ })
}

// expectError waits for an error with code and checks its fatal flag.
func (c *client) expectError(code string, fatal bool) msg {
	c.t.Helper()
	m := c.waitFor("error "+code, func(m msg) bool { return m.typ() == wire.TypeError })
	if m.str("code") != code || m.boolean("fatal") != fatal {
		c.t.Fatalf("%s: got %s, want error %s fatal=%v", c.name, m, code, fatal)
	}
	return m
}

// expectClose reads until the connection ends and checks it was closed
// with code. It returns what was read on the way.
func (c *client) expectClose(code websocket.StatusCode) []msg {
	c.t.Helper()
	var got []msg
	for {
		m, err := c.read()
		if err == nil {
			got = append(got, m)
			continue
		}
		if st := websocket.CloseStatus(err); st != code {
			c.t.Fatalf("%s: connection ended with %v (status %d), want close %d; read %v", c.name, err, st, code, got)
		}
		return got
	}
}

// ping sends a ping and waits for its pong.
func (c *client) ping(id string) {
	c.t.Helper()
	c.send(wire.Ping{Type: wire.TypePing, ID: id})
	c.waitFor("pong "+id, func(m msg) bool { return m.typ() == wire.TypePong && m.str("id") == id })
}

// join connects identity to room and checks that "joined" is the first
// message it gets.
func (h *harness) join(t *testing.T, identity, room string, g grant) (*client, wire.Joined) {
	t.Helper()
	return h.joinWith(t, identity, wire.Join{Token: token(t, identity, room, g)})
}

func (h *harness) joinWith(t *testing.T, identity string, j wire.Join) (*client, wire.Joined) {
	t.Helper()
	c := h.dial(t, identity)
	j.Type = wire.TypeJoin
	if j.Protocol == 0 {
		j.Protocol = wire.ProtocolVersion
	}
	c.send(j)
	m := c.next()
	if m.typ() != wire.TypeJoined {
		t.Fatalf("%s: first message after join is %s, want joined", identity, m)
	}
	var joined wire.Joined
	m.decode(t, &joined)
	c.sid = joined.Participant.SID
	c.identity = joined.Participant.Identity
	return c, joined
}

// expectParticipantJoined waits for the announcement of who.
func (c *client) expectParticipantJoined(who *client) wire.ParticipantJoined {
	c.t.Helper()
	m := c.waitType(wire.TypeParticipantJoin)
	var pj wire.ParticipantJoined
	m.decode(c.t, &pj)
	if pj.Participant.Identity != who.identity || pj.Participant.SID != who.sid {
		c.t.Fatalf("%s: participant_joined for %s/%s, want %s/%s", c.name, pj.Participant.Identity, pj.Participant.SID, who.identity, who.sid)
	}
	return pj
}

// leave sends leave and waits for the normal close.
func (c *client) leave() {
	c.t.Helper()
	c.send(wire.Leave{Type: wire.TypeLeave})
	c.expectClose(wire.CloseNormal)
}

// eventually waits for cond, checking it on a short tick; for state that
// no message announces (counts after a connection is torn down).
func eventually(t *testing.T, what string, cond func() bool) {
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

// newClientAPI is the client side's WebRTC stack: loopback UDP4 only, no
// mDNS, no interceptors.
func newClientAPI(t *testing.T) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// audioOffer is a real offer with one sending audio m-line, from a pion
// peer connection that is closed at cleanup.
func audioOffer(t *testing.T) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP, string) {
	t.Helper()
	pc, err := newClientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(waitTimeout):
		t.Fatal("ICE gathering did not complete")
	}
	return pc, track, pc.LocalDescription().SDP
}

// publishAudio publishes one audio track from c over signaling with a
// real pion peer and sends RTP on it until the test ends. It returns once
// the offer is answered; the track_published follows when media flows.
func publishAudio(t *testing.T, c *client) {
	t.Helper()
	pc, track, sdp := audioOffer(t)

	// Server candidates arrive after the answer (the server orders them);
	// keep any that do not, as a real client must.
	var (
		mu      sync.Mutex
		pending []webrtc.ICECandidateInit
	)
	c.onMessage = func(m msg) {
		if m.typ() != wire.TypeCandidate || m.str("target") != wire.TargetPublisher {
			return
		}
		var cand wire.Candidate
		if json.Unmarshal(m.raw, &cand) != nil || cand.Candidate == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if pc.RemoteDescription() == nil {
			t.Errorf("%s: candidate before the answer", c.name)
			pending = append(pending, *cand.Candidate)
			return
		}
		if err := pc.AddICECandidate(*cand.Candidate); err != nil {
			t.Errorf("%s: AddICECandidate: %v", c.name, err)
		}
	}

	c.send(wire.SessionDescription{Type: wire.TypeOffer, ID: "pub", Target: wire.TargetPublisher, SDP: sdp})
	ans := c.waitFor("answer", func(m msg) bool { return m.typ() == wire.TypeAnswer })
	if ans.str("id") != "pub" || ans.str("target") != wire.TargetPublisher {
		t.Fatalf("%s: answer %s", c.name, ans)
	}
	mu.Lock()
	err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.str("sdp")})
	for _, cand := range pending {
		_ = pc.AddICECandidate(cand)
	}
	mu.Unlock()
	if err != nil {
		t.Fatalf("%s: SetRemoteDescription: %v", c.name, err)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		// Paced at an audio frame's rate; pacing is load shaping, not
		// synchronisation.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		payload := bytes.Repeat([]byte{0xAB}, 60)
		for i := uint16(0); ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pkt := &rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: i, Timestamp: uint32(i) * 960, SSRC: 0x1234},
				Payload: payload,
			}
			if err := track.WriteRTP(pkt); err != nil {
				return
			}
		}
	}()
}
