package e2ee

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// The tests here play a node that records key messages and frames and
// plays them back later (docs/E2EE.md, "Threat model"). Each is named
// after the attack in the threat model's table.

// recordedKeys returns the key messages from sent so far that carry kid.
func (r *room) recordedKeys(from string, kid uint64) []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []json.RawMessage
	for _, m := range r.sent {
		var km keyMessage
		if m.from == from && json.Unmarshal(m.msg, &km) == nil && km.Type == "key" && km.KID == kid {
			out = append(out, m.msg)
		}
	}
	return out
}

// waitKeyGone waits until a frame under an old key of from no longer
// decrypts at s (its grace period is over).
func waitKeyGone(t *testing.T, s *Session, from string, frame []byte) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		changed := s.Changed()
		if _, _, err := s.DecryptFrame(from, CodecOpus, frame); errors.Is(err, ErrNoKey) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s's old key still decrypts long after the grace period", from)
		}
	}
}

// assertReplayRefused hands s a recorded message of from and checks it is
// refused as a replay, counted, acknowledged to nobody, and installs
// nothing.
func assertReplayRefused(t *testing.T, r *room, s *Session, from string, msg json.RawMessage) {
	t.Helper()
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
	before := s.Stats()
	err := s.HandleMessage(from, msg)
	if !errors.Is(err, ErrKeyMessage) || !errors.Is(err, ErrReplayedKey) {
		t.Fatalf("a replayed key message: %v, want ErrKeyMessage and ErrReplayedKey", err)
	}
	after := s.Stats()
	if after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 || after.BadKeyMessages != before.BadKeyMessages+1 {
		t.Errorf("stats went from %+v to %+v, want one more replayed and bad key message", before, after)
	}
	if after.KeysReceived != before.KeysReceived {
		t.Errorf("KeysReceived went from %d to %d on a replay", before.KeysReceived, after.KeysReceived)
	}
	r.mu.Lock()
	n := len(r.queue)
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("%d messages (an ack?) sent for a replay", n)
	}
}

// TestKeyReplay is the audit's scenario: keys exchanged; a third party
// joins and leaves; the node plays back the retired epoch's key message
// and frames. The replay is refused, nothing old decrypts, and bob's
// live frames keep decrypting.
func TestKeyReplay(t *testing.T) {
	r := newRoom(t)
	grace := func(o *Options) { o.Grace = 30 * time.Millisecond }
	alice := r.join("alice", grace)
	bob := r.join("bob", grace)
	r.pump()
	oldKID := bob.KID()
	recorded := r.recordedKeys("bob", oldKID)
	if len(recorded) == 0 {
		t.Fatal("bob sent no key message to record")
	}
	var oldFrames [][]byte
	for range 3 {
		f := mustEncrypt(t, bob, CodecOpus, opusFrame)
		if _, _, err := alice.DecryptFrame("bob", CodecOpus, f); err != nil {
			t.Fatal(err)
		}
		oldFrames = append(oldFrames, f)
	}

	r.join("carol", grace)
	r.pump()
	r.leave("carol")
	r.pump()
	live := bob.KID()
	if live == oldKID {
		t.Fatal("bob did not rekey")
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Fatal(err)
	}
	waitKeyGone(t, alice, "bob", mustEncryptWithKID(t, r.own("bob")[0], 1000))

	for _, msg := range recorded {
		assertReplayRefused(t, r, alice, "bob", msg)
	}
	for i, f := range oldFrames {
		if _, _, err := alice.DecryptFrame("bob", CodecOpus, f); err == nil {
			t.Errorf("recorded frame %d decrypted again after the replay", i)
		}
	}
	// Logged once when first received; a reinstall would log it again.
	var times int
	for _, e := range r.keys("alice") {
		if e.Sender == "bob" && e.KID == oldKID {
			times++
		}
	}
	if times != 1 {
		t.Errorf("alice installed bob's retired key %d times, want once", times)
	}
	for i := range 5 {
		if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
			t.Fatalf("bob's live frame %d after the replay: %v", i, err)
		}
	}
	if bob.KID() != live {
		t.Fatal("bob's key changed during the test")
	}
}

// TestEpochRollback: while bob's previous key is still in its grace
// period, the node plays back its key message to make alice treat the
// older key as the newest. It is refused; alice keeps decrypting both
// the frames in flight and the live ones.
func TestEpochRollback(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.pump()
	first := bob.KID()
	inFlight := mustEncrypt(t, bob, CodecOpus, opusFrame)
	r.join("carol")
	r.pump()
	if bob.KID() == first {
		t.Fatal("bob did not rekey")
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Fatal(err)
	}
	for _, msg := range r.recordedKeys("bob", first) {
		assertReplayRefused(t, r, alice, "bob", msg)
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, inFlight); err != nil {
		t.Errorf("a frame in flight under the previous key: %v", err)
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Errorf("bob's live frames after the rollback attempt: %v", err)
	}
}

// TestKeyReplayAfterLeaveAndRejoin: the node shows bob leaving and coming
// back (same session), then plays back his key message from before.
// alice forgot bob's keys when he left but not how far his sequence
// numbers went.
func TestKeyReplayAfterLeaveAndRejoin(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.pump()
	recorded := r.recordedKeys("bob", bob.KID())
	alice.SetMembers(nil) // alice sees bob leave...
	bob.SetMembers(nil)   // ...bob reconnects, and starts over with a fresh key
	r.announce()
	r.pump()
	for _, msg := range recorded {
		assertReplayRefused(t, r, alice, "bob", msg)
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Errorf("bob's live frames: %v", err)
	}
}

// TestKIDWrap: bob rekeys past 256 epochs, where the 8-bit epoch in the
// KID wraps. No KID comes back; the key after the wrap is taken as new;
// the epoch-0 key message played back afterwards is refused.
func TestKIDWrap(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.pump()
	first := bob.KID()
	recorded := r.recordedKeys("bob", first)
	for i := 0; bob.Stats().Epoch < 260; i++ {
		r.join("carol")
		r.pump()
		r.leave("carol")
		r.pump()
		if i > 200 {
			t.Fatalf("bob's epoch is %d after %d joins and leaves", bob.Stats().Epoch, i)
		}
	}
	seen := map[uint64]bool{}
	for _, e := range r.own("bob") {
		if seen[e.KID] {
			t.Fatalf("bob used KID %#x twice", e.KID)
		}
		seen[e.KID] = true
	}
	if bob.KID()>>8 == first>>8 {
		t.Fatal("bob's tag did not change at the wrap")
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("bob's frames after the wrap: %v", err)
	}
	for _, msg := range recorded {
		assertReplayRefused(t, r, alice, "bob", msg)
	}
}

// TestForgedSealAfterIdentityKeyLeak: the node has stolen bob's identity
// private key. It cannot open what was sealed to bob (sealed to his
// session key, which the identity key does not give), and cannot make
// bob take a key as alice's: boxes are signed by the sender.
func TestForgedSealAfterIdentityKeyLeak(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	recorded := r.recordedKeys("alice", alice.KID())
	r.pump()
	stolen := bob.opts.Identity

	var km keyMessage
	if len(recorded) == 0 || json.Unmarshal(recorded[0], &km) != nil {
		t.Fatal("no key message of alice's recorded")
	}
	box := decodeBox(t, km.Boxes["bob"])
	thief := newSessionKey(t) // all the thief can make: a session key of its own
	if _, err := OpenKeyBox(thief, alice.selfPub, box); !errors.Is(err, ErrSealOpen) {
		t.Fatalf("a box to bob opened without his session key: %v", err)
	}

	base := hostileBase(t, baseKeySize(DefaultSuite))
	for name, signer := range map[string]*Identity{"bob's stolen key": stolen, "a key of the node's": newIdentity(t)} {
		msg := forgedBox(t, alice, bob, alice.KID()+1, func(b *KeyBody) { b.KID, b.BaseKey = alice.KID()+1, base })
		// Re-seal the same body under the forger's signature.
		var m keyMessage
		_ = json.Unmarshal(msg, &m)
		opened, err := OpenKeyBox(bob.sk, alice.selfPub, decodeBox(t, m.Boxes["bob"]))
		if err != nil {
			t.Fatal(err)
		}
		opened.SenderKey = signer.PublicKey()
		forged, err := SealKeyBox(signer, bob.sk.PublicKey(), opened)
		if err != nil {
			t.Fatal(err)
		}
		m.Boxes["bob"] = encodeBox(forged)
		raw, _ := json.Marshal(m)
		before := bob.Stats()
		if err := bob.HandleMessage("alice", raw); !errors.Is(err, ErrKeyMessage) {
			t.Errorf("%s: a key signed by it passed as alice's: %v", name, err)
		}
		if st := bob.Stats(); st.KeysReceived != before.KeysReceived {
			t.Errorf("%s: bob installed the forged key", name)
		}
		frame := mustEncryptWithKID(t, KeyEvent{KID: alice.KID() + 1, BaseKey: base}, 5)
		if _, _, err := bob.DecryptFrame("alice", CodecOpus, frame); err == nil {
			t.Errorf("%s: a frame under the forged key decrypted as alice's", name)
		}
	}
	if _, _, err := bob.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); err != nil {
		t.Errorf("alice's real frames: %v", err)
	}
}

// TestUnauthenticatedInputEvictsNoKey: frames that do not authenticate
// (under KIDs one past each key, where a receiver guesses a ratchet) and
// key messages that do not open cannot push bob's real keys out: every key
// alice could decrypt bob with before the flood still works after it.
func TestUnauthenticatedInputEvictsNoKey(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	r.join("bob")
	r.pump()
	for range maxKeysPerSender {
		r.join("carol")
		r.pump()
		r.leave("carol")
		r.pump()
	}
	working := func(ctr uint64) map[uint64]bool {
		ok := map[uint64]bool{}
		for _, e := range r.keys("alice") {
			if e.Sender != "bob" {
				continue
			}
			if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncryptWithKID(t, e, ctr)); err == nil {
				ok[e.KID] = true
			}
		}
		return ok
	}
	before := working(10_000)
	if len(before) < 2 {
		t.Fatalf("alice holds %d of bob's keys, the test needs several", len(before))
	}
	for i := range 50 {
		for kid := range before {
			bogus := mustEncryptWithKID(t, KeyEvent{KID: kid + 1, BaseKey: bytes.Repeat([]byte{byte(i)}, baseKeySize(DefaultSuite))}, uint64(i))
			_, _, _ = alice.DecryptFrame("bob", CodecOpus, bogus)
		}
		garbage := `{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"alice":"Ag` + string(bytes.Repeat([]byte("A"), 200)) + `"}}`
		_ = alice.HandleMessage("bob", []byte(garbage))
	}
	after := working(20_000)
	for kid := range before {
		if !after[kid] {
			t.Errorf("bob's key %#x no longer decrypts after the flood", kid)
		}
	}
}

func decodeBox(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeBox(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestForgedAck: the node forges bob's acknowledgement of alice's new key
// while keeping the key message itself from him. alice switches early;
// bob's frames from her then count as no key (nothing decrypts under a
// wrong key), and once the key message reaches him they decrypt.
func TestForgedAck(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.pump()
	held := []relayed{}
	r.drop = func(from, to string) bool { return from == "alice" && to == "bob" }
	old := alice.KID()
	r.join("carol")
	r.mu.Lock()
	for _, m := range r.queue {
		var km keyMessage
		if m.from == "alice" && json.Unmarshal(m.msg, &km) == nil && km.Type == "key" {
			held = append(held, m)
		}
	}
	r.mu.Unlock()
	r.pump()
	if len(held) == 0 {
		t.Fatal("alice sent no key message to hold back")
	}
	var km keyMessage
	_ = json.Unmarshal(held[len(held)-1].msg, &km)
	forged, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "key_ack", KID: km.KID})
	if err := alice.HandleMessage("bob", forged); err != nil {
		t.Fatal(err)
	}
	waitSwitch(t, alice, old, "alice did not switch on the forged ack")
	if _, _, err := bob.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("bob, without alice's new key: %v, want ErrNoKey", err)
	}
	r.drop = nil
	if err := bob.HandleMessage("alice", held[len(held)-1].msg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("bob, once the key message arrived: %v", err)
	}
}

// TestDroppedKeyMessages: the node drops every key message from alice to
// bob. alice switches after the ack timeout anyway (a silent recipient
// cannot keep a leaver able to read), counted; bob's frames from her are
// no key, never a wrong decryption.
func TestDroppedKeyMessages(t *testing.T) {
	r := newRoom(t)
	short := func(o *Options) { o.AckTimeout = 10 * time.Millisecond }
	alice := r.join("alice", short)
	bob := r.join("bob", short)
	r.pump()
	r.drop = func(from, to string) bool { return from == "alice" && to == "bob" }
	old := alice.KID()
	r.join("carol", short)
	r.pump()
	r.leave("carol")
	r.pump()
	waitSwitch(t, alice, old, "alice never switched with bob silent")
	if alice.Stats().SwitchesOnTimeout == 0 {
		t.Fatal("no switch counted as on timeout")
	}
	if _, _, err := bob.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("bob, whose key messages were dropped: %v, want ErrNoKey", err)
	}
}
