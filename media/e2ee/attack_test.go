package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// Attacks on key management by a hostile node (or a participant that
// left), each asserting what docs/E2EE.md promises; a failure is the
// attack getting through.

// takeQueue removes and returns every message queued in the room, without
// delivering it.
func (r *room) takeQueue() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queue
	r.queue = nil
	return q
}

// deliverTo hands s every message of q sent by from (broadcast or to s),
// and returns the errors s answered with.
func deliverTo(s *Session, from string, q []relayed) []error {
	var errs []error
	for _, m := range q {
		if m.from != from {
			continue
		}
		if m.to != nil && !contains(m.to, s.opts.Self) {
			continue
		}
		if err := s.HandleMessage(m.from, m.msg); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// keyOf returns the key event of sender's kid in name's key log.
func (r *room) keyOf(t *testing.T, name, sender string, kid uint64) KeyEvent {
	t.Helper()
	for _, e := range r.keys(name) {
		if e.Sender == sender && e.KID == kid {
			return e
		}
	}
	t.Fatalf("%s never held %s's key %#x", name, sender, kid)
	return KeyEvent{}
}

// TestLeaverForgesFramesUnderRatchetOfOldKey: carol (a participant who
// left, or a ghost the node added for a moment) holds bob's key of epoch
// n; when she leaves, bob draws a fresh key for n+1. The node puts frames
// under KID n+1 encrypted with the ratchet of bob's old key, which carol
// can compute. A receiver that guessed ratchets would take them as bob's
// and then refuse bob's real key for n+1; receivers do not guess, so the
// forged frames never decrypt and bob's real key and frames are taken.
func TestLeaverForgesFramesUnderRatchetOfOldKey(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.join("carol")
	r.pump()
	n := bob.KID()
	held := r.keyOf(t, "carol", "bob", n) // what carol takes with her

	r.leave("carol") // bob draws a fresh key for those who stay
	q := r.takeQueue()
	fresh := r.own("bob")[len(r.own("bob"))-1]
	if fresh.KID != n+1 {
		t.Fatalf("bob's key after carol left has KID %#x, want %#x", fresh.KID, n+1)
	}

	// carol, gone, forges a frame as bob's under the next KID with the
	// ratchet of the key she held; the node puts it on bob's track.
	guess, err := sframe.Ratchet(DefaultSuite, held.BaseKey)
	if err != nil {
		t.Fatal(err)
	}
	forged := mustEncryptWithKID(t, KeyEvent{KID: n + 1, BaseKey: guess}, 0)
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, forged); err == nil {
		t.Error("alice decrypted, as bob's, a frame carol made after she left (the ratchet of a key she held)")
	}

	// bob's real key message for n+1 now reaches alice.
	for _, err := range deliverTo(alice, "bob", q) {
		t.Errorf("alice refused bob's genuine key after carol left: %v", err)
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncryptWithKID(t, fresh, 5)); err != nil {
		t.Errorf("bob's real frames under his fresh key no longer decrypt at alice: %v", err)
	}
}

// TestGhostFloodEvictsReplayRecord: replay protection lives in per-sender
// records made for every member SetMembers adds, from announcements the
// node writes. The node recorded bob's key message, shows alice bob
// leaving, then thousands of ghosts, then bob again with his announcement.
// Records are never forgotten (a sender beyond the bound is left out
// instead), so the recorded message is still refused as a replay.
func TestGhostFloodEvictsReplayRecord(t *testing.T) {
	r := newRoom(t)
	alice := r.listen("alice") // a listener: she seals nothing to the ghosts
	bob := r.join("bob")
	r.pump()
	oldKID := bob.KID()
	recorded := r.recordedKeys("bob", oldKID)
	if len(recorded) == 0 {
		t.Fatal("no key message of bob's to record")
	}
	oldFrame := mustEncrypt(t, bob, CodecOpus, opusFrame)
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, oldFrame); err != nil {
		t.Fatal(err)
	}
	bobPeer := Peer{Identity: "bob", PublicKey: bob.PublicKey()}

	// The node: bob "leaves" alice's view (his keys are retired), ghosts
	// come and go, and bob is back with the announcement he made.
	alice.SetMembers(nil)
	ghost := Announce(newIdentity(t), newSessionKey(t))
	ghosts := make([]Peer, 0, maxSenderRecords)
	for i := range maxSenderRecords {
		ghosts = append(ghosts, Peer{Identity: fmt.Sprintf("ghost%d", i), PublicKey: ghost})
	}
	alice.SetMembers(ghosts)
	alice.SetMembers([]Peer{bobPeer})

	for _, msg := range recorded {
		err := alice.HandleMessage("bob", msg)
		if !errors.Is(err, ErrReplayedKey) {
			t.Errorf("bob's recorded key message played back after a ghost flood: %v, want ErrReplayedKey", err)
		}
	}
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, oldFrame); err == nil {
		t.Error("a recorded frame of bob's decrypted again: the retired key was installed again")
	}
}

// TestEarlyQueuePoisonedForever: key messages from senders that are not
// members yet are kept for later, bounded, unauthenticated. A node that
// relays a bogus key message "from" each of many names that never join
// only displaces older entries: bob's genuine early key message, sent
// after, is kept and taken once he is a member.
func TestEarlyQueuePoisonedForever(t *testing.T) {
	r := newRoom(t)
	alice := r.listen("alice")
	bogus := []byte(`{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"alice":"AgAA"}}`)
	for i := range maxEarlySenders {
		_ = alice.HandleMessage(fmt.Sprintf("nobody%d", i), bogus)
	}

	// Later, the node behaves. bob's key reaches alice before she counts
	// him a member.
	bob := r.join("bob")
	alice.SetMembers(nil)
	q := r.takeQueue()
	for _, err := range deliverTo(alice, "bob", q) {
		t.Logf("alice refused bob's early key: %v", err)
	}
	alice.SetMembers([]Peer{{Identity: "bob", PublicKey: bob.PublicKey()}})
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncrypt(t, bob, CodecOpus, opusFrame)); err != nil {
		t.Errorf("bob's frames after his early key message: %v (the early queue is full of messages of senders that never joined)", err)
	}
}

// TestEarlyQueueKeepsStaleKeysDropsCurrent: while bob is not (yet) a
// member at alice (held out for a changed key until her application
// accepts), he rekeys ten times. The early queue keeps his newest
// messages, so once he is a member alice holds the key he uses.
func TestEarlyQueueKeepsStaleKeysDropsCurrent(t *testing.T) {
	r := newRoom(t)
	alice := r.listen("alice")
	bob := r.join("bob")
	r.pump()
	alice.SetMembers(nil) // bob held out at alice
	r.takeQueue()
	for i := range maxEarlyPerSender + 1 {
		// A join (bob ratchets) and a leave (bob draws a fresh key).
		phantom := Peer{Identity: fmt.Sprintf("p%d", i), PublicKey: alice.PublicKey()}
		bob.SetMembers([]Peer{{Identity: "alice", PublicKey: alice.PublicKey()}, phantom})
		bob.SetMembers([]Peer{{Identity: "alice", PublicKey: alice.PublicKey()}})
		_ = deliverTo(alice, "bob", r.takeQueue())
	}
	alice.SetMembers([]Peer{{Identity: "bob", PublicKey: bob.PublicKey()}}) // accepted
	own := r.own("bob")
	latest := own[len(own)-1]
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncryptWithKID(t, latest, 1)); err != nil {
		t.Errorf("bob's latest key, sent while he was held out: %v", err)
	}
}

// TestRatchetChainRetiresSendersFutureKIDs: the same leaver (or ghost) as
// in TestLeaverForgesFramesUnderRatchetOfOldKey goes on, one forged frame
// under each next KID. Were guesses kept, they would evict and retire the
// KIDs bob uses next and his genuine keys would be refused as replays;
// nothing unauthenticated is kept, so bob's next keys are taken.
func TestRatchetChainRetiresSendersFutureKIDs(t *testing.T) {
	r := newRoom(t)
	alice := r.join("alice")
	bob := r.join("bob")
	r.join("carol")
	r.pump()
	n := bob.KID()
	base := r.keyOf(t, "carol", "bob", n).BaseKey
	r.leave("carol")
	q := r.takeQueue()

	const chain = 12
	for i := uint64(1); i <= chain; i++ {
		var err error
		if base, err = sframe.Ratchet(DefaultSuite, base); err != nil {
			t.Fatal(err)
		}
		_, _, _ = alice.DecryptFrame("bob", CodecOpus, mustEncryptWithKID(t, KeyEvent{KID: n + i, BaseKey: base}, 0))
	}

	// The node behaves from now on. bob's key after carol left, and four
	// more rekeys, reach alice.
	refused := deliverTo(alice, "bob", q)
	for i := range 2 {
		phantom := Peer{Identity: fmt.Sprintf("p%d", i), PublicKey: alice.PublicKey()}
		bob.SetMembers([]Peer{{Identity: "alice", PublicKey: alice.PublicKey()}, phantom})
		refused = append(refused, deliverTo(alice, "bob", r.takeQueue())...)
		bob.SetMembers([]Peer{{Identity: "alice", PublicKey: alice.PublicKey()}})
		refused = append(refused, deliverTo(alice, "bob", r.takeQueue())...)
	}
	for _, err := range refused {
		t.Errorf("alice refused bob's genuine key: %v", err)
	}
	own := r.own("bob")
	latest := own[len(own)-1]
	if _, _, err := alice.DecryptFrame("bob", CodecOpus, mustEncryptWithKID(t, latest, 1)); err != nil {
		t.Errorf("bob's frames under his latest key (KID %#x, %d rekeys after the forgery): %v", latest.KID, len(own)-1, err)
	}
}

// TestOverlongGhostNameKeepsLeaverKey: a box binds names with a 16-bit
// length. The node adds a ghost whose name is 65536 bytes, with a valid
// announcement of its own; then carol leaves. alice must still draw a
// fresh key carol cannot derive and switch to it: a member whose name a
// box cannot carry is left out of key management, and a member whose box
// cannot be sealed gets none while the others get theirs.
func TestOverlongGhostNameKeepsLeaverKey(t *testing.T) {
	r := newRoom(t)
	short := func(o *Options) { o.AckTimeout = 20 * time.Millisecond }
	alice := r.join("alice", short)
	bob := r.join("bob", short)
	r.join("carol", short)
	r.pump()
	carolHeld := r.keyOf(t, "carol", "alice", alice.KID())

	ghost := Peer{Identity: strings.Repeat("g", 1<<16), PublicKey: Announce(newIdentity(t), newSessionKey(t))}
	bobPeer := Peer{Identity: "bob", PublicKey: bob.PublicKey()}
	carolPeer := Peer{Identity: "carol", PublicKey: r.sessions["carol"].PublicKey()}
	alice.SetMembers([]Peer{bobPeer, carolPeer, ghost}) // the ghost arrives
	alice.SetMembers([]Peer{bobPeer, ghost})            // carol leaves
	_ = deliverTo(bob, "alice", r.takeQueue())
	r.takeQueue()

	deadline := time.Now().Add(2 * time.Second)
	for alice.KID() == carolHeld.KID && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rx := sframe.NewReceiver(DefaultSuite, sframe.ReceiverOptions{})
	if err := rx.SetKey(carolHeld.KID, carolHeld.BaseKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rx.Decrypt(nil, nil, mustEncrypt(t, alice, CodecOpus, opusFrame)); err == nil {
		t.Errorf("carol, who left, decrypts what alice sends after she left (alice still on KID %#x; stats %+v)", alice.KID(), alice.Stats())
	}
}

// TestEarlyQueueKeepsOthersBoxes: the early queue keeps only this
// client's box of each message, so a node that relays fat key messages
// "from" names that never join pins next to nothing.
func TestEarlyQueueKeepsOthersBoxes(t *testing.T) {
	r := newRoom(t)
	alice := r.listen("alice")
	fat := strings.Repeat("A", 1<<18)
	msg, err := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "key", KID: 1,
		Boxes: map[string]string{"alice": "AgAA", "someone else": fat}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxEarlySenders {
		for range maxEarlyPerSender {
			_ = alice.HandleMessage(fmt.Sprintf("nobody%d", i), msg)
		}
	}
	alice.mu.Lock()
	var kept int
	for _, q := range alice.early {
		for _, m := range q {
			for _, b := range m.Boxes {
				kept += len(b)
			}
		}
	}
	alice.mu.Unlock()
	if kept > 1<<20 {
		t.Errorf("alice keeps %d MiB of boxes addressed to others for senders that never joined", kept>>20)
	}
}

// TestKnownKeyAliasesTheStore: Known, CheckKey and Remember copy keys, so
// whatever the application does with the bytes it was handed (or handed
// in) does not change the key the store pins for that person.
func TestKnownKeyAliasesTheStore(t *testing.T) {
	st := NewMemoryStore()
	bob := newIdentity(t).PublicKey()
	if _, _, _, err := CheckKey(st, "bob", bob); err != nil {
		t.Fatal(err)
	}
	tr, old, _, err := CheckKey(st, "bob", newIdentity(t).PublicKey())
	if err != nil || tr != TrustChanged {
		t.Fatalf("CheckKey: %v, %v", tr, err)
	}
	clear(old.Key) // e.g. an application wiping what it showed
	if k, _ := st.Known("bob"); !bytes.Equal(k.Key, bob) {
		t.Error("changing the KnownKey CheckKey returned changed the key the store pins for bob")
	}
}
