package client_test

// Call-level tests: several SDK clients, a real SFU and a real signaling
// server on loopback, checking what callers see end to end.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// callPeer is one SDK client with what it received, per remote track.
type callPeer struct {
	identity string
	c        *client.Client

	mu       sync.Mutex
	tracks   map[string]*callRecv // by track SID
	events   chan string          // "published:SID", "unpublished:SID", "left:IDENTITY:REASON", "joined:IDENTITY"
	gotTrack chan *callRecv
}

// callRecv counts the packets of one remote track whose payloads matched.
type callRecv struct {
	info     wire.TrackInfo
	mu       sync.Mutex
	verified int
	bad      error
	progress chan struct{} // receives after every verified packet (non-blocking)
}

func (r *callRecv) count() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verified, r.bad
}

func joinCall(ctx context.Context, t *testing.T, srv *localServer, url, identity string) *callPeer {
	t.Helper()
	p := &callPeer{
		identity: identity,
		tracks:   map[string]*callRecv{},
		events:   make(chan string, 1024),
		gotTrack: make(chan *callRecv, 64),
	}
	opts := client.Options{
		Token:         srv.Token(identity, true, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		// These tests check that the SFU forwards RTP byte for byte, so
		// they publish raw RTP: E2EE off (e2ee_test.go has its tests).
		E2EE: client.E2EEOptions{Disabled: true},
		Handlers: client.Handlers{
			TrackPublished:   func(ti wire.TrackInfo) { p.event("published:" + ti.SID) },
			TrackUnpublished: func(ti wire.TrackInfo) { p.event("unpublished:" + ti.SID) },
			ParticipantJoined: func(pi wire.ParticipantInfo) {
				p.event("joined:" + pi.Identity)
			},
			ParticipantLeft: func(pi wire.ParticipantInfo, reason string) {
				p.event("left:" + pi.Identity + ":" + reason)
			},
			Track: func(rt *client.RemoteTrack) { p.receive(rt) },
		},
	}
	c, err := client.Connect(ctx, url, opts)
	if err != nil {
		t.Fatalf("%s: Connect: %v", identity, err)
	}
	p.c = c
	t.Cleanup(func() { _ = c.Close() })
	return p
}

func (p *callPeer) event(e string) {
	select {
	case p.events <- e:
	default:
	}
}

// receive reads one remote track until it ends, checking every payload
// against what its publisher must have sent.
func (p *callPeer) receive(rt *client.RemoteTrack) {
	r := &callRecv{info: rt.Info, progress: make(chan struct{}, 1)}
	p.mu.Lock()
	p.tracks[rt.Info.SID] = r
	p.mu.Unlock()
	p.gotTrack <- r
	go func() {
		for {
			pkt, _, err := rt.Track.ReadRTP()
			if err != nil {
				return
			}
			err = checkPayload(rt.Info, pkt.Payload)
			r.mu.Lock()
			if err != nil && r.bad == nil {
				r.bad = err
			} else if err == nil {
				r.verified++
			}
			r.mu.Unlock()
			select {
			case r.progress <- struct{}{}:
			default:
			}
		}
	}()
}

// payloadFor is the payload a test publisher sends as packet n of a track:
// a readable header naming publisher, kind and n, then filler derived from
// all three, so a receiver can check every byte without shared state.
func payloadFor(identity, kind string, n uint32) []byte {
	head := fmt.Sprintf("%s|%s|", identity, kind)
	size := 40 + int(n%200)
	b := make([]byte, 0, len(head)+4+size)
	b = append(b, head...)
	b = binary.BigEndian.AppendUint32(b, n)
	seed := n*2654435761 + uint32(len(identity))*97 + uint32(len(kind))
	for i := 0; i < size; i++ {
		seed = seed*1103515245 + 12345
		b = append(b, byte(seed>>16))
	}
	return b
}

func checkPayload(info wire.TrackInfo, payload []byte) error {
	head := fmt.Sprintf("%s|%s|", info.Identity, info.Kind)
	if !bytes.HasPrefix(payload, []byte(head)) || len(payload) < len(head)+4 {
		return fmt.Errorf("track %s: payload does not start with %q: %q", info.SID, head, payload[:min(len(payload), 32)])
	}
	n := binary.BigEndian.Uint32(payload[len(head):])
	if want := payloadFor(info.Identity, info.Kind, n); !bytes.Equal(payload, want) {
		return fmt.Errorf("track %s packet %d: payload differs from what was sent", info.SID, n)
	}
	return nil
}

// publishTestTracks publishes an Opus and a VP8 raw-RTP track and keeps
// writing packets, paced like an encoder, until ctx ends.
func publishTestTracks(ctx context.Context, t *testing.T, p *callPeer) []*client.Publication {
	t.Helper()
	var pubs []*client.Publication
	for _, k := range []struct {
		kind  string
		codec webrtc.RTPCodecCapability
		every time.Duration
		ts    uint32
	}{
		{wire.KindAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, 20 * time.Millisecond, 960},
		{wire.KindVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, 10 * time.Millisecond, 900},
	} {
		pub, err := p.c.PublishRTP(ctx, p.identity+"-"+k.kind, k.codec)
		if err != nil {
			t.Fatalf("%s: PublishRTP %s: %v", p.identity, k.kind, err)
		}
		pubs = append(pubs, pub)
		go func() {
			tick := time.NewTicker(k.every)
			defer tick.Stop()
			for n := uint32(0); ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_ = pub.WriteRTP(&rtp.Packet{
					Header: rtp.Header{
						Version: 2, SequenceNumber: uint16(n), Timestamp: n * k.ts,
						Marker: k.kind == wire.KindVideo,
					},
					Payload: payloadFor(p.identity, k.kind, n),
				})
			}
		}()
	}
	return pubs
}

// waitTracks waits until p receives tracks from every identity in from, of
// both kinds, each with at least min verified packets.
func (p *callPeer) waitTracks(t *testing.T, from []string, minPackets int) {
	t.Helper()
	deadline := time.After(testTimeout)
	want := map[string]bool{}
	for _, id := range from {
		want[id+"|"+wire.KindAudio] = true
		want[id+"|"+wire.KindVideo] = true
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done := 0
		p.mu.Lock()
		for _, r := range p.tracks {
			n, bad := r.count()
			if bad != nil {
				p.mu.Unlock()
				t.Fatalf("%s: %v", p.identity, bad)
			}
			if want[r.info.Identity+"|"+r.info.Kind] && n >= minPackets {
				done++
			}
		}
		p.mu.Unlock()
		if done == len(want) {
			return
		}
		select {
		case <-deadline:
			p.mu.Lock()
			var got []string
			for _, r := range p.tracks {
				n, _ := r.count()
				got = append(got, fmt.Sprintf("%s/%s:%d", r.info.Identity, r.info.Kind, n))
			}
			p.mu.Unlock()
			t.Fatalf("%s: wanted %d tracks from %v with %d packets each; have %v", p.identity, len(want), from, minPackets, got)
		case <-tick.C:
		}
	}
}

func (p *callPeer) waitEvent(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case e := <-p.events:
			if e == want {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no %q event within %v", p.identity, want, testTimeout)
		}
	}
}

func TestThreePartyCallAndLateJoiner(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	names := []string{"alice", "bob", "carol"}
	peers := map[string]*callPeer{}
	for _, id := range names {
		peers[id] = joinCall(ctx, t, srv, url, id)
	}
	for _, id := range names {
		publishTestTracks(ctx, t, peers[id])
	}
	others := func(self string) []string {
		var o []string
		for _, id := range names {
			if id != self {
				o = append(o, id)
			}
		}
		return o
	}
	for _, id := range names {
		peers[id].waitTracks(t, others(id), 50)
	}

	dave := joinCall(ctx, t, srv, url, "dave")
	dave.waitTracks(t, names, 50)
	if c := srv.node.Counts(); c.Tracks != 6 || c.Participants != 4 || c.Rooms != 1 {
		t.Fatalf("SFU counts = %+v, want 6 tracks, 4 participants, 1 room", c)
	}
}

func TestUnpublishLeaveAndDropRemoveTracks(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	watcher := joinCall(ctx, t, srv, url, "watcher")
	alice := joinCall(ctx, t, srv, url, "alice")
	pubs := publishTestTracks(ctx, t, alice)
	watcher.waitTracks(t, []string{"alice"}, 10)

	// Unpublish: the watcher is told and the SFU forgets the track.
	audio, err := pubs[0].WaitPublished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Unpublish(ctx, pubs[0]); err != nil {
		t.Fatalf("Unpublish: %v", err)
	}
	watcher.waitEvent(t, "unpublished:"+audio.SID)
	waitCounts(t, srv, func(c sfu.Counts) bool { return c.Tracks == 1 }, "1 track after unpublish")

	// Leave: the remaining track goes too.
	if err := alice.c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	watcher.waitEvent(t, "left:alice:left")
	waitCounts(t, srv, func(c sfu.Counts) bool { return c.Tracks == 0 && c.Participants == 1 }, "no tracks after leave")

	// A dropped connection (no leave message) does the same.
	bob := joinCall(ctx, t, srv, url, "bob")
	publishTestTracks(ctx, t, bob)
	watcher.waitTracks(t, []string{"bob"}, 10)
	_ = bob.c.Close()
	watcher.waitEvent(t, "left:bob:disconnected")
	waitCounts(t, srv, func(c sfu.Counts) bool { return c.Tracks == 0 && c.Participants == 1 }, "no tracks after drop")
}

func TestSameIdentityReplacesFirstSession(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	watcher := joinCall(ctx, t, srv, url, "watcher")
	first := joinCall(ctx, t, srv, url, "alice")
	publishTestTracks(ctx, t, first)
	watcher.waitTracks(t, []string{"alice"}, 10)

	second := joinCall(ctx, t, srv, url, "alice")
	select {
	case <-first.c.Done():
	case <-time.After(testTimeout):
		t.Fatal("first session still running after the same identity joined again")
	}
	// going_away with reason "replaced" (docs/PROTOCOL.md section 2) ends
	// the client with exactly ErrReplaced: not a server error, nor any
	// other end that happens to mention the word.
	if err := first.c.Err(); !errors.Is(err, client.ErrReplaced) {
		t.Fatalf("first session ended with %v, want client.ErrReplaced (going_away reason %q)", err, wire.ReasonReplaced)
	}
	watcher.waitEvent(t, "left:alice:replaced")
	publishTestTracks(ctx, t, second)
	waitCounts(t, srv, func(c sfu.Counts) bool { return c.Participants == 2 && c.Tracks == 2 }, "2 participants and the new session's 2 tracks")
}

func waitCounts(t *testing.T, srv *localServer, ok func(sfu.Counts) bool, what string) {
	t.Helper()
	deadline := time.After(testTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !ok(srv.node.Counts()) {
		select {
		case <-deadline:
			t.Fatalf("SFU counts %+v: want %s", srv.node.Counts(), what)
		case <-tick.C:
		}
	}
}

// TestJoinLeaveCyclesLeaveNothingBehind runs 50 full join/publish/leave
// cycles and checks that no room, track or goroutine outlives them.
func TestJoinLeaveCyclesLeaveNothingBehind(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := runtime.NumGoroutine()
	for i := range 50 {
		// Each cycle publishes real media, so the SFU builds (and must
		// tear down) a track with its forwarding goroutine and cache.
		cctx, ccancel := context.WithCancel(ctx)
		p := joinCall(cctx, t, srv, url, fmt.Sprintf("p%d", i))
		for _, pub := range publishTestTracks(cctx, t, p) {
			if _, err := pub.WaitPublished(cctx); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		if err := p.c.Leave(ctx); err != nil {
			t.Fatalf("cycle %d: Leave: %v", i, err)
		}
		<-p.c.Done()
		ccancel()
	}
	waitCounts(t, srv, func(c sfu.Counts) bool { return c == sfu.Counts{} }, "all zero")
	if r, ps := srv.sig.Counts(); r != 0 || ps != 0 {
		t.Fatalf("signaling still has %d rooms, %d participants", r, ps)
	}
	// Goroutines of closed peer connections end asynchronously: wait for
	// the count to come back to (near) where it started.
	deadline := time.After(testTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before+5 {
		select {
		case <-deadline:
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after 50 cycles\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		case <-tick.C:
		}
	}
}

// TestBadInputDoesNotDisturbOthers runs a two-party call while a third
// participant of the same room sends malformed JSON, unknown types, an
// oversized message and a flood: the call's media keeps flowing and its
// sessions stay up.
func TestBadInputDoesNotDisturbOthers(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alice := joinCall(ctx, t, srv, url, "alice")
	bob := joinCall(ctx, t, srv, url, "bob")
	publishTestTracks(ctx, t, alice)
	bob.waitTracks(t, []string{"alice"}, 20)
	audio := bob.trackOf("alice", wire.KindAudio)
	before, _ := audio.count()

	wsURL := "ws" + strings.TrimPrefix(url, "http") + wire.Path
	// Each attacker joins the room like anyone else, misbehaves, and must
	// get the answer docs/PROTOCOL.md promises: the error codes it lists,
	// and for fatal ones the close status.
	attack := func(name string, send func(c *websocket.Conn) error, wantCodes []string, wantClose websocket.StatusCode) {
		t.Helper()
		c, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		join := fmt.Sprintf(`{"type":"join","protocol":1,"token":%q}`, srv.Token("mallory-"+name, true, true))
		if err := c.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
			t.Fatalf("%s: join: %v", name, err)
		}
		// A fatal attack may be cut off mid-write; what counts is what the
		// server answers.
		_ = send(c)
		rctx, rcancel := context.WithTimeout(ctx, testTimeout)
		defer rcancel()
		var codes []string
		fatal := -1 // index of the first fatal error
		for {
			_, b, err := c.Read(rctx)
			if err != nil {
				if got := websocket.CloseStatus(err); got != wantClose {
					t.Fatalf("%s: connection ended with %v (status %d), want status %d; errors seen %v", name, err, got, wantClose, codes)
				}
				break
			}
			var e wire.Error
			if json.Unmarshal(b, &e) == nil && e.Type == wire.TypeError {
				if e.Fatal && fatal < 0 {
					fatal = len(codes)
				}
				codes = append(codes, e.Code)
			}
			if wantClose == -1 && len(codes) >= len(wantCodes) {
				break // non-fatal attack: every error is in
			}
		}
		// Exactly the codes documented, in order: for a non-fatal attack
		// one per bad message and none fatal; for a fatal one, the fatal
		// code last and marked fatal, after only the non-fatal codes
		// listed before it (rate_limited before flood, as often as the
		// server dropped a message).
		if wantClose == -1 {
			if !slices.Equal(codes, wantCodes) || fatal >= 0 {
				t.Fatalf("%s: errors %v (first fatal at %d), want exactly %v, none fatal", name, codes, fatal, wantCodes)
			}
			return
		}
		last, before := wantCodes[len(wantCodes)-1], wantCodes[:len(wantCodes)-1]
		ok := len(codes) > 0 && codes[len(codes)-1] == last && fatal == len(codes)-1
		for _, code := range codes[:max(0, len(codes)-1)] {
			ok = ok && slices.Contains(before, code)
		}
		for _, want := range wantCodes {
			ok = ok && slices.Contains(codes, want)
		}
		if !ok {
			t.Fatalf("%s: errors %v (first fatal at %d), want %v: the last fatal, only the others before it", name, codes, fatal, wantCodes)
		}
	}
	writeAll := func(msgs ...string) func(c *websocket.Conn) error {
		return func(c *websocket.Conn) error {
			for _, m := range msgs {
				if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	attack("garbage",
		writeAll(`{not json`, `[]`, `{"type":42}`, `{"type":"no_such_type"}`, `{"type":"mute","track_sid":7}`),
		[]string{wire.CodeBadMessage, wire.CodeBadMessage, wire.CodeBadMessage, wire.CodeUnknownType, wire.CodeBadMessage},
		-1)
	attack("oversized",
		writeAll(`{"type":"relay","data":"`+strings.Repeat("A", 100<<10)+`"}`),
		[]string{wire.CodeMessageTooLarge}, wire.CloseTooBig)
	flood := make([]string, 2000)
	for i := range flood {
		flood[i] = `{"type":"ping","id":"x"}`
	}
	attack("flood", writeAll(flood...), []string{wire.CodeRateLimited, wire.CodeFlood}, wire.ClosePolicy)

	// The call carries on: at least 50 more verified audio packets, with
	// no payload mismatch, and neither session was replaced or dropped.
	deadline := time.After(testTimeout)
	for {
		got, bad := audio.count()
		if bad != nil {
			t.Fatal(bad)
		}
		if got >= before+50 {
			break
		}
		select {
		case <-audio.progress:
		case <-deadline:
			t.Fatalf("bob's audio from alice stalled after the attack: %d packets before, %d now", before, got)
		}
	}
	for _, p := range []*callPeer{alice, bob} {
		select {
		case <-p.c.Done():
			t.Fatalf("%s's session ended during another participant's attack: %v", p.identity, p.c.Err())
		default:
		}
	}
}

func (p *callPeer) trackOf(identity, kind string) *callRecv {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.tracks {
		if r.info.Identity == identity && r.info.Kind == kind {
			return r
		}
	}
	return nil
}

// TestH264IsForwarded checks the third codec the SFU must carry: H.264
// video published by one client reaches another byte for byte.
func TestH264IsForwarded(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	bob := joinCall(ctx, t, srv, url, "bob")
	alice := joinCall(ctx, t, srv, url, "alice")
	pub, err := alice.c.PublishRTP(ctx, "camera", webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	})
	if err != nil {
		t.Fatalf("PublishRTP H.264: %v", err)
	}
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_ = pub.WriteRTP(&rtp.Packet{
				Header:  rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: payloadFor("alice", wire.KindVideo, n),
			})
		}
	}()
	info, err := pub.WaitPublished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Codec != webrtc.MimeTypeH264 {
		t.Fatalf("published codec %q, want %s", info.Codec, webrtc.MimeTypeH264)
	}
	r := wait(t, bob.gotTrack, "bob: alice's H.264 track")
	if r.info.SID != info.SID {
		t.Fatalf("bob got track %s, want %s", r.info.SID, info.SID)
	}
	deadline := time.After(testTimeout)
	for {
		n, bad := r.count()
		if bad != nil {
			t.Fatal(bad)
		}
		if n >= 50 {
			return
		}
		select {
		case <-r.progress:
		case <-deadline:
			t.Fatalf("bob verified %d H.264 packets, want 50", n)
		}
	}
}
