package signaling_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// These tests hold the points where a client written from
// docs/PROTOCOL.md alone found the node doing something else.

// expectCloseReason reads until the connection ends and checks the close
// code and reason.
func (c *client) expectCloseReason(code websocket.StatusCode, reason string) []msg {
	c.t.Helper()
	var got []msg
	for {
		m, err := c.read()
		if err == nil {
			got = append(got, m)
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
			c.t.Fatalf("%s: connection ended with %v, want close %d %q; read %v", c.name, err, code, reason, got)
		}
		return got
	}
}

func TestPreJoinGarbageIsFatal(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name string
		send string
		code string
		ref  string
	}{
		{"not json", "{not json", wire.CodeBadMessage, ""},
		{"no type", `{}`, wire.CodeBadMessage, ""},
		{"unknown type", `{"type":"frobnicate"}`, wire.CodeNotJoined, "frobnicate"},
		{"server-only type", `{"type":"joined"}`, wire.CodeNotJoined, "joined"},
		{"request before join", `{"type":"subscribe","track_sids":["TR_x"]}`, wire.CodeNotJoined, "subscribe"},
		{"malformed ping", `{"type":"ping","id":7}`, wire.CodeBadMessage, "ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t, tt.name)
			c.ping("first") // a well-formed ping is fine before join
			c.send(tt.send)
			e := c.expectError(tt.code, true)
			if e.str("ref") != tt.ref {
				t.Fatalf("ref = %q, want %q", e.str("ref"), tt.ref)
			}
			c.expectCloseReason(wire.CloseProtocolError, tt.code)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		c := h.dial(t, "binary")
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		c.expectError(wire.CodeBadMessage, true)
		c.expectCloseReason(wire.CloseProtocolError, wire.CodeBadMessage)
	})
}

// goNames are what a Go decoder's error says and a client must not see.
var goNames = regexp.MustCompile(`Go |struct|signaling\.|\bint\b|\[\]string|unmarshal`)

func TestTypeErrorsNameJSONFields(t *testing.T) {
	h := newHarness(t, nil)
	t.Run("join", func(t *testing.T) {
		c := h.dial(t, "typed")
		c.send(`{"type":"join","protocol":1,"token":5}`)
		e := c.expectError(wire.CodeBadMessage, true)
		if m := e.str("message"); !strings.Contains(m, `"token"`) || !strings.Contains(m, "a string") || goNames.MatchString(m) {
			t.Fatalf("message %q: want the JSON field and type, no Go names", m)
		}
		c.expectCloseReason(wire.CloseProtocolError, wire.CodeBadMessage)
	})
	t.Run("after join", func(t *testing.T) {
		a, _ := h.join(t, "alice", "r", pubSub)
		for _, tt := range []struct{ send, field, want string }{
			{`{"type":"subscribe","id":"s","track_sids":"TR_1"}`, `"track_sids"`, "an array"},
			{`{"type":"mute","track_sid":"TR_1","muted":"yes"}`, `"muted"`, "a boolean"},
			{`{"type":"candidate","target":"publisher","candidate":{"candidate":"c","sdpMLineIndex":"0"}}`, `"candidate.sdpMLineIndex"`, "an integer"},
		} {
			a.send(tt.send)
			e := a.expectError(wire.CodeBadMessage, false)
			if m := e.str("message"); !strings.Contains(m, tt.field) || !strings.Contains(m, tt.want) || goNames.MatchString(m) {
				t.Fatalf("message %q: want field %s as %s, no Go names", m, tt.field, tt.want)
			}
		}
	})
}

func TestAutoSubscribeNeedsTheGrant(t *testing.T) {
	h := newHarness(t, nil)
	yes, no := true, false
	c := h.dial(t, "publisher")
	c.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "publisher", "r", canPublish), AutoSubscribe: &yes})
	e := c.expectError(wire.CodePermissionDenied, true)
	if e.str("ref") != wire.TypeJoin || !strings.Contains(e.str("message"), "auto_subscribe") {
		t.Fatalf("error %s: want one naming auto_subscribe", e)
	}
	c.expectCloseReason(wire.ClosePolicy, wire.CodePermissionDenied)

	// Left out (the default) or false, the same token joins.
	h.joinWith(t, "publisher", wire.Join{Token: token(t, "publisher", "r", canPublish)})
	h.joinWith(t, "publisher2", wire.Join{Token: token(t, "publisher2", "r", canPublish), AutoSubscribe: &no})
}

func TestCloseReasonsAreErrorCodes(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) { c.JoinTimeout = 300 * time.Millisecond })
	t.Run("join timeout", func(t *testing.T) {
		c := h.dial(t, "idle")
		c.expectError(wire.CodeNotJoined, true)
		c.expectCloseReason(wire.CloseProtocolError, wire.CodeNotJoined)
	})
	t.Run("message too large", func(t *testing.T) {
		c := h.dial(t, "big")
		c.send(`{"type":"ping","id":"` + strings.Repeat("x", signaling.DefaultMaxMessageBytes) + `"}`)
		c.expectError(wire.CodeMessageTooLarge, true)
		c.expectCloseReason(wire.CloseTooBig, wire.CodeMessageTooLarge)
	})
	t.Run("far over the limit", func(t *testing.T) {
		c := h.dial(t, "huge")
		_ = c.trySend(strings.Repeat("y", 10*signaling.DefaultMaxMessageBytes))
		for {
			_, err := c.read()
			if err == nil {
				continue
			}
			// Unread data may make the kernel reset the connection; a
			// close that does arrive carries the code.
			var ce websocket.CloseError
			if errors.As(err, &ce) && (ce.Code != wire.CloseTooBig || ce.Reason != wire.CodeMessageTooLarge) {
				t.Fatalf("closed with %d %q, want 1009 %q", ce.Code, ce.Reason, wire.CodeMessageTooLarge)
			}
			break
		}
	})
	t.Run("leave", func(t *testing.T) {
		c, _ := h.join(t, "leaver", "r", pubSub)
		c.send(wire.Leave{Type: wire.TypeLeave})
		c.expectCloseReason(wire.CloseNormal, "left")
	})
}

func TestRateLimitedNamesTheRequest(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits.MessagesPerSecond = 1
		c.Limits.MessageBurst = 4
	})
	a, _ := h.join(t, "alice", "r", pubSub)
	// Past the burst, within twice it (beyond is flood).
	for i := range 6 {
		a.send(wire.Ping{Type: wire.TypePing, ID: fmt.Sprintf("p%d", i)})
	}
	e := a.expectError(wire.CodeRateLimited, false)
	if e.str("ref") != wire.TypePing || !strings.HasPrefix(e.str("ref_id"), "p") {
		t.Fatalf("rate_limited %s: want ref ping and the ping's id", e)
	}
}

// rawFrame is a masked text frame (zero mask key) holding v.
func rawFrame(t *testing.T, v any) []byte {
	t.Helper()
	p, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var f []byte
	switch n := len(p); {
	case n < 126:
		f = []byte{0x81, 0x80 | byte(n)}
	case n < 1<<16:
		f = []byte{0x81, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		t.Fatalf("frame of %d bytes", n)
	}
	return append(append(f, 0, 0, 0, 0), p...)
}

// readRawMessage reads one unfragmented frame the server sent.
func readRawMessage(t *testing.T, conn net.Conn, br *bufio.Reader) msg {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		ext := make([]byte, 2)
		if _, err := io.ReadFull(br, ext); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err := io.ReadFull(br, ext); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(ext)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(br, data); err != nil {
		t.Fatal(err)
	}
	if hdr[0]&0x0f != 1 {
		t.Fatalf("frame opcode %d: %q", hdr[0]&0x0f, data)
	}
	m := msg{raw: data}
	if err := json.Unmarshal(data, &m.fields); err != nil {
		t.Fatalf("server sent %q: %v", data, err)
	}
	return m
}

func TestOverlappingPublisherOfferRefused(t *testing.T) {
	h := newHarness(t, nil)
	conn, br := rawUpgrade(t, h)
	if _, err := conn.Write(rawFrame(t, wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "alice", "r", pubSub)})); err != nil {
		t.Fatal(err)
	}
	if m := readRawMessage(t, conn, br); m.typ() != wire.TypeJoined {
		t.Fatalf("got %s, want joined", m)
	}
	_, _, sdp1 := audioOffer(t)
	_, _, sdp2 := audioOffer(t)
	// o1 is held before it is applied until o2 has been refused, so the
	// second is always read while the first is being applied, as from a
	// client that does not wait for answers.
	release := make(chan struct{})
	defer signaling.SetOfferHook(func(id string) {
		if id == "o1" {
			<-release
		}
	})()
	var both []byte
	both = append(both, rawFrame(t, wire.SessionDescription{Type: wire.TypeOffer, ID: "o1", Target: wire.TargetPublisher, SDP: sdp1})...)
	both = append(both, rawFrame(t, wire.SessionDescription{Type: wire.TypeOffer, ID: "o2", Target: wire.TargetPublisher, SDP: sdp2})...)
	both = append(both, rawFrame(t, wire.Ping{Type: wire.TypePing, ID: "after"})...)
	if _, err := conn.Write(both); err != nil {
		t.Fatal(err)
	}
	var answered, refused bool
	for {
		m := readRawMessage(t, conn, br)
		switch {
		case m.typ() == wire.TypeAnswer && m.str("id") == "o1":
			answered = true
		case m.typ() == wire.TypeError && m.str("ref_id") == "o2":
			if m.str("code") != wire.CodeOfferPending || m.boolean("fatal") || m.str("ref") != wire.TypeOffer {
				t.Fatalf("second offer refused with %s, want offer_pending", m)
			}
			refused = true
			close(release)
		case m.typ() == wire.TypeAnswer:
			t.Fatalf("the overlapping offer was answered: %s", m)
		}
		if m.typ() == wire.TypePong {
			// Handled in order: after the first offer's answer.
			if !answered || !refused {
				t.Fatalf("pong before: answered o1 %v, refused o2 %v", answered, refused)
			}
			return
		}
	}
}

func TestCandidatesCarryTheUsernameFragment(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.join(t, "alice", "r", pubSub)
	_, _, sdp := audioOffer(t)
	a.send(wire.SessionDescription{Type: wire.TypeOffer, ID: "o", Target: wire.TargetPublisher, SDP: sdp})
	ans := a.waitType(wire.TypeAnswer)
	ufrag := regexp.MustCompile(`a=ice-ufrag:(\S+)`).FindStringSubmatch(ans.str("sdp"))
	if ufrag == nil {
		t.Fatalf("answer without ice-ufrag: %s", ans.str("sdp"))
	}
	m := a.waitFor("candidate", func(m msg) bool {
		return m.typ() == wire.TypeCandidate && string(m.fields["candidate"]) != "null"
	})
	var cand wire.Candidate
	if err := json.Unmarshal(m.raw, &cand); err != nil {
		t.Fatal(err)
	}
	if cand.Candidate.UsernameFragment == nil || *cand.Candidate.UsernameFragment != ufrag[1] {
		t.Fatalf("candidate %s: want usernameFragment %q, the answer's", m, ufrag[1])
	}
}
