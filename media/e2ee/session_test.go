package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// room is an in-memory signaling relay between Sessions: messages queue
// until pump delivers them, so a test decides when keys arrive.
type room struct {
	t        testing.TB
	mu       sync.Mutex
	sessions map[string]*Session
	logs     map[string][]KeyEvent
	queue    []relayed
	// sent records every message sent, as a node that keeps them to
	// play back later would.
	sent []relayed
	drop func(from, to string) bool // nil: deliver everything
}

type relayed struct {
	from string
	to   []string
	msg  json.RawMessage
}

func newRoom(t testing.TB) *room {
	return &room{t: t, sessions: map[string]*Session{}, logs: map[string][]KeyEvent{}}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// join adds a participant that publishes (the common case in these
// tests); listen adds one that does not.
func (r *room) join(name string, opts ...func(*Options)) *Session {
	r.t.Helper()
	s := r.listen(name, opts...)
	s.StartPublishing()
	return s
}

func (r *room) listen(name string, opts ...func(*Options)) *Session {
	r.t.Helper()
	id, err := NewIdentity()
	if err != nil {
		r.t.Fatal(err)
	}
	o := Options{
		Room: "room", Self: name, Identity: id, Logger: quiet(),
		// Keys switch on acks only, unless a test says otherwise: a
		// loaded machine must not turn an ack test into a timeout test.
		AckTimeout: time.Hour,
		Send: func(to []string, msg json.RawMessage) {
			r.mu.Lock()
			r.queue = append(r.queue, relayed{from: name, to: to, msg: msg})
			r.sent = append(r.sent, relayed{from: name, to: to, msg: msg})
			r.mu.Unlock()
		},
		KeyLog: func(e KeyEvent) {
			r.mu.Lock()
			r.logs[name] = append(r.logs[name], e)
			r.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := NewSession(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(s.Close)
	r.mu.Lock()
	r.sessions[name] = s
	r.mu.Unlock()
	r.announce()
	return s
}

func (r *room) leave(name string) {
	r.mu.Lock()
	delete(r.sessions, name)
	r.mu.Unlock()
	r.announce()
}

// announce tells every session who else is in the room, as signaling does.
func (r *room) announce() {
	r.mu.Lock()
	var peers []Peer
	for name, s := range r.sessions {
		peers = append(peers, Peer{Identity: name, PublicKey: s.PublicKey()})
	}
	ss := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.SetMembers(peers)
	}
}

// pump delivers queued messages (and those they cause) until none is left.
func (r *room) pump() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		m := r.queue[0]
		r.queue = r.queue[1:]
		var to []string
		if m.to == nil {
			for name := range r.sessions {
				if name != m.from {
					to = append(to, name)
				}
			}
		} else {
			to = m.to
		}
		targets := map[string]*Session{}
		for _, name := range to {
			if s := r.sessions[name]; s != nil && (r.drop == nil || !r.drop(m.from, name)) {
				targets[name] = s
			}
		}
		r.mu.Unlock()
		for _, s := range targets {
			if err := s.HandleMessage(m.from, m.msg); err != nil {
				r.t.Fatalf("%s refused a message of %s: %v", s.opts.Self, m.from, err)
			}
		}
	}
}

func (r *room) keys(name string) []KeyEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs[name])
}

// own is the keys name made for its own frames, oldest first.
func (r *room) own(name string) []KeyEvent {
	return slices.DeleteFunc(r.keys(name), func(e KeyEvent) bool { return e.Sender != name })
}

var opusFrame = append([]byte{0xfc}, []byte("a frame of opus audio, encoded")...)

func mustEncrypt(t *testing.T, s *Session, c Codec, frame []byte) []byte {
	t.Helper()
	out, err := s.EncryptFrame(c, frame)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKeysReachMembersAndFramesDecrypt(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	b := r.join("bob")
	r.pump()
	wire := mustEncrypt(t, a, CodecOpus, opusFrame)
	if bytes.Contains(wire, opusFrame[1:]) {
		t.Fatal("the frame went out in clear")
	}
	if h, _, err := sframe.ParseHeader(wire); err != nil || h.KID != a.KID() {
		t.Fatalf("an Opus frame does not begin with its SFrame header (no clear TOC byte): %v", err)
	}
	got, h, err := b.DecryptFrame("alice", CodecOpus, wire)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, opusFrame) || h.KID != a.KID() {
		t.Fatalf("decrypted %q under KID %#x; want %q under %#x", got, h.KID, opusFrame, a.KID())
	}
	if a.SafetyNumber() != b.SafetyNumber() {
		t.Fatal("alice and bob disagree on the safety number")
	}
	if st := a.Stats(); st.KeysSent == 0 || st.KeysReceived == 0 {
		t.Fatalf("alice's stats %+v", st)
	}
}

func TestJoinRatchetsAndLeaveRefreshes(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	r.join("bob")
	r.pump()
	before := mustEncrypt(t, a, CodecOpus, opusFrame)
	kid0 := a.KID()

	// carol joins: alice ratchets, and switches once everyone has the key.
	c := r.join("carol")
	if a.KID() != kid0 {
		t.Fatal("alice switched keys before anyone acknowledged the new one")
	}
	r.pump()
	kid1 := a.KID()
	if kid1 == kid0 || kid1>>8 != kid0>>8 {
		t.Fatalf("after carol joined alice's KID is %#x (was %#x): want the same sender tag, next epoch", kid1, kid0)
	}
	aliceKeys := r.own("alice")
	if len(aliceKeys) != 2 {
		t.Fatalf("alice made %d keys, want 2", len(aliceKeys))
	}
	if next, _ := sframe.Ratchet(DefaultSuite, aliceKeys[0].BaseKey); !bytes.Equal(next, aliceKeys[1].BaseKey) {
		t.Fatal("the key after a join is not the ratchet of the one before")
	}
	// carol cannot read what alice sent before she joined.
	if _, _, err := c.DecryptFrame("alice", CodecOpus, before); !errors.Is(err, ErrNoKey) {
		t.Fatalf("carol decrypting a frame from before her join: %v, want ErrNoKey", err)
	}
	after := mustEncrypt(t, a, CodecOpus, opusFrame)
	if _, _, err := c.DecryptFrame("alice", CodecOpus, after); err != nil {
		t.Fatalf("carol cannot read alice after joining: %v", err)
	}
	if st := a.Stats(); st.SwitchesOnAck != 1 || st.Epoch != 1 {
		t.Fatalf("alice's stats %+v; want one switch on ack, epoch 1", st)
	}

	// carol leaves: alice draws a fresh key, sent to bob only.
	held := r.keys("carol")
	r.leave("carol")
	r.pump()
	kid2 := a.KID()
	if kid2 == kid1 {
		t.Fatal("alice kept her key after carol left")
	}
	fresh := r.own("alice")[2].BaseKey
	for _, k := range held {
		if bytes.Equal(k.BaseKey, fresh) {
			t.Fatal("carol holds alice's key from after she left")
		}
		b := k.BaseKey
		for range 4 {
			b, _ = sframe.Ratchet(DefaultSuite, b)
			if bytes.Equal(b, fresh) {
				t.Fatal("alice's key after carol left is a ratchet of one carol held")
			}
		}
	}
	if _, _, err := c.DecryptFrame("alice", CodecOpus, mustEncrypt(t, a, CodecOpus, opusFrame)); err == nil {
		t.Fatal("carol decrypted a frame alice sent after she left")
	}
}

func TestSwitchAfterTimeoutWhenSomeoneIsSilent(t *testing.T) {
	r := newRoom(t)
	short := func(o *Options) { o.AckTimeout = 20 * time.Millisecond }
	a := r.join("alice", short)
	r.join("bob", short)
	r.pump()
	kid0 := a.KID()
	// carol's acks are lost; alice must not wait for ever.
	r.drop = func(from, to string) bool { return from == "carol" && to == "alice" }
	r.join("carol", short)
	r.pump()
	waitSwitch(t, a, kid0, "alice never switched keys although carol stayed silent")
	if st := a.Stats(); st.SwitchesOnTimeout != 1 {
		t.Fatalf("alice's stats %+v; want one switch on timeout", st)
	}
}

func TestPreviousKeyHasAGracePeriod(t *testing.T) {
	r := newRoom(t)
	grace := func(o *Options) { o.Grace = 30 * time.Millisecond }
	a := r.join("alice", grace)
	b := r.join("bob", grace)
	r.pump()
	old := mustEncrypt(t, a, CodecOpus, opusFrame)
	late := mustEncrypt(t, a, CodecOpus, opusFrame)
	if _, _, err := b.DecryptFrame("alice", CodecOpus, old); err != nil {
		t.Fatal(err)
	}
	r.join("carol", grace)
	r.pump()
	if _, _, err := b.DecryptFrame("alice", CodecOpus, mustEncrypt(t, a, CodecOpus, opusFrame)); err != nil {
		t.Fatal(err)
	}
	// A frame of the previous epoch still in flight decrypts...
	if _, _, err := b.DecryptFrame("alice", CodecOpus, late); err != nil {
		t.Fatalf("a frame in flight under the previous key: %v", err)
	}
	// ...until the grace period is over.
	straggler := mustEncryptWithKID(t, r.own("alice")[0], 99)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		changed := b.Changed()
		_, _, err := b.DecryptFrame("alice", CodecOpus, straggler)
		if errors.Is(err, ErrNoKey) {
			break
		}
		select {
		case <-changed: // bob's expired keys were removed: try again
		case <-deadline.C:
			t.Fatalf("the previous key still works long after the grace period: %v", err)
		}
	}
}

// waitSwitch waits until s's sending key is no longer old.
func waitSwitch(t *testing.T, s *Session, old uint64, failure string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		changed := s.Changed()
		if s.KID() != old {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatal(failure)
		}
	}
}

// mustEncryptWithKID encrypts opusFrame under a logged key with counter ctr,
// in the frame format of EncryptFrame: no clear prefix, padded.
func mustEncryptWithKID(t *testing.T, k KeyEvent, ctr uint64) []byte {
	t.Helper()
	return encryptPlaintextWithPrefix(t, k, ctr, nil, PadAudio(nil, opusFrame, DefaultAudioBucket))
}

// h264Frame is an IDR access unit: SPS, PPS and a slice whose data has
// runs of zeros, so escaping has work to do.
func h264Frame() []byte {
	f := []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40}
	f = append(f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80)
	f = append(f, 0, 0, 0, 1, 0x65, 0x88, 0x84)
	for i := range 3000 {
		f = append(f, byte(i*7), 0, 0, byte(i%4))
	}
	return f
}

var vp8Key = append([]byte{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, bytes.Repeat([]byte("vp8 key frame "), 200)...)
var vp8Delta = append([]byte{0x51, 0x02, 0x00}, bytes.Repeat([]byte("delta "), 30)...)

func TestEveryFlippedByteIsRejected(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	b := r.join("bob")
	r.pump()
	for _, tc := range []struct {
		name  string
		codec Codec
		frame []byte
	}{
		{"opus", CodecOpus, opusFrame},
		{"vp8 key", CodecVP8, vp8Key[:200]},
		{"vp8 delta", CodecVP8, vp8Delta},
		{"h264", CodecH264, h264Frame()[:300]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := mustEncrypt(t, a, tc.codec, tc.frame)
			n, err := PrefixLen(tc.codec, wire)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wire[:n], NormalizeAnnexBIf(tc.codec, tc.frame)[:n]) {
				t.Fatal("the clear prefix is not the frame's")
			}
			for i := range wire {
				bad := bytes.Clone(wire)
				bad[i] ^= 0x01
				if got, _, err := b.DecryptFrame("alice", tc.codec, bad); err == nil {
					t.Fatalf("byte %d of %d flipped (prefix %d bytes): decrypted to %d bytes", i, len(wire), n, len(got))
				}
			}
			got, _, err := b.DecryptFrame("alice", tc.codec, wire)
			if err != nil || !bytes.Equal(got, NormalizeAnnexBIf(tc.codec, tc.frame)) {
				t.Fatalf("the untouched frame: %v", err)
			}
			if _, _, err := b.DecryptFrame("alice", tc.codec, wire); !errors.Is(err, sframe.ErrReplay) {
				t.Fatalf("a replayed frame: %v, want ErrReplay", err)
			}
		})
	}
}

// NormalizeAnnexBIf is what the sender encrypts: H.264 normalized, other
// codecs as they are.
func NormalizeAnnexBIf(c Codec, f []byte) []byte {
	if c == CodecH264 {
		return NormalizeAnnexB(f)
	}
	return f
}

// TestFramesSurviveRTP sends encrypted frames through pion's packetizers
// and depacketizers, as a call does, and decrypts what comes out.
func TestFramesSurviveRTP(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	b := r.join("bob")
	r.pump()
	for _, tc := range []struct {
		name  string
		codec Codec
		frame []byte
		pay   rtp.Payloader
		dep   func() rtp.Depacketizer
	}{
		{"opus", CodecOpus, opusFrame, &codecs.OpusPayloader{}, func() rtp.Depacketizer { return &codecs.OpusPacket{} }},
		{"vp8 key, fragmented", CodecVP8, vp8Key, &codecs.VP8Payloader{}, func() rtp.Depacketizer { return &codecs.VP8Packet{} }},
		{"vp8 delta", CodecVP8, vp8Delta, &codecs.VP8Payloader{}, func() rtp.Depacketizer { return &codecs.VP8Packet{} }},
		{"h264, fragmented", CodecH264, h264Frame(), &codecs.H264Payloader{}, func() rtp.Depacketizer { return &codecs.H264Packet{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := mustEncrypt(t, a, tc.codec, tc.frame)
			payloads := tc.pay.Payload(1200, wire)
			if len(payloads) == 0 {
				t.Fatal("the payloader sent nothing")
			}
			dep := tc.dep()
			var got []byte
			for _, p := range payloads {
				out, err := dep.Unmarshal(p)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, out...)
			}
			plain, _, err := b.DecryptFrame("alice", tc.codec, got)
			if err != nil {
				t.Fatalf("%d packets: %v", len(payloads), err)
			}
			if want := NormalizeAnnexBIf(tc.codec, tc.frame); !bytes.Equal(plain, want) {
				t.Fatalf("decrypted %d bytes, want %d", len(plain), len(want))
			}
		})
	}
}

func TestKeyMessagesAreChecked(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	b := r.join("bob")
	r.pump()

	if err := a.HandleMessage("bob", []byte(`{"hello":1}`)); !errors.Is(err, ErrNotKeyMessage) {
		t.Fatalf("an application message: %v", err)
	}
	if IsKeyMessage([]byte(`{"hello":"sotto_e2ee"}`)) || !IsKeyMessage([]byte(`{"sotto_e2ee":1,"type":"key_ack","kid":1}`)) {
		t.Fatal("IsKeyMessage misclassifies")
	}
	for name, msg := range map[string]string{
		"old version":      `{"sotto_e2ee":1,"type":"key","kid":1}`,
		"future version":   `{"sotto_e2ee":3,"type":"key","kid":1}`,
		"unknown type":     `{"sotto_e2ee":2,"type":"rekey_all","kid":1}`,
		"box not base64":   `{"sotto_e2ee":2,"type":"key","kid":4096,"boxes":{"alice":"***"}}`,
		"KID past 32 bits": `{"sotto_e2ee":2,"type":"key","kid":4294967296,"boxes":{"alice":"AAAA"}}`,
		"KID with tag 0":   `{"sotto_e2ee":2,"type":"key","kid":255,"boxes":{"alice":"AAAA"}}`,
		"box garbage":      `{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"alice":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`,
	} {
		if err := a.HandleMessage("bob", []byte(msg)); !errors.Is(err, ErrKeyMessage) {
			t.Errorf("%s: %v, want ErrKeyMessage", name, err)
		}
	}

	// A box bob sealed, presented as carol's: it opens only as bob's.
	var sent keyMessage
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
	b.SetMembers([]Peer{{Identity: "alice", PublicKey: a.PublicKey()}, {Identity: "carol", PublicKey: a.PublicKey()}})
	r.mu.Lock()
	for _, q := range r.queue {
		if q.from == "bob" && json.Unmarshal(q.msg, &sent) == nil && sent.Type == "key" {
			break
		}
	}
	r.queue = nil
	r.mu.Unlock()
	if sent.Type != "key" {
		t.Fatal("bob sent no key")
	}
	raw, _ := json.Marshal(sent)
	a.SetMembers([]Peer{{Identity: "bob", PublicKey: b.PublicKey()}, {Identity: "carol", PublicKey: b.PublicKey()}})
	if err := a.HandleMessage("carol", raw); !errors.Is(err, ErrKeyMessage) {
		t.Fatalf("bob's key presented as carol's: %v", err)
	}
	if err := a.HandleMessage("bob", raw); err != nil {
		t.Fatalf("bob's key as bob's: %v", err)
	}
	if st := a.Stats(); st.BadKeyMessages < 5 {
		t.Fatalf("alice counted %d bad key messages", st.BadKeyMessages)
	}
}

func TestKeyFloodKeepsFewKeys(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	b := r.join("bob")
	r.pump()
	// bob rekeys 50 times (50 leaves of a phantom member, each a fresh key).
	for i := range 50 {
		phantom := Peer{Identity: fmt.Sprintf("p%d", i), PublicKey: a.PublicKey()}
		b.SetMembers([]Peer{{Identity: "alice", PublicKey: a.PublicKey()}, phantom})
		b.SetMembers([]Peer{{Identity: "alice", PublicKey: a.PublicKey()}})
		r.pump()
	}
	a.mu.Lock()
	n := len(a.members["bob"].keys)
	a.mu.Unlock()
	if n > maxKeysPerSender {
		t.Fatalf("alice keeps %d keys of bob, want at most %d", n, maxKeysPerSender)
	}
	if _, _, err := a.DecryptFrame("bob", CodecOpus, mustEncrypt(t, b, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("bob's current key was evicted: %v", err)
	}
}

func TestListenersSendNoKeys(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	r.listen("bob")
	r.listen("carol")
	r.pump()
	sent := func(name string) uint64 { return r.sessions[name].Stats().KeysSent }
	if sent("bob") != 0 || sent("carol") != 0 {
		t.Fatalf("listeners sent keys: bob %d, carol %d", sent("bob"), sent("carol"))
	}
	// They still decrypt alice.
	if _, _, err := r.sessions["carol"].DecryptFrame("alice", CodecOpus, mustEncrypt(t, a, CodecOpus, opusFrame)); err != nil {
		t.Fatal(err)
	}
	// A listener leaving costs alice a rekey; a listener that starts
	// publishing sends its key to everyone once.
	r.leave("carol")
	r.pump()
	b := r.sessions["bob"]
	b.StartPublishing()
	b.StartPublishing()
	r.pump()
	if sent("bob") != 1 {
		t.Fatalf("bob sent %d key messages after starting to publish, want 1", sent("bob"))
	}
	if _, _, err := a.DecryptFrame("bob", CodecOpus, mustEncrypt(t, b, CodecOpus, opusFrame)); err != nil {
		t.Fatal(err)
	}
}

// TestReceiverDoesNotGuessRatchetedKeys: a sender that switched to its
// ratcheted key while a receiver's copy of the key message is lost: the
// receiver does not derive the key itself (anyone who ever held the
// previous key could forge frames under its ratchet, a leaver among
// them), so the frames wait for the key message and count as no key, and
// nothing the receiver holds changes.
func TestReceiverDoesNotGuessRatchetedKeys(t *testing.T) {
	r := newRoom(t)
	short := func(o *Options) { o.AckTimeout = 10 * time.Millisecond }
	a := r.join("alice", short)
	b := r.join("bob", short)
	r.pump()
	// alice's messages to bob are lost from now on.
	r.drop = func(from, to string) bool { return from == "alice" && to == "bob" }
	kid0 := a.KID()
	r.join("carol", short)
	r.pump()
	waitSwitch(t, a, kid0, "alice never switched")
	b.mu.Lock()
	held := slices.Clone(b.members["alice"].keys)
	b.mu.Unlock()
	if _, _, err := b.DecryptFrame("alice", CodecOpus, mustEncrypt(t, a, CodecOpus, opusFrame)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a frame under alice's ratcheted key, key message lost: %v, want ErrNoKey", err)
	}
	b.mu.Lock()
	after := slices.Clone(b.members["alice"].keys)
	b.mu.Unlock()
	if len(after) != len(held) {
		t.Fatalf("bob held %d keys of alice before, %d after", len(held), len(after))
	}
}

// TestKeyBeforeAnnouncement: a key message that arrives before its
// sender's participant_joined is kept and used once the sender is known.
func TestKeyBeforeAnnouncement(t *testing.T) {
	r := newRoom(t)
	a := r.join("alice")
	idB, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []json.RawMessage
	b, err := NewSession(Options{Room: "room", Self: "bob", Identity: idB, Logger: quiet(), AckTimeout: time.Hour,
		Send: func(_ []string, m json.RawMessage) { msgs = append(msgs, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.StartPublishing()
	b.SetMembers([]Peer{{Identity: "alice", PublicKey: a.PublicKey()}})
	if len(msgs) != 1 {
		t.Fatalf("bob sent %d messages", len(msgs))
	}
	// alice hears bob's key before she hears of bob.
	if err := a.HandleMessage("bob", msgs[0]); err != nil {
		t.Fatalf("early key: %v", err)
	}
	a.SetMembers([]Peer{{Identity: "bob", PublicKey: b.PublicKey()}})
	if _, _, err := a.DecryptFrame("bob", CodecOpus, mustEncrypt(t, b, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("alice, after bob's announcement: %v", err)
	}
}
