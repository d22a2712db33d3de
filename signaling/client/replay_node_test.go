package client_test

// A hostile node that recorded a key message plays it back later
// (docs/E2EE.md, "Key messages", rules 4 and 5): the receiving client
// refuses it, counts it, installs nothing and keeps decrypting the live
// media. media/e2ee's TestKeyReplay plays the same scenario on sessions
// alone; this one goes through a real server, the SDK and the node.

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// carriedKeyMessage is a key message the node carried in a relay.
type carriedKeyMessage struct {
	frame   hostilenode.Frame
	relay   wire.Relay
	version int
	typ     string
	kid     uint64
}

// carriedKeyMessages returns the key-management relays (key and key_ack)
// the node carried, in order.
func carriedKeyMessages(proxy *hostilenode.Node) []carriedKeyMessage {
	var out []carriedKeyMessage
	for _, f := range proxy.Carried() {
		var r wire.Relay
		if json.Unmarshal(f.Data, &r) != nil || r.Type != wire.TypeRelay || !e2ee.IsKeyMessage(r.Data) {
			continue
		}
		var km struct {
			Version int    `json:"sotto_e2ee"`
			Type    string `json:"type"`
			KID     uint64 `json:"kid"`
		}
		if json.Unmarshal(r.Data, &km) != nil {
			continue
		}
		out = append(out, carriedKeyMessage{frame: f, relay: r, version: km.Version, typ: km.Type, kid: km.KID})
	}
	return out
}

// installs counts the key events of sender's kid in a key log: each is
// one install (a key message accepted, or a key made).
func installs(log []e2ee.KeyEvent, sender string, kid uint64) int {
	n := 0
	for _, e := range log {
		if e.Sender == sender && e.KID == kid {
			n++
		}
	}
	return n
}

// ownKeys returns, in order, the KIDs p made for its own frames.
func ownKeys(p *e2eePeer) []uint64 {
	var kids []uint64
	for _, e := range p.keyLog() {
		if e.Sender == p.identity {
			kids = append(kids, e.KID)
		}
	}
	return kids
}

// audioFrom returns p's receiver of identity's audio track, nil before it
// arrives. Called with p.mu held.
func (p *e2eePeer) audioFrom(identity string) *frameRecv {
	for _, r := range p.tracks {
		if r.info.Identity == identity && r.info.Kind == wire.KindAudio {
			return r
		}
	}
	return nil
}

// waitE2EE waits until cond holds. It wakes on every key p installs and
// every frame it decrypts (bob's audio keeps those coming), and every
// 20ms for what has no event of its own (a refused key message); the
// deadline is generous.
func (p *e2eePeer) waitE2EE(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-p.wake:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: %s: not after %v (stats %+v)", p.identity, what, testTimeout, p.c.E2EEStats())
		}
	}
}

// TestHostileNodeReplaysKeyMessage is the audit's scenario end to end:
// alice, behind a hostile node, and bob, publishing audio, exchange keys;
// carol joins and leaves, so bob ratchets and then draws a fresh key; the
// node then delivers to alice, in place of a relay bob sends her, the
// relay it recorded with bob's first key message. alice refuses it as a
// replay, counts it, does not install the key again, sends no ack, tells
// the application nothing (the log says it), and bob's live audio keeps
// decrypting.
func TestHostileNodeReplaysKeyMessage(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)

	// Only alice connects through the node: every message it carries to
	// a client is hers.
	aliceLogs := &logBuffer{}
	aliceEvents := newRecorder()
	alice := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", false, true), "alice", aliceLogs.options,
		func(o *client.Options) {
			h := aliceEvents.handlers()
			o.Handlers.Relay = h.Relay
			o.Handlers.Error = h.Error
			o.Handlers.Reconnecting = h.Reconnecting
			o.Handlers.Reconnected = h.Reconnected
			o.Handlers.Disconnected = h.Disconnected
		})
	bob := joinE2EE(ctx, t, direct, srv.Token("bob", true, false), "bob")
	pub, err := bob.c.PublishSample(ctx, "bob-audio", opus())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go writeFrames(pub, "bob", wire.KindAudio, 20*time.Millisecond, 0, stop)
	alice.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 25)

	bobKIDs := ownKeys(bob)
	if len(bobKIDs) == 0 {
		t.Fatal("bob made no key")
	}
	firstKID := bobKIDs[0]
	if n := installs(alice.keyLog(), "bob", firstKID); n != 1 {
		t.Fatalf("alice installed bob's first key (KID %#x) %d times, want once", firstKID, n)
	}

	// carol joins: bob ratchets. Once carol decrypts bob, who holds no
	// key of his from before she joined, bob sends under the ratchet.
	carol := joinE2EE(ctx, t, direct, srv.Token("carol", false, true), "carol")
	carol.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 10)
	alice.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 10)

	// carol leaves: bob draws a fresh key for alice alone and switches to
	// it; wait until alice decrypts frames under it.
	epoch := bob.c.E2EEStats().Epoch
	if err := carol.c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(testTimeout)
	for {
		changed := bob.c.E2EEChanged()
		if bob.c.E2EEStats().Epoch != epoch {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatal("bob never switched to a new key after carol left")
		}
	}
	deadline.Stop()
	bobKIDs = ownKeys(bob)
	if len(bobKIDs) < 3 {
		t.Fatalf("bob made keys %#x; want his first, the ratchet for carol and a fresh one after she left", bobKIDs)
	}
	liveKID := bobKIDs[len(bobKIDs)-1]
	alice.waitE2EE(t, "decrypts bob's frames under his fresh key", func() bool {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		r := alice.audioFrom("bob")
		return r != nil && r.kids[liveKID]
	})

	// What the node recorded: the relay that carried bob's first key to
	// alice, as the real node sent it.
	var recorded []byte
	for _, m := range carriedKeyMessages(proxy) {
		if m.frame.ToClient && m.relay.From == "bob" && m.version == 2 && m.typ == "key" && m.kid == firstKID {
			recorded = bytes.Clone(m.frame.Data)
			break
		}
	}
	if recorded == nil {
		t.Fatalf("the node carried no relay of bob's first key message (KID %#x) to alice", firstKID)
	}
	acksOfFirst := func() int {
		n := 0
		for _, m := range carriedKeyMessages(proxy) {
			if !m.frame.ToClient && m.typ == "key_ack" && m.kid == firstKID {
				n++
			}
		}
		return n
	}
	if n := acksOfFirst(); n != 1 {
		t.Fatalf("alice acknowledged bob's first key %d times before the replay, want once", n)
	}

	// Baselines, at a moment bob's key is settled.
	before := alice.c.E2EEStats()
	keysBefore := alice.keyLog()
	alice.mu.Lock()
	track := alice.audioFrom("bob")
	alice.mu.Unlock()
	trackBefore := track.rt.Stats()

	// The replay: bob sends alice a relay of his own; the node delivers
	// the recorded key message in its place.
	const trigger = `{"app":"replay-node-test: swapped by the node"}`
	var mu sync.Mutex
	swapped := 0
	proxy.SetRewrite(func(b []byte) []byte {
		var r wire.Relay
		if json.Unmarshal(b, &r) != nil || r.Type != wire.TypeRelay || r.From != "bob" || string(r.Data) != trigger {
			return b
		}
		mu.Lock()
		defer mu.Unlock()
		swapped++
		return recorded
	})
	if err := bob.c.SendRelay(ctx, []string{"alice"}, json.RawMessage(trigger)); err != nil {
		t.Fatal(err)
	}
	// Wait for alice to handle it: refused (the counters), or, were it
	// accepted, installed (the key log); the checks below tell which.
	alice.waitE2EE(t, "handles the replayed key message", func() bool {
		st := alice.c.E2EEStats()
		return st.BadKeyMessages > before.BadKeyMessages || st.KeysReceived > before.KeysReceived ||
			installs(alice.keyLog(), "bob", firstKID) > 1
	})
	proxy.SetRewrite(nil)
	mu.Lock()
	n := swapped
	mu.Unlock()
	if n != 1 {
		t.Fatalf("the node swapped %d relays for the recorded one, want 1", n)
	}

	// Refused, counted once, and installed no key: checked as soon as
	// alice handled it, and again at the end.
	checkKeys := func(when string) e2ee.Stats {
		t.Helper()
		after := alice.c.E2EEStats()
		if after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 || after.BadKeyMessages != before.BadKeyMessages+1 {
			t.Fatalf("%s: alice's stats went from %+v to %+v; want one more replayed (and bad) key message", when, before, after)
		}
		if after.KeysReceived != before.KeysReceived {
			t.Fatalf("%s: alice's KeysReceived went from %d to %d on a replay", when, before.KeysReceived, after.KeysReceived)
		}
		keysAfter := alice.keyLog()
		if n := installs(keysAfter, "bob", firstKID); n != 1 {
			t.Fatalf("%s: alice installed bob's first key (KID %#x) %d times, want once: the replay installed it again", when, firstKID, n)
		}
		if len(keysAfter) != len(keysBefore) {
			t.Fatalf("%s: alice's key log grew from %d to %d events across the replay: %+v", when, len(keysBefore), len(keysAfter), keysAfter[len(keysBefore):])
		}
		return after
	}
	checkKeys("once the replay was handled")

	// Anything alice sent because of the replay went to the node before
	// this relay, which the server acknowledges once the node carried it.
	if err := alice.c.SendRelay(ctx, []string{"bob"}, json.RawMessage(`{"app":"replay-node-test: after the replay"}`)); err != nil {
		t.Fatal(err)
	}
	if n := acksOfFirst(); n != 1 {
		t.Fatalf("alice acknowledged bob's first key %d times after the replay, want once (no ack for a replay)", n)
	}

	// bob's live audio keeps decrypting: 25 more frames, each checked
	// against what bob sent, none under the replayed key.
	alice.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 25)

	after := checkKeys("after bob's live audio")
	trackAfter := track.rt.Stats()
	if trackAfter.NoKey != trackBefore.NoKey || trackAfter.Rejected != trackBefore.Rejected || trackAfter.Decrypted < trackBefore.Decrypted+25 {
		t.Fatalf("bob's audio at alice went from %+v to %+v; want every frame since the replay decrypted", trackBefore, trackAfter)
	}
	if got := ownKeys(bob); len(got) != len(bobKIDs) {
		t.Fatalf("bob made keys %#x during the replay; the test needs his key settled", got[len(bobKIDs):])
	}

	// Nothing reached the application: the key message is not a relay of
	// the application's, and a refusal is no error. The log says it.
	select {
	case m := <-aliceEvents.relays:
		t.Fatalf("alice's application got a relay from %s: %s", m.from.Identity, m.data)
	case e := <-aliceEvents.errs:
		t.Fatalf("alice's application got an error: %v", e)
	case err := <-aliceEvents.reconnecting:
		t.Fatalf("alice reconnected: %v", err)
	case err := <-aliceEvents.disconnected:
		t.Fatalf("alice disconnected: %v", err)
	default:
	}
	if err := alice.c.Err(); err != nil {
		t.Fatalf("alice's client: %v", err)
	}
	refused := 0
	for line := range bytes.SplitSeq(aliceLogs.bytes(), []byte("\n")) {
		if bytes.Contains(line, []byte("e2ee: key message refused")) && bytes.Contains(line, []byte(e2ee.ErrReplayedKey.Error())) {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("alice logged %d refusals of a replayed key message, want 1", refused)
	}
	t.Logf("bob's keys %#x; the node replayed KID %#x to alice: stats %+v -> %+v; bob's audio at alice %+v -> %+v",
		bobKIDs, firstKID, before, after, trackBefore, trackAfter)
}
