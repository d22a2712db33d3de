package signaling_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

func TestNewServerRefusesBadConfig(t *testing.T) {
	sfu, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", Port: 0, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	keys := map[string]string{testKey: testSecret}
	tests := []struct {
		name    string
		cfg     signaling.Config
		wantErr string
	}{
		{"no keys", signaling.Config{}, "Keys"},
		{"leeway above cap", signaling.Config{Keys: keys, TokenLeeway: time.Hour}, "TokenLeeway"},
		{"negative limit", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{ParticipantsPerRoom: -1}}, "ParticipantsPerRoom"},
		{"tiny messages", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{MaxMessageBytes: 100}}, "MaxMessageBytes"},
		{"relay burst below a message", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{RelayBurstBytes: 1000}}, "RelayBurstBytes"},
		{"relay queue below two messages", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{RelayQueueBytes: 100 << 10}}, "RelayQueueBytes"},
		{"negative relay rate", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{RelayBytesPerSecond: -1}}, "RelayBytesPerSecond"},
		{"negative unjoined bound", signaling.Config{Keys: keys, Limits: signaling.ServerLimits{UnjoinedPerAddress: -1}}, "UnjoinedPerAddress"},
		{"negative join timeout", signaling.Config{Keys: keys, JoinTimeout: -time.Second}, "JoinTimeout"},
		{"ice server without urls", signaling.Config{Keys: keys, ICEServers: []wire.ICEServer{{}}}, "ICEServers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signaling.NewServer(tt.cfg, sfu)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewServer error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestJoin(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.ICEServers = []wire.ICEServer{{URLs: []string{"stun:stun.example.org"}}}
		c.ICEServersFunc = func(identity string) []wire.ICEServer {
			return []wire.ICEServer{{URLs: []string{"turn:turn.example.org"}, Username: identity, Credential: "c"}}
		}
	})
	a, aj := h.join(t, "alice", "room1", pubSub)
	if aj.Protocol != wire.ProtocolVersion || aj.Room != "room1" || len(aj.Participants) != 0 {
		t.Fatalf("joined = %+v", aj)
	}
	if !strings.HasPrefix(aj.Participant.SID, "PA_") || aj.Participant.Identity != "alice" || !aj.Participant.CanPublish {
		t.Fatalf("participant = %+v", aj.Participant)
	}
	if len(aj.ICEServers) != 1 || aj.ICEServers[0].Username != "alice" {
		t.Fatalf("ice servers = %+v, want the ones ICEServersFunc made", aj.ICEServers)
	}
	if aj.Limits.MaxMessageBytes != signaling.DefaultMaxMessageBytes || aj.Limits.TracksPerParticipant != signaling.DefaultTracksPerParticipant {
		t.Fatalf("limits = %+v", aj.Limits)
	}

	// The room is named by the token; join.room may repeat it.
	b, bj := h.joinWith(t, "bob", wire.Join{Token: token(t, "bob", "room1", canSubscribe), Room: "room1", PublicKey: "bob-key"})
	if len(bj.Participants) != 1 || bj.Participants[0].Identity != "alice" || bj.Participants[0].SID != a.sid {
		t.Fatalf("bob's joined lists %+v, want alice", bj.Participants)
	}
	pj := a.expectParticipantJoined(b)
	if pj.Participant.PublicKey != "bob-key" || pj.Participant.CanPublish || !pj.Participant.CanSubscribe {
		t.Fatalf("participant_joined = %+v", pj.Participant)
	}
	if rooms, parts := h.srv.Counts(); rooms != 1 || parts != 2 {
		t.Fatalf("Counts = %d rooms, %d participants; want 1, 2", rooms, parts)
	}

	b.leave()
	left := a.waitType(wire.TypeParticipantLeft)
	if left.str("sid") != b.sid || left.str("identity") != "bob" || left.str("reason") != "left" {
		t.Fatalf("participant_left = %s", left)
	}
	// A second join on a joined connection is refused, not fatal.
	a.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "alice", "room1", pubSub)})
	a.expectError(wire.CodeAlreadyJoined, false)
	a.ping("still-here")
}

func TestTokenDefectsRefusedOverTheWire(t *testing.T) {
	h := newHarness(t, nil)
	good := claimsAt("alice", "room1", time.Hour, 0)
	tests := []struct {
		name string
		join wire.Join
		code string
	}{
		{"missing", wire.Join{}, wire.CodeTokenMissing},
		{"expired", wire.Join{Token: hs(t, testKey, testSecret, claimsAt("alice", "room1", -time.Hour, 0))}, wire.CodeTokenExpired},
		{"not yet valid", wire.Join{Token: hs(t, testKey, testSecret, claimsAt("alice", "room1", time.Hour, time.Hour))}, wire.CodeTokenNotYetValid},
		{"wrong signature", wire.Join{Token: hs(t, testKey, otherSecret, good)}, wire.CodeTokenSignature},
		{"alg none", wire.Join{Token: algNone(t, testKey, good)}, wire.CodeTokenAlgorithm},
		{"alg RS256", wire.Join{Token: rs256(t, testKey, good)}, wire.CodeTokenAlgorithm},
		{"alg HS384", wire.Join{Token: sign(t, jwt.SigningMethodHS384, testKey, []byte(testSecret), good)}, wire.CodeTokenAlgorithm},
		{"unknown key id", wire.Join{Token: hs(t, "someone-else", testSecret, good)}, wire.CodeTokenUnknownKey},
		{"garbage", wire.Join{Token: "garbage"}, wire.CodeTokenMalformed},
		{"token for another room", wire.Join{Token: hs(t, testKey, testSecret, good), Room: "room2"}, wire.CodeRoomMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t, tt.name)
			tt.join.Type = wire.TypeJoin
			tt.join.Protocol = wire.ProtocolVersion
			c.send(tt.join)
			e := c.expectError(tt.code, true)
			if e.str("ref") != wire.TypeJoin {
				t.Fatalf("error ref = %q, want join", e.str("ref"))
			}
			c.expectClose(wire.ClosePolicy)
		})
	}
	eventually(t, "no participants", func() bool { _, n := h.srv.Counts(); return n == 0 })
}

func TestVersionMismatch(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dial(t, "old")
	c.send(wire.Join{Type: wire.TypeJoin, Protocol: 2, Token: token(t, "alice", "r", pubSub)})
	e := c.expectError(wire.CodeVersion, true)
	if !strings.Contains(e.str("message"), "protocol 1") {
		t.Fatalf("message %q does not say which version is spoken", e.str("message"))
	}
	c.expectClose(wire.CloseProtocolError)
}

func TestMessageBeforeJoin(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dial(t, "eager")
	c.ping("before-join") // allowed
	c.send(wire.Subscribe{Type: wire.TypeSubscribe, TrackSIDs: []string{"TR_x"}})
	e := c.expectError(wire.CodeNotJoined, true)
	if e.str("ref") != wire.TypeSubscribe {
		t.Fatalf("ref = %q", e.str("ref"))
	}
	c.expectClose(wire.CloseProtocolError)
}

func TestJoinTimeout(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) { c.JoinTimeout = 200 * time.Millisecond })
	c := h.dial(t, "idle")
	c.expectError(wire.CodeNotJoined, true)
	c.expectClose(wire.CloseProtocolError)
}

func TestBadInputIsNotFatal(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	tests := []struct {
		name string
		send any
		code string
		ref  string
	}{
		{"not json", "{not json", wire.CodeBadMessage, ""},
		{"json but not an object", `"ping"`, wire.CodeBadMessage, ""},
		{"unknown type", `{"type":"frobnicate"}`, wire.CodeUnknownType, "frobnicate"},
		{"no type", `{}`, wire.CodeUnknownType, ""},
		{"server-only type", `{"type":"joined"}`, wire.CodeUnknownType, "joined"},
		{"field of the wrong type", `{"type":"subscribe","track_sids":"TR_1"}`, wire.CodeBadMessage, "subscribe"},
		{"offer on the wrong connection", `{"type":"offer","target":"subscriber","sdp":"v=0"}`, wire.CodeBadMessage, "offer"},
		{"relay without data", `{"type":"relay","id":"r"}`, wire.CodeBadMessage, "relay"},
		{"garbage sdp", `{"type":"offer","id":"o","target":"publisher","sdp":"not sdp"}`, wire.CodeNegotiation, "offer"},
		{"candidate for nothing", `{"type":"candidate","target":"sideways","candidate":{"candidate":"x"}}`, wire.CodeBadMessage, "candidate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t = t
			a.send(tt.send)
			e := a.expectError(tt.code, false)
			if e.str("ref") != tt.ref {
				t.Fatalf("ref = %q, want %q", e.str("ref"), tt.ref)
			}
			a.ping(tt.name)
		})
	}
	a.t = t
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.conn.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	a.expectError(wire.CodeBadMessage, false)
	a.ping("after-binary")
}

func TestOversizedMessage(t *testing.T) {
	h := newHarness(t, nil)
	t.Run("just over the limit: error, then close 1009", func(t *testing.T) {
		c, _ := h.join(t, "alice", "r", pubSub)
		big := `{"type":"ping","id":"` + strings.Repeat("x", signaling.DefaultMaxMessageBytes) + `"}`
		c.send(big)
		c.expectError(wire.CodeMessageTooLarge, true)
		c.expectClose(wire.CloseTooBig)
	})
	t.Run("far over the limit: closed", func(t *testing.T) {
		c := h.dial(t, "huge")
		// Beyond twice the limit the WebSocket library closes the
		// connection itself (1009) without reading the rest; the kernel
		// may then reset it, so only the closing is certain.
		_ = c.trySend(strings.Repeat("y", 10*signaling.DefaultMaxMessageBytes))
		for {
			_, err := c.read()
			if err == nil {
				continue
			}
			if st := websocket.CloseStatus(err); st != -1 && st != wire.CloseTooBig {
				t.Fatalf("closed with %d, want 1009 or a reset", st)
			}
			break
		}
	})
	eventually(t, "no participants", func() bool { _, n := h.srv.Counts(); return n == 0 })
}

func TestFlood(t *testing.T) {
	h := newHarness(t, nil)
	flooder, _ := h.join(t, "mallory", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	c, _ := h.join(t, "carol", "r", pubSub)
	flooder.expectParticipantJoined(b)
	flooder.expectParticipantJoined(c)
	b.expectParticipantJoined(c)

	// mallory floods while bob keeps pinging and relaying to carol.
	const floodMessages = 4 * signaling.DefaultMessageBurst
	start := make(chan struct{})
	floodErr := make(chan error, 1)
	go func() {
		<-start
		ping := []byte(`{"type":"ping","id":"f"}`)
		for range floodMessages {
			if err := flooder.trySend(ping); err != nil {
				floodErr <- err
				return
			}
		}
		floodErr <- nil
	}()
	close(start)
	for i := range 20 {
		b.ping(fmt.Sprintf("b%d", i))
		b.send(wire.Relay{Type: wire.TypeRelay, ID: fmt.Sprintf("r%d", i), To: []string{"carol"}, Data: json.RawMessage(fmt.Sprint(i))})
		b.waitFor("ack", func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == fmt.Sprintf("r%d", i) })
		got := c.waitType(wire.TypeRelay)
		if got.str("from") != "bob" || string(got.fields["data"]) != fmt.Sprint(i) {
			t.Fatalf("carol got %s, want bob's relay %d", got, i)
		}
	}
	if err := <-floodErr; err != nil {
		// The server may close before the last message is written.
		t.Logf("flood write ended early: %v", err)
	}

	seen := flooder.expectClose(wire.ClosePolicy)
	var limited, pongs int
	var flood msg
	for _, m := range seen {
		switch {
		case m.typ() == wire.TypePong:
			pongs++
		case m.typ() == wire.TypeError && m.str("code") == wire.CodeRateLimited:
			if m.boolean("fatal") {
				t.Fatalf("rate_limited is fatal: %s", m)
			}
			limited++
		case m.typ() == wire.TypeError:
			flood = m
		}
	}
	if limited == 0 || flood.str("code") != wire.CodeFlood || !flood.boolean("fatal") {
		t.Fatalf("flooder saw %d pongs, %d rate_limited, last error %s; want rate_limited errors then a fatal flood", pongs, limited, flood)
	}
	// The join spent one token of the burst; it refills within 1/rate,
	// which a fast run may not wait for.
	if pongs < signaling.DefaultMessageBurst-1 {
		t.Fatalf("only %d of the burst's pings were answered", pongs)
	}
	// bob may have read the departure while waiting for his acks.
	var left msg
	for _, m := range b.seen {
		if m.typ() == wire.TypeParticipantLeft {
			left = m
		}
	}
	if left.raw == nil {
		left = b.waitType(wire.TypeParticipantLeft)
	}
	if left.str("identity") != "mallory" || left.str("reason") != "disconnected" {
		t.Fatalf("bob saw %s", left)
	}
	b.ping("after-flood")
}

func TestRelay(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	c, _ := h.join(t, "carol", "r", pubSub)
	a.expectParticipantJoined(b)
	a.expectParticipantJoined(c)
	b.expectParticipantJoined(c)

	// To one recipient; "from" cannot be spoofed; data passes byte for
	// byte (whitespace and characters encoding/json would escape).
	data := `{"k": [1, 2,  3], "html": "<b>&amp;</b>", "u": "\u00e9"}`
	a.send(`{"type":"relay","id":"r1","to":["bob"],"from":"mallory","from_sid":"PA_forged","data":` + data + `}`)
	a.waitFor("ack r1", func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == "r1" })
	got := b.waitType(wire.TypeRelay)
	if got.str("from") != "alice" || got.str("from_sid") != a.sid {
		t.Fatalf("bob got from %q/%q, want alice/%s", got.str("from"), got.str("from_sid"), a.sid)
	}
	if !strings.Contains(string(got.raw), `"data":`+data) {
		t.Fatalf("data was altered: %s", got.raw)
	}
	if _, ok := got.fields["id"]; ok {
		t.Fatalf("the sender's request id leaked to the recipient: %s", got.raw)
	}

	// To everyone else.
	a.send(wire.Relay{Type: wire.TypeRelay, ID: "r2", Data: json.RawMessage(`"all"`)})
	a.waitFor("ack r2", func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == "r2" })
	for _, r := range []*client{b, c} {
		if got := r.waitType(wire.TypeRelay); string(got.fields["data"]) != `"all"` {
			t.Fatalf("%s got %s, want the relay to all", r.name, got)
		}
	}

	// An unknown recipient refuses the whole relay.
	a.send(wire.Relay{Type: wire.TypeRelay, ID: "r3", To: []string{"bob", "zed"}, Data: json.RawMessage(`"partial"`)})
	e := a.expectError(wire.CodeUnknownParticipant, false)
	if e.str("ref_id") != "r3" || !strings.Contains(e.str("message"), "zed") {
		t.Fatalf("error = %s", e)
	}
	a.send(wire.Relay{Type: wire.TypeRelay, ID: "r4", To: []string{"bob", "alice"}, Data: json.RawMessage(`"next"`)})
	a.waitFor("ack r4", func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == "r4" })
	if got := b.waitType(wire.TypeRelay); string(got.fields["data"]) != `"next"` {
		t.Fatalf("bob got %s after a refused relay, want the next one", got)
	}

	// Nothing came back to the sender, and carol only got the relay to all.
	a.ping("end")
	c.ping("end")
	for _, m := range a.seen {
		if m.typ() == wire.TypeRelay {
			t.Fatalf("relay echoed to its sender: %s", m)
		}
	}
	var toCarol int
	for _, m := range c.seen {
		if m.typ() == wire.TypeRelay {
			toCarol++
		}
	}
	if toCarol != 1 {
		t.Fatalf("carol got %d relays, want 1", toCarol)
	}
}

func TestTrackErrors(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	viewer, _ := h.join(t, "viewer", "r", noGrants)
	tests := []struct {
		name string
		who  *client
		send any
		code string
		ref  string
	}{
		{"unpublish unknown", a, wire.Unpublish{Type: wire.TypeUnpublish, ID: "u1", TrackSID: "TR_nope"}, wire.CodeUnknownTrack, wire.TypeUnpublish},
		{"mute unknown", a, wire.Mute{Type: wire.TypeMute, ID: "m1", TrackSID: "TR_nope", Muted: true}, wire.CodeUnknownTrack, wire.TypeMute},
		{"subscribe unknown", a, wire.Subscribe{Type: wire.TypeSubscribe, ID: "s1", TrackSIDs: []string{"TR_nope"}}, wire.CodeUnknownTrack, wire.TypeSubscribe},
		{"subscribe without grant", viewer, wire.Subscribe{Type: wire.TypeSubscribe, ID: "s2", TrackSIDs: []string{"TR_nope"}}, wire.CodePermissionDenied, wire.TypeSubscribe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.who.t = t
			tt.who.send(tt.send)
			e := tt.who.expectError(tt.code, false)
			if e.str("ref") != tt.ref || e.str("ref_id") == "" {
				t.Fatalf("error = %s", e)
			}
		})
	}
	viewer.t = t
	t.Run("offer without publish grant", func(t *testing.T) {
		viewer.t = t
		_, _, sdp := audioOffer(t)
		viewer.send(wire.SessionDescription{Type: wire.TypeOffer, ID: "o1", Target: wire.TargetPublisher, SDP: sdp})
		e := viewer.expectError(wire.CodePermissionDenied, false)
		if e.str("ref") != wire.TypeOffer || e.str("ref_id") != "o1" {
			t.Fatalf("error = %s", e)
		}
		viewer.ping("after-offer")
	})
}

func TestPublishedTracks(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	a.expectParticipantJoined(b)

	publishAudio(t, a)
	own := a.waitType(wire.TypeTrackPublished)
	var tp wire.TrackPublished
	own.decode(t, &tp)
	tr := tp.Track
	if tr.ParticipantSID != a.sid || tr.Identity != "alice" || tr.Kind != wire.KindAudio || tr.ClientTrackID != "mic" || !strings.EqualFold(tr.Codec, webrtcOpus) {
		t.Fatalf("track_published = %+v", tr)
	}
	if got := b.waitType(wire.TypeTrackPublished); got.str("type") == "" || !strings.Contains(string(got.raw), tr.SID) {
		t.Fatalf("bob saw %s", got)
	}

	// A late joiner sees the track in joined, and only there.
	c, cj := h.join(t, "carol", "r", pubSub)
	var alice wire.ParticipantInfo
	for _, p := range cj.Participants {
		if p.Identity == "alice" {
			alice = p
		}
	}
	if len(alice.Tracks) != 1 || alice.Tracks[0].SID != tr.SID {
		t.Fatalf("carol's joined shows alice's tracks %+v, want %s", alice.Tracks, tr.SID)
	}

	// Someone else's track.
	b.send(wire.Unpublish{Type: wire.TypeUnpublish, ID: "u", TrackSID: tr.SID})
	b.expectError(wire.CodeNotOwner, false)
	b.send(wire.Mute{Type: wire.TypeMute, ID: "m", TrackSID: tr.SID, Muted: true})
	b.expectError(wire.CodeNotOwner, false)

	// Mute reaches the whole room, the owner included.
	a.send(wire.Mute{Type: wire.TypeMute, ID: "m1", TrackSID: tr.SID, Muted: true})
	for _, r := range []*client{a, b, c} {
		m := r.waitType(wire.TypeTrackMuted)
		if m.str("sid") != tr.SID || !m.boolean("muted") || m.str("identity") != "alice" {
			t.Fatalf("%s saw %s", r.name, m)
		}
	}
	a.waitFor("ack m1", func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == "m1" })

	// Unpublish reaches the whole room.
	a.send(wire.Unpublish{Type: wire.TypeUnpublish, ID: "u1", TrackSID: tr.SID})
	for _, r := range []*client{a, b, c} {
		m := r.waitType(wire.TypeTrackUnpublished)
		if m.str("sid") != tr.SID || m.str("participant_sid") != a.sid {
			t.Fatalf("%s saw %s", r.name, m)
		}
	}
	c.ping("end")
	for _, m := range c.seen {
		if m.typ() == wire.TypeTrackPublished {
			t.Fatalf("carol got track_published after seeing the track in joined: %s", m)
		}
	}
}

const webrtcOpus = "audio/opus"

func TestPublisherLeavingUnpublishesItsTracks(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	a.expectParticipantJoined(b)
	publishAudio(t, a)
	sid := a.waitType(wire.TypeTrackPublished).fields["track"]
	b.waitType(wire.TypeTrackPublished)

	_ = a.conn.CloseNow() // the connection drops without a leave
	un := b.waitType(wire.TypeTrackUnpublished)
	left := b.waitType(wire.TypeParticipantLeft)
	if !strings.Contains(string(sid), un.str("sid")) || left.str("reason") != "disconnected" || left.str("sid") != a.sid {
		t.Fatalf("bob saw %s then %s", un, left)
	}
	eventually(t, "media empty but bob", func() bool {
		c := h.sfu.Counts()
		return c.Participants == 1 && c.Tracks == 0
	})
}

func TestCapacity(t *testing.T) {
	t.Run("room full", func(t *testing.T) {
		h := newHarness(t, func(c *signaling.Config) { c.Limits.ParticipantsPerRoom = 2 })
		a, _ := h.join(t, "alice", "r", pubSub)
		h.join(t, "bob", "r", pubSub)
		c := h.dial(t, "carol")
		c.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "carol", "r", pubSub)})
		c.expectError(wire.CodeRoomFull, true)
		c.expectClose(wire.ClosePolicy)
		// Another room is fine, and so is alice replacing herself.
		h.join(t, "carol", "r2", pubSub)
		h.join(t, "alice", "r", pubSub)
		a.waitType(wire.TypeGoingAway)
	})
	t.Run("rooms per node", func(t *testing.T) {
		h := newHarness(t, func(c *signaling.Config) { c.Limits.RoomsPerNode = 1 })
		h.join(t, "alice", "r1", pubSub)
		c := h.dial(t, "bob")
		c.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "bob", "r2", pubSub)})
		c.expectError(wire.CodeTooManyRooms, true)
		c.expectClose(wire.ClosePolicy)
		h.join(t, "bob", "r1", pubSub)
	})
	t.Run("joins per address", func(t *testing.T) {
		h := newHarness(t, func(c *signaling.Config) {
			c.Limits.JoinsPerSecondPerIP = 0.001
			c.Limits.JoinBurst = 2
		})
		h.join(t, "alice", "r", pubSub)
		h.join(t, "bob", "r", pubSub)
		c := h.dial(t, "carol")
		c.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "carol", "r", pubSub)})
		c.expectError(wire.CodeJoinRateLimited, true)
		c.expectClose(wire.ClosePolicy)
	})
}

func TestSameIdentityReplaces(t *testing.T) {
	h := newHarness(t, nil)
	first, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	first.expectParticipantJoined(b)

	second, sj := h.join(t, "alice", "r", pubSub)
	if second.sid == first.sid {
		t.Fatal("the new session kept the old sid")
	}
	if len(sj.Participants) != 1 || sj.Participants[0].Identity != "bob" {
		t.Fatalf("new session's joined lists %+v, want bob only", sj.Participants)
	}
	ga := first.waitType(wire.TypeGoingAway)
	if ga.str("reason") != wire.ReasonReplaced {
		t.Fatalf("going_away = %s", ga)
	}
	first.expectClose(wire.CloseNormal)

	left := b.waitType(wire.TypeParticipantLeft)
	if left.str("sid") != first.sid || left.str("reason") != wire.ReasonReplaced {
		t.Fatalf("bob saw %s, want alice's old session replaced", left)
	}
	b.expectParticipantJoined(second)
	if rooms, parts := h.srv.Counts(); rooms != 1 || parts != 2 {
		t.Fatalf("Counts = %d, %d; want 1, 2", rooms, parts)
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	a.expectParticipantJoined(b)
	idle := h.dial(t, "idle")
	idle.ping("connected")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	begun := time.Now()
	go func() { done <- h.srv.Shutdown(ctx) }()

	for _, c := range []*client{a, b, idle} {
		ga := c.waitType(wire.TypeGoingAway)
		if ga.str("reason") != wire.ReasonShutdown {
			t.Fatalf("%s: going_away = %s", c.name, ga)
		}
		c.expectClose(wire.CloseGoingAway)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("shutdown took %v", time.Since(begun))
	if h.srv.Ready() {
		t.Fatal("Ready after Shutdown")
	}
	if rooms, parts := h.srv.Counts(); rooms != 0 || parts != 0 {
		t.Fatalf("Counts = %d, %d after Shutdown", rooms, parts)
	}
	if c := h.sfu.Counts(); c != (sfu.Counts{}) {
		t.Fatalf("media Counts = %+v after Shutdown", c)
	}

	late := h.dial(t, "late")
	late.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "carol", "r", pubSub)})
	late.expectError(wire.CodeShuttingDown, true)
	late.expectClose(wire.CloseGoingAway)
}

// rawUpgrade opens a WebSocket by hand and proves the session runs with
// one ping; the test then controls every byte the client does (not) send.
func rawUpgrade(t *testing.T, h *harness) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(h.url, wire.Path), "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "GET " + wire.Path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	ping := []byte(`{"type":"ping","id":"raw"}`)
	frame := []byte{0x81, 0x80 | byte(len(ping)), 0, 0, 0, 0} // zero mask key: payload as is
	if _, err := conn.Write(append(frame, ping...)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, pong); err != nil || !strings.Contains(string(pong), "pong") {
		t.Fatalf("pong: %q %v", pong, err)
	}
	return conn, br
}

func TestShutdownForcesCloseAtDeadline(t *testing.T) {
	h := newHarness(t, nil)
	// A client that never reads again: the going_away and the close
	// handshake get no answer.
	rawUpgrade(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begun := time.Now()
	err := h.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if took := time.Since(begun); took > 2*time.Second {
		t.Fatalf("Shutdown took %v past a 300ms deadline", took)
	}
}

func TestJoinLeaveCycles(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits.JoinsPerSecondPerIP = 1000
		c.Limits.JoinBurst = 1000
	})
	watcher, _ := h.join(t, "watcher", "r", pubSub)
	baseline := runtime.NumGoroutine()
	const cycles = 50
	begun := time.Now()
	for i := range cycles {
		c, _ := h.join(t, fmt.Sprintf("guest-%d", i), "r", pubSub)
		watcher.expectParticipantJoined(c)
		c.leave()
		left := watcher.waitType(wire.TypeParticipantLeft)
		if left.str("sid") != c.sid || left.str("reason") != "left" {
			t.Fatalf("watcher saw %s", left)
		}
	}
	t.Logf("%d join/leave cycles took %v", cycles, time.Since(begun))
	watcher.leave()

	eventually(t, "server counts at zero", func() bool { r, p := h.srv.Counts(); return r == 0 && p == 0 })
	eventually(t, "media counts at zero", func() bool { return h.sfu.Counts() == sfu.Counts{} })
	eventually(t, "goroutines back near the baseline", func() bool { return runtime.NumGoroutine() <= baseline+5 })

	if got := counterValue(t, h, "sotto_joins_total", "result", "ok"); got != cycles+1 {
		t.Fatalf("sotto_joins_total{result=ok} = %v, want %d", got, cycles+1)
	}
	if got := gaugeValue(t, h, "sotto_participants"); got != 0 {
		t.Fatalf("sotto_participants = %v, want 0", got)
	}
}

func metricFamily(t *testing.T, h *harness, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

// counterValue reads a counter; an empty label reads an unlabelled one.
func counterValue(t *testing.T, h *harness, name, label, value string) float64 {
	t.Helper()
	for _, m := range metricFamily(t, h, name).GetMetric() {
		if label == "" {
			return m.GetCounter().GetValue()
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func gaugeValue(t *testing.T, h *harness, name string) float64 {
	t.Helper()
	return metricFamily(t, h, name).GetMetric()[0].GetGauge().GetValue()
}

// Concurrent joins of one identity leave exactly one session: each of the
// others is told it was replaced and is closed.
func TestConcurrentJoinsOfOneIdentity(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits.JoinsPerSecondPerIP = 1000
		c.Limits.JoinBurst = 1000
	})
	const n = 8
	clients := make([]*client, n)
	for i := range n {
		clients[i] = h.dial(t, fmt.Sprintf("alice-%d", i))
	}
	type event struct {
		i   int
		m   msg
		err error
	}
	events := make(chan event, 64*n)
	tok := token(t, "alice", "r", pubSub)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			_ = c.trySend(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: tok})
		})
		// Each client is read by one goroutine of its own from here on.
		go func() {
			for {
				m, err := c.read()
				events <- event{i, m, err}
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()

	first := make(map[int]string)
	closed := make(map[int]bool)
	deadline := time.After(waitTimeout)
	for len(closed) < n-1 {
		select {
		case <-deadline:
			t.Fatalf("%d of %d sessions closed", len(closed), n-1)
		case e := <-events:
			if e.err != nil {
				if st := websocket.CloseStatus(e.err); st != wire.CloseNormal {
					t.Fatalf("session %d ended with %v", e.i, e.err)
				}
				if first[e.i] == "" {
					t.Fatalf("session %d closed without a message", e.i)
				}
				closed[e.i] = true
				continue
			}
			if first[e.i] == "" {
				first[e.i] = e.m.typ()
				if typ := e.m.typ(); typ != wire.TypeJoined && typ != wire.TypeGoingAway {
					t.Fatalf("session %d: first message %s", e.i, e.m)
				}
			}
			if e.m.typ() == wire.TypeGoingAway && e.m.str("reason") != wire.ReasonReplaced {
				t.Fatalf("session %d: %s", e.i, e.m)
			}
		}
	}
	survivor := -1
	for i := range n {
		if !closed[i] {
			survivor = i
		}
	}
	if err := clients[survivor].trySend(wire.Ping{Type: wire.TypePing, ID: "p"}); err != nil {
		t.Fatal(err)
	}
	for e := range events {
		if e.i != survivor {
			continue
		}
		if e.err != nil {
			t.Fatalf("the survivor ended: %v", e.err)
		}
		if e.m.typ() == wire.TypePong {
			break
		}
	}
	if rooms, parts := h.srv.Counts(); rooms != 1 || parts != 1 {
		t.Fatalf("Counts = %d, %d; want 1, 1", rooms, parts)
	}
	eventually(t, "one media participant", func() bool { return h.sfu.Counts().Participants == 1 })
}

// A client that stops reading is dropped once its own messages (here the
// pongs to its pings) overflow its queue; the others keep receiving
// everything, in order, meanwhile. Relays never drop their receiver
// (TestRelayFloodEndsTheSenderNotTheReceiver).
func TestSlowClientIsDroppedWithoutHoldingOthers(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits.MessagesPerSecond = 1e6
		c.Limits.MessageBurst = 1e6
	})
	a, _ := h.join(t, "alice", "r", pubSub)
	b, _ := h.join(t, "bob", "r", pubSub)
	// slow never reads after joining.
	slow := h.slowReader(t, "slow")
	slow.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "slow", "r", pubSub)})
	slow.waitType(wire.TypeJoined)
	a.expectParticipantJoined(b)
	a.waitType(wire.TypeParticipantJoin)
	b.waitType(wire.TypeParticipantJoin)

	// slow sends pings with 16 KiB ids, 50 a window, while alice relays
	// one message to bob per window: slow's socket and then its queue
	// fill with its own pongs.
	ping := `{"type":"ping","id":"` + strings.Repeat("p", 16<<10) + `"}`
	left := func(c *client) bool {
		for _, m := range c.seen {
			if m.typ() == wire.TypeParticipantLeft && m.str("identity") == "slow" {
				return true
			}
		}
		return false
	}
	const windows, window = 40, 50
	begun := time.Now()
pinging:
	for w := range windows {
		for range window {
			if slow.trySend(ping) != nil {
				break pinging // dropped
			}
		}
		id := fmt.Sprint(w)
		a.send(wire.Relay{Type: wire.TypeRelay, ID: id, To: []string{"bob"}, Data: json.RawMessage(id)})
		a.waitFor("ack "+id, func(m msg) bool { return m.typ() == wire.TypeAck && m.str("id") == id })
		if got := b.waitType(wire.TypeRelay); string(got.fields["data"]) != id {
			t.Fatalf("bob got %s, want relay %s", got, id)
		}
		if left(b) {
			t.Logf("slow dropped after %d pings", (w+1)*window)
			break
		}
	}
	t.Logf("pings took %v", time.Since(begun))

	if !left(b) {
		b.waitFor("slow's departure", func(m msg) bool {
			return m.typ() == wire.TypeParticipantLeft && m.str("identity") == "slow"
		})
	}
	if !left(a) {
		a.waitType(wire.TypeParticipantLeft)
	}
	if got := counterValue(t, h, "sotto_signaling_slow_client_disconnects_total", "", ""); got != 1 {
		t.Fatalf("slow client disconnects = %v, want 1", got)
	}
	eventually(t, "slow gone", func() bool { _, p := h.srv.Counts(); return p == 2 })
}

func TestKeepaliveDropsSilentPeers(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.JoinTimeout = time.Hour
	})
	healthy, _ := h.join(t, "alice", "r", pubSub)
	events := make(chan msg, 16)
	go func() {
		// A real client reads all the time, which is when the WebSocket
		// library answers the server's pings.
		defer close(events)
		for {
			m, err := healthy.read()
			if err != nil {
				return
			}
			events <- m
		}
	}()

	conn, br := rawUpgrade(t, h) // answers nothing from now on
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("silent peer not dropped: %v", err)
	}

	if err := healthy.trySend(wire.Ping{Type: wire.TypePing, ID: "alive"}); err != nil {
		t.Fatal(err)
	}
	for m := range events {
		if m.typ() == wire.TypePong && m.str("id") == "alive" {
			return
		}
	}
	t.Fatal("the healthy client was dropped too")
}
