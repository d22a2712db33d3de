package e2ee

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// The tests here play a malicious participant: a member whose identity
// key the victim holds, so every box it seals opens, but who writes the
// sealed plaintext itself. Each forged message breaks exactly one rule of
// handleKey; its twin that keeps the rule is accepted, so the refusal is
// that rule's doing and not a flaw of the forgery.

// forgedKey seals, as from and to to, a key-message box with the fields
// chosen freely: the cipher suite and KID inside the box, the message's
// KID outside it, and the base key. Everything else is what from would
// send: its next sequence number, the room, both names, keys and sessions.
func forgedKey(t *testing.T, from, to *Session, suite sframe.CipherSuite, sealedKID, msgKID uint64, base []byte) []byte {
	t.Helper()
	return forgedBox(t, from, to, msgKID, func(b *KeyBody) {
		b.Suite, b.KID, b.BaseKey = suite, sealedKID, base
	})
}

// forgedBox seals, as from and to to, the box from would send for its
// current key, changed by edit, under a message whose KID is msgKID.
func forgedBox(t *testing.T, from, to *Session, msgKID uint64, edit func(*KeyBody)) []byte {
	t.Helper()
	from.mu.Lock()
	b := KeyBody{
		Suite: from.suite, KID: from.cur.kid, Seq: from.seq, Room: from.opts.Room,
		Sender: from.opts.Self, SenderKey: from.selfPub, SenderSession: from.sk.id,
		Recipient: to.opts.Self, RecipientKey: to.selfPub, RecipientSession: to.sk.id,
		BaseKey: from.cur.base,
	}
	from.seq++
	from.mu.Unlock()
	edit(&b)
	sealed, err := SealKeyBox(from.opts.Identity, to.sk.PublicKey(), &b)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := json.Marshal(keyMessage{
		Version: keyMessageVersion, Type: "key", KID: msgKID,
		Boxes: map[string]string{to.opts.Self: base64.RawURLEncoding.EncodeToString(sealed)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// hostileBase is a base key only the attacker knows.
func hostileBase(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// attackRoom is alice and mallory (and carol), every key delivered:
// alice holds mallory's real key and has pinned his sender tag.
func attackRoom(t *testing.T, names ...string) (*room, *Session, *Session) {
	t.Helper()
	r := newRoom(t)
	alice := r.join("alice")
	mallory := r.join("mallory")
	for _, n := range names {
		r.join(n)
	}
	r.pump()
	if _, _, err := alice.DecryptFrame("mallory", CodecOpus, mustEncrypt(t, mallory, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("alice cannot read mallory before the attack: %v", err)
	}
	return r, alice, mallory
}

// assertForgedKeyRefused hands alice mallory's forged message and checks
// that it is refused and counted once, that alice installs, logs and
// acknowledges nothing, that no frame under the forged key (hostile: the
// KIDs it could have been installed under) decrypts, and that mallory's
// real frames still do. ctr is the SFrame counter of the forged frames.
// It goes on after a failed check, so a missing rule shows all it lets
// through.
func assertForgedKeyRefused(t *testing.T, r *room, alice, mallory *Session, msg, base []byte, ctr uint64, hostile ...uint64) {
	t.Helper()
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
	before := alice.Stats()
	if err := alice.HandleMessage("mallory", msg); !errors.Is(err, ErrKeyMessage) {
		t.Errorf("alice took mallory's forged key: %v, want ErrKeyMessage", err)
	}
	after := alice.Stats()
	if after.BadKeyMessages != before.BadKeyMessages+1 {
		t.Errorf("BadKeyMessages went from %d to %d, want one more", before.BadKeyMessages, after.BadKeyMessages)
	}
	if after.KeysReceived != before.KeysReceived {
		t.Errorf("KeysReceived went from %d to %d for a refused key", before.KeysReceived, after.KeysReceived)
	}
	r.mu.Lock()
	queued := len(r.queue)
	r.mu.Unlock()
	if queued != 0 {
		t.Errorf("alice sent %d messages (an ack?) for a refused key", queued)
	}
	for _, e := range r.keys("alice") {
		if bytes.Equal(e.BaseKey, base) {
			t.Errorf("alice logged the forged key under KID %#x", e.KID)
		}
	}
	for _, kid := range hostile {
		frame := mustEncryptWithKID(t, KeyEvent{KID: kid, BaseKey: base}, ctr)
		if _, _, err := alice.DecryptFrame("mallory", CodecOpus, frame); err == nil {
			t.Errorf("a frame under the forged key, KID %#x, decrypted", kid)
		}
	}
	if _, _, err := alice.DecryptFrame("mallory", CodecOpus, mustEncrypt(t, mallory, CodecOpus, opusFrame)); err != nil {
		t.Errorf("mallory's real frames no longer decrypt: %v", err)
	}
}

// assertTwinAccepted hands alice the forged message's twin that keeps the
// rule: it is taken, and frames under its key decrypt.
func assertTwinAccepted(t *testing.T, alice *Session, msg, base []byte, kid, ctr uint64) {
	t.Helper()
	before := alice.Stats()
	if err := alice.HandleMessage("mallory", msg); err != nil {
		t.Fatalf("the forgery's well-formed twin was refused: %v", err)
	}
	if st := alice.Stats(); st.BadKeyMessages != before.BadKeyMessages || st.KeysReceived != before.KeysReceived+1 {
		t.Fatalf("the well-formed twin: stats %+v, before %+v", st, before)
	}
	frame := mustEncryptWithKID(t, KeyEvent{KID: kid, BaseKey: base}, ctr)
	if _, _, err := alice.DecryptFrame("mallory", CodecOpus, frame); err != nil {
		t.Fatalf("a frame under the well-formed twin's key: %v", err)
	}
}

// TestKeyMessageWithMismatchedSealedKIDIsRefused: the message announces
// mallory's next KID while the box holds a key for the KID alice is
// decrypting mallory under now; taken, it would replace the key in use
// under a name alice never agreed to, and be acknowledged as another.
func TestKeyMessageWithMismatchedSealedKIDIsRefused(t *testing.T) {
	r, alice, mallory := attackRoom(t)
	cur := mallory.KID()
	next := KIDOf(cur>>8, uint32(cur&0xff)+1)
	base := hostileBase(t, baseKeySize(DefaultSuite))

	msg := forgedKey(t, mallory, alice, DefaultSuite, cur, next, base)
	assertForgedKeyRefused(t, r, alice, mallory, msg, base, 1000, cur, next)

	assertTwinAccepted(t, alice, forgedKey(t, mallory, alice, DefaultSuite, next, next, base), base, next, 2000)
}

// TestKeyMessageWithOtherSuiteIsRefused: a box that names a cipher suite
// other than the session's (here AES-256-GCM with a 64-byte key): alice
// would install the key under her own suite regardless.
func TestKeyMessageWithOtherSuiteIsRefused(t *testing.T) {
	r, alice, mallory := attackRoom(t)
	other := sframe.AES256GCMSHA512_128
	if other == DefaultSuite || alice.suite != DefaultSuite {
		t.Fatal("the test needs a suite other than the session's")
	}
	cur := mallory.KID()
	kid := KIDOf(cur>>8, uint32(cur&0xff)+0x40)
	base := hostileBase(t, baseKeySize(other))

	msg := forgedKey(t, mallory, alice, other, kid, kid, base)
	assertForgedKeyRefused(t, r, alice, mallory, msg, base, 1000, kid)

	base = base[:baseKeySize(DefaultSuite)]
	assertTwinAccepted(t, alice, forgedKey(t, mallory, alice, DefaultSuite, kid, kid, base), base, kid, 2000)
}

// TestKeyMessageWithAnotherSendersTagIsRefused: mallory sends a key under
// carol's KID (her sender tag): alice follows mallory's tag from his
// keys, and takes a new one only where his epoch wraps (a KID ending in
// 0x00), so a KID that is carol's mid-epoch stays out of his receiver.
func TestKeyMessageWithAnotherSendersTagIsRefused(t *testing.T) {
	r, alice, mallory := attackRoom(t, "carol")
	carol := r.sessions["carol"]
	// Not epoch 0 modulo 256: a sender's new tag is taken only with
	// that, after a wrap.
	carolKID := carol.KID() | 1
	if carolKID>>8 == mallory.KID()>>8 {
		t.Skip("carol and mallory drew the same sender tag")
	}
	base := hostileBase(t, baseKeySize(DefaultSuite))

	msg := forgedKey(t, mallory, alice, DefaultSuite, carolKID, carolKID, base)
	assertForgedKeyRefused(t, r, alice, mallory, msg, base, 1000, carolKID)
	if _, _, err := alice.DecryptFrame("carol", CodecOpus, mustEncrypt(t, carol, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("carol's real frames no longer decrypt: %v", err)
	}

	own := KIDOf(mallory.KID()>>8, 0x40)
	assertTwinAccepted(t, alice, forgedKey(t, mallory, alice, DefaultSuite, own, own, base), base, own, 2000)
}
