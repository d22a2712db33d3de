package web_test

// The attacks on key management of media/e2ee/attack_test.go, in rooms
// where browsers (web/sdk/e2ee, in the page of TestBrowserGoInterop) and
// Go sessions share keys: each asserts what docs/E2EE.md promises of the
// JS code as of Go's; a failure is the attack getting through.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/media/sframe"
)

// goKeyOf returns the key event of sender's kid in Go session name's key
// log: what name holds, and takes with it when it leaves.
func (r *mixedRoom) goKeyOf(name, sender string, kid uint64) e2ee.KeyEvent {
	r.t.Helper()
	for _, e := range r.goKeys(name) {
		if e.Sender == sender && e.KID == kid {
			return e
		}
	}
	r.t.Fatalf("%s never held %s's key %#x", name, sender, kid)
	return e2ee.KeyEvent{}
}

// checkGoToGo: a frame Go session from encrypts decrypts in Go session to.
func (r *mixedRoom) checkGoToGo(from, to string) {
	r.t.Helper()
	f := []byte{0xfc, 4, 5, 6}
	w, err := r.gos[from].EncryptFrame(e2ee.CodecOpus, f)
	if err != nil {
		r.t.Fatal(err)
	}
	if got, h, err := r.gos[to].DecryptFrame(from, e2ee.CodecOpus, w); err != nil || string(got) != string(f) || h.KID != r.gos[from].KID() {
		r.t.Errorf("Go %s -> Go %s: %v, KID %#x (want %#x)", from, to, err, h.KID, r.gos[from].KID())
	}
}

// checkJSToJS: a frame JS session from encrypts decrypts in JS session to.
func (r *mixedRoom) checkJSToJS(from, to string) {
	r.t.Helper()
	kid := r.jsState(from).KID
	w := r.jsEncrypt(from, e2ee.CodecOpus, []byte{0xfc, 7, 8, 9})
	if res := r.jsDecrypt(to, from, e2ee.CodecOpus, w); res.Error != "" || res.Data != "fc070809" || res.KID != kid {
		r.t.Errorf("JS %s -> JS %s: %s %s, KID %#x (want %#x)", from, to, res.Error, res.Message, res.KID, kid)
	}
}

// forgedFrame is an Opus frame under kid encrypted with base: what a
// participant who holds (or computed) base can make.
func forgedFrame(t *testing.T, kid uint64, base []byte) []byte {
	t.Helper()
	s, err := sframe.NewSender(e2ee.DefaultSuite, kid, base)
	if err != nil {
		t.Fatal(err)
	}
	return goEncryptFrame(t, s, e2ee.CodecOpus, []byte{0xfc, 0xba, 0xad})
}

// A leaver forges frames under the ratchet of a key it held: carol (a Go
// participant who left, or a ghost the node showed for a while) holds
// bob's (Go) and jade's (JS) keys of epoch n. When she leaves, both draw a
// fresh key for n+1, whose messages the node holds back. It puts frames on
// their tracks under n+1, n+2, … encrypted with the ratchets of what carol
// held. Receiving them, neither a Go receiver (gus) nor a JS one (jo)
// decrypts them (no key: receivers do not guess), and neither refuses the
// senders' real keys for those KIDs when they come, after the forgery and
// over the next rekeys, which reach n+5: frames under each decrypt.
func interopLeaverForgesTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "leaver room")
	bob := r.joinGo("bob", true, 0)
	r.joinJS("jade", true, 3_600_000, 3000)
	gus := r.joinGo("gus", false, 0)
	r.joinJS("jo", false, 3_600_000, 3000)
	r.joinGo("carol", false, 0)
	r.announce()
	r.pump()
	n := map[string]uint64{"bob": bob.KID(), "jade": r.jsState("jade").KID}
	held := map[string][]byte{}
	for who, kid := range n {
		held[who] = r.goKeyOf("carol", who, kid).BaseKey
	}

	// carol leaves; what bob and jade send gus and jo now is held back.
	r.hold = func(from, to string) bool {
		return (from == "bob" || from == "jade") && (to == "gus" || to == "jo")
	}
	r.leave("carol")
	r.announce()
	r.pump()

	const chain = 4
	for who, base := range held {
		for i := uint64(1); i <= chain; i++ {
			var err error
			if base, err = sframe.Ratchet(e2ee.DefaultSuite, base); err != nil {
				t.Fatal(err)
			}
			forged := forgedFrame(t, n[who]+i, base)
			if _, _, err := gus.DecryptFrame(who, e2ee.CodecOpus, forged); !errors.Is(err, e2ee.ErrNoKey) {
				t.Errorf("Go gus, a frame carol forged as %s's under KID %#x (the ratchet of a key she held): %v, want ErrNoKey", who, n[who]+i, err)
			}
			if res := r.jsDecrypt("jo", who, e2ee.CodecOpus, forged); res.Error != "no-key" {
				t.Errorf("JS jo, a frame carol forged as %s's under KID %#x (the ratchet of a key she held): %+v, want no-key", who, n[who]+i, res)
			}
		}
	}

	// The senders' genuine keys come (pump fails on any refusal), and the
	// next rekeys move them through the KIDs carol forged under.
	r.release()
	check := func(when string) {
		t.Helper()
		if bob.KID() <= n["bob"] || r.jsState("jade").KID <= n["jade"] {
			t.Fatalf("%s: bob on %#x (was %#x), jade on %#x (was %#x): a sender did not switch", when, bob.KID(), n["bob"], r.jsState("jade").KID, n["jade"])
		}
		r.checkGoToGo("bob", "gus")
		r.checkGoToJS("bob", "jo")
		r.checkJSToGo("jade", "gus")
		r.checkJSToJS("jade", "jo")
	}
	check("after carol left")
	for i := range 2 {
		name := fmt.Sprintf("phantom%d", i)
		r.joinGo(name, false, 0)
		r.announce()
		r.pump()
		r.leave(name)
		r.announce()
		r.pump()
		check("after " + name + " came and went")
	}
	if got, want := bob.KID(), n["bob"]+chain+1; got != want {
		t.Errorf("bob is on KID %#x, want %#x (past the KIDs carol forged under)", got, want)
	}
	if got, want := r.jsState("jade").KID, n["jade"]+chain+1; got != want {
		t.Errorf("jade is on KID %#x, want %#x (past the KIDs carol forged under)", got, want)
	}
	if st := r.jsState("jo"); st.Stats.BadKeyMessages != 0 {
		t.Errorf("JS jo refused key messages: %+v", st.Stats)
	}
	if st := gus.Stats(); st.BadKeyMessages != 0 {
		t.Errorf("Go gus refused key messages: %+v", st)
	}
}

// ghostCount is how many made-up participants the node shows: as many as
// a session remembers senders, so that the flood would push out the
// oldest record were records forgotten.
const ghostCount = 4096

// A ghost flood to make a receiver forget a sender's replay record: the
// node recorded bob's (Go) key message to jill (JS) and jade's (JS) to gus
// (Go), shows each receiver bob and jade leaving, then 4096 made-up
// participants, then bob and jade again with their announcements. The
// recorded messages are still refused as replays (records are never
// forgotten within a session; the ghosts beyond the bound are left out of
// key management), and frames recorded under the keys they carried do not
// decrypt again.
func interopGhostFloodTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "ghost room")
	bob := r.joinGo("bob", true, 0)
	r.joinJS("jade", true, 3_600_000, 3000)
	gus := r.joinGo("gus", false, 0) // listeners: they seal nothing to the ghosts
	r.joinJS("jill", false, 3_600_000, 3000)
	r.announce()
	r.pump()
	only := func(from, to string) []json.RawMessage {
		var out []json.RawMessage
		for _, m := range r.keyMessages(from) {
			if strings.Contains(string(m), `"`+to+`"`) {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			t.Fatalf("no key message of %s's to %s to record", from, to)
		}
		return out
	}
	bobToJill, jadeToGus := only("bob", "jill"), only("jade", "gus")
	bobFrame, err := bob.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	jadeFrame := r.jsEncrypt("jade", e2ee.CodecOpus, []byte{0xfc, 2, 2})
	if res := r.jsDecrypt("jill", "bob", e2ee.CodecOpus, bobFrame); res.Error != "" {
		t.Fatalf("JS jill, bob's frame: %+v", res)
	}
	if _, _, err := gus.DecryptFrame("jade", e2ee.CodecOpus, jadeFrame); err != nil {
		t.Fatalf("Go gus, jade's frame: %v", err)
	}

	ghostID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ghostSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	ghost := e2ee.Announce(ghostID, ghostSK)
	back := []e2ee.Peer{{Identity: "bob", PublicKey: bob.PublicKey()}, {Identity: "jade", PublicKey: r.js["jade"]}}
	type peer struct {
		Identity  string `json:"identity"`
		PublicKey string `json:"publicKey"`
	}
	jsBack := []peer{{"bob", bob.PublicKey()}, {"jade", r.js["jade"]}}

	// The node's show, to jill and to gus.
	start := time.Now()
	jsCall(t, ctx, nil, "setMembers", "jill", nil)
	jsCall(t, ctx, nil, "setMembersWithGhosts", "jill", []peer{}, "ghost", ghostCount, ghost)
	var members int
	jsCall(t, ctx, &members, "memberCount", "jill")
	// jill remembers bob, jade and gus already: 3 of the records.
	if members != ghostCount-3 {
		t.Errorf("JS jill counts %d of the %d ghosts as members; want %d (the records of bob, jade and gus are kept, the session remembers %d senders)",
			members, ghostCount, ghostCount-3, ghostCount)
	}
	jsCall(t, ctx, nil, "setMembers", "jill", jsBack)
	t.Logf("the ghost flood at the JS receiver took %v", time.Since(start).Round(time.Millisecond))
	gus.SetMembers(nil)
	ghosts := make([]e2ee.Peer, 0, ghostCount)
	for i := range ghostCount {
		ghosts = append(ghosts, e2ee.Peer{Identity: fmt.Sprintf("ghost%d", i), PublicKey: ghost})
	}
	gus.SetMembers(ghosts)
	gus.SetMembers(back)

	for _, msg := range bobToJill {
		before := r.jsState("jill").Stats
		var res string
		jsCall(t, ctx, &res, "handle", "jill", "bob", string(msg))
		after := r.jsState("jill").Stats
		if res != "KeyMessageError" || after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 || after.KeysReceived != before.KeysReceived {
			t.Errorf("JS jill, bob's recorded key message after a ghost flood: %s, stats %+v (before %+v); want it refused as a replay", res, after, before)
		}
	}
	for _, msg := range jadeToGus {
		if err := gus.HandleMessage("jade", msg); !errors.Is(err, e2ee.ErrReplayedKey) {
			t.Errorf("Go gus, jade's recorded key message after a ghost flood: %v, want ErrReplayedKey", err)
		}
	}
	if res := r.jsDecrypt("jill", "bob", e2ee.CodecOpus, bobFrame); res.Error != "no-key" {
		t.Errorf("JS jill, bob's recorded frame: %+v, want no-key (the retired key installed again?)", res)
	}
	if _, _, err := gus.DecryptFrame("jade", e2ee.CodecOpus, jadeFrame); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gus, jade's recorded frame: %v, want ErrNoKey (the retired key installed again?)", err)
	}
}

// A ghost whose name a key message cannot carry (over 65535 bytes, with a
// valid announcement of its own) arrives at jane (JS), and carol (Go)
// leaves. jane must still draw a fresh key carol cannot derive and switch
// to it: the ghost is left out of key management, the others (bob, Go, and
// jo, JS) get the fresh key. The Go sender gale, shown the same ghost,
// does the same.
func interopOverlongGhostTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "overlong room")
	gale := r.joinGo("gale", true, 100*time.Millisecond)
	r.joinJS("jane", true, 100, 3000)
	bob := r.joinGo("bob", false, 0)
	r.joinJS("jo", false, 3_600_000, 3000)
	r.joinGo("carol", false, 0)
	r.announce()
	r.pump()
	n := map[string]uint64{"gale": gale.KID(), "jane": r.jsState("jane").KID}
	held := map[string][]byte{}
	for who, kid := range n {
		held[who] = r.goKeyOf("carol", who, kid).BaseKey
	}

	ghostID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ghostSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	ghostName := strings.Repeat("g", 1<<16)
	ghost := e2ee.Peer{Identity: ghostName, PublicKey: e2ee.Announce(ghostID, ghostSK)}
	type peer struct {
		Identity  string `json:"identity"`
		PublicKey string `json:"publicKey"`
	}
	others := func(self string, withCarol bool) ([]e2ee.Peer, []peer) {
		var gp []e2ee.Peer
		var jp []peer
		list := []e2ee.Peer{
			{Identity: "gale", PublicKey: gale.PublicKey()}, {Identity: "jane", PublicKey: r.js["jane"]},
			{Identity: "bob", PublicKey: bob.PublicKey()}, {Identity: "jo", PublicKey: r.js["jo"]},
		}
		if withCarol {
			list = append(list, e2ee.Peer{Identity: "carol", PublicKey: r.gos["carol"].PublicKey()})
		}
		list = append(list, ghost)
		for _, p := range list {
			if p.Identity != self {
				gp = append(gp, p)
				jp = append(jp, peer{p.Identity, p.PublicKey})
			}
		}
		return gp, jp
	}
	// The ghost arrives (at the senders), then carol leaves.
	for _, withCarol := range []bool{true, false} {
		gp, _ := others("gale", withCarol)
		gale.SetMembers(gp)
		_, jp := others("jane", withCarol)
		jsCall(t, ctx, nil, "setMembers", "jane", jp)
	}
	r.leave("carol")
	r.pump()

	deadline := time.Now().Add(browserTimeout)
	for gale.KID() == n["gale"] || r.jsState("jane").KID == n["jane"] {
		if time.Now().After(deadline) {
			t.Fatalf("the senders did not switch to a fresh key after carol left: gale on %#x (was %#x), jane on %#x (was %#x)",
				gale.KID(), n["gale"], r.jsState("jane").KID, n["jane"])
		}
		r.pump()
		time.Sleep(20 * time.Millisecond)
	}

	// carol, gone, tries what she held and its ratchet: nothing opens.
	frames := map[string][]byte{}
	if frames["gale"], err = gale.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 3, 3}); err != nil {
		t.Fatal(err)
	}
	frames["jane"] = r.jsEncrypt("jane", e2ee.CodecOpus, []byte{0xfc, 4, 4})
	for who, base := range held {
		rx := sframe.NewReceiver(e2ee.DefaultSuite, sframe.ReceiverOptions{})
		for i := range uint64(3) {
			if err := rx.SetKey(n[who]+i, base); err != nil {
				t.Fatal(err)
			}
			if base, err = sframe.Ratchet(e2ee.DefaultSuite, base); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := goDecryptFrame(rx, e2ee.CodecOpus, frames[who]); err == nil {
			t.Errorf("carol, who left, decrypts what %s sends after she left", who)
		}
	}
	r.checkGoToGo("gale", "bob")
	r.checkGoToJS("gale", "jo")
	r.checkJSToGo("jane", "bob")
	r.checkJSToJS("jane", "jo")
	for _, who := range []string{"gale", "jane"} {
		for _, m := range r.keyMessages(who) {
			if strings.Contains(string(m), ghostName) {
				t.Errorf("%s sealed a key to the ghost whose name no box can carry", who)
			}
		}
	}
}

// Bogus early key messages to fill the queue of keys from participants
// not yet members: the node relays, to jay (JS) and gus (Go), key
// messages "from" 64 names that never join, four each (to jay, first with
// a fat box for someone else, then from 64 more names). They only displace older entries: each receiver
// keeps its own box of each message only, and the genuine early keys
// sent after them (gale's, Go, to jay; jill's, JS, to gus), five rekeys'
// worth while the sender is not a member yet, are kept, newest first: once
// the sender is a member, its latest key decrypts.
func interopEarlyQueueTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "early queue room")
	const senders, perSender = 64, 4 // Go's maxEarlySenders and maxEarlyPerSender, keys.js's MAX_EARLY_*
	takeGo := func() []mixedRelay {
		r.mu.Lock()
		defer r.mu.Unlock()
		q := r.queue
		r.queue = nil
		return q
	}
	type outbox []struct {
		To  []string
		Msg string
	}
	bogus := func(to string, fat bool) string {
		boxes := map[string]string{to: "AgAA"}
		if fat {
			boxes["someone else"] = strings.Repeat("A", 1<<18)
		}
		// A well-formed KID (tag 1, epoch 0): refused only once it is opened.
		b, err := json.Marshal(map[string]any{"sotto_e2ee": 2, "type": "key", "kid": 0x100, "boxes": boxes})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	phantom := func() string {
		id, err := e2ee.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		sk, err := e2ee.NewSessionKey()
		if err != nil {
			t.Fatal(err)
		}
		return e2ee.Announce(id, sk)
	}

	// jay (JS) is flooded: fat messages first, then more names.
	r.joinJS("jay", false, 3_600_000, 3000)
	jsCall(t, ctx, nil, "setMembers", "jay", []map[string]string{})
	var tally map[string]int
	jsCall(t, ctx, &tally, "handleFromMany", "jay", "fat", senders, perSender, bogus("jay", true))
	if tally["ok"] != senders*perSender {
		t.Errorf("JS jay, bogus early key messages of names that never join: %v; want every one kept for later (not refused)", tally)
	}
	var early struct{ Senders, Messages, BoxChars int }
	jsCall(t, ctx, &early, "early", "jay")
	if early.Senders != senders || early.Messages != senders*perSender || early.BoxChars > senders*perSender*len("AgAA") {
		t.Errorf("JS jay keeps %+v of early key messages; want %d senders, %d messages, its own box of each only (%d characters)",
			early, senders, senders*perSender, senders*perSender*len("AgAA"))
	}
	jsCall(t, ctx, &tally, "handleFromMany", "jay", "nobody", senders, perSender, bogus("jay", false))
	if tally["ok"] != senders*perSender {
		t.Errorf("JS jay, more bogus early key messages: %v; want every one kept for later, displacing older ones", tally)
	}

	// gale (Go) knows jay; jay, not counting gale a member yet, hears her
	// key and five rekeys (a phantom joins and leaves).
	gale := r.joinGo("gale", true, 0)
	jayPeer := e2ee.Peer{Identity: "jay", PublicKey: r.js["jay"]}
	gale.SetMembers([]e2ee.Peer{jayPeer})
	for i := range 5 {
		p := e2ee.Peer{Identity: fmt.Sprintf("p%d", i), PublicKey: phantom()}
		gale.SetMembers([]e2ee.Peer{jayPeer, p})
		gale.SetMembers([]e2ee.Peer{jayPeer})
	}
	for _, m := range takeGo() {
		var res string
		jsCall(t, ctx, &res, "handle", "jay", "gale", string(m.msg))
		if res != "ok" {
			t.Errorf("JS jay, gale's early key message after the flood: %s; want it kept", res)
		}
	}
	jsCall(t, ctx, nil, "setMembers", "jay", []map[string]string{{"identity": "gale", "publicKey": gale.PublicKey()}})
	var out outbox
	jsCall(t, ctx, &out, "takeOutbox", "jay")
	for _, m := range out {
		if err := gale.HandleMessage("jay", json.RawMessage(m.Msg)); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.jsState("jay"); st.Stats.KeysReceived != perSender || st.Stats.BadKeyMessages != 0 {
		t.Errorf("JS jay once gale is a member: %+v; want her newest %d keys taken", st.Stats, perSender)
	}
	r.checkGoToJS("gale", "jay")

	// The same the other way: gus (Go) flooded, jill's (JS) early keys.
	gus := r.joinGo("gus", false, 0)
	bogusGus := json.RawMessage(bogus("gus", false))
	for i := range senders {
		for range perSender {
			if err := gus.HandleMessage(fmt.Sprintf("nobody%d", i), bogusGus); err != nil {
				t.Errorf("Go gus, a bogus early key message: %v", err)
			}
		}
	}
	takeGo()
	r.joinJS("jill", true, 3_600_000, 3000)
	gusPeer := map[string]string{"identity": "gus", "publicKey": gus.PublicKey()}
	jsCall(t, ctx, nil, "setMembers", "jill", []map[string]string{gusPeer})
	for i := range 5 {
		jsCall(t, ctx, nil, "setMembers", "jill", []map[string]string{gusPeer, {"identity": fmt.Sprintf("p%d", i), "publicKey": phantom()}})
		jsCall(t, ctx, nil, "setMembers", "jill", []map[string]string{gusPeer})
	}
	jsCall(t, ctx, &out, "takeOutbox", "jill")
	if len(out) != 11 {
		t.Fatalf("jill sent %d key messages, want 11 (her key and two for each of five phantoms)", len(out))
	}
	for _, m := range out {
		if err := gus.HandleMessage("jill", json.RawMessage(m.Msg)); err != nil {
			t.Errorf("Go gus, jill's early key message after the flood: %v; want it kept", err)
		}
	}
	gus.SetMembers([]e2ee.Peer{{Identity: "jill", PublicKey: r.js["jill"]}})
	for _, m := range takeGo() {
		var res string
		jsCall(t, ctx, &res, "handle", "jill", "gus", string(m.msg))
		if res != "ok" {
			t.Fatalf("JS jill refused gus's ack: %s", res)
		}
	}
	if st := gus.Stats(); st.KeysReceived != perSender || st.BadKeyMessages != 0 {
		t.Errorf("Go gus once jill is a member: %+v; want her newest %d keys taken", st, perSender)
	}
	r.checkJSToGo("jill", "gus")
}

// Stores copy keys in and out, as Go's (TestKnownKeyAliasesTheStore): the
// page's MemoryStore and IndexedDBStore, and checkKey in front of a store
// that hands out the arrays it keeps, whatever the application does with
// the bytes it was handed or handed in.
func interopStoreCopiesTest(t *testing.T, ctx context.Context) {
	var failures []string
	jsCall(t, ctx, &failures, "storeCopies", "sotto-e2ee-store-copies-test")
	for _, f := range failures {
		t.Error(f)
	}
}

// A sender tag is never reused within a session, as Go's newTag: a JS
// session whose random draws yield a tag it used before draws again.
func interopTagsNotReusedTest(t *testing.T, ctx context.Context) {
	var first string
	jsCall(t, ctx, &first, "newSession", map[string]any{"room": "tag room", "self": "tess"})
	defer jsCall(t, ctx, nil, "close", "tess")
	const a, b = 0x111111, 0x222222
	// The first tag, then a; then the first tag again, a again, 0, then b.
	var tags []uint64
	jsCall(t, ctx, &tags, "tagsDrawn", "tess", []int{a, -1, a, 0, b}, 2)
	if len(tags) != 3 || tags[1] != a || tags[2] != b {
		t.Errorf("JS tess drew the tags %#x; want its first, then %#x, then %#x (not one it used before, nor 0)", tags, a, b)
	}
}

// joinGoWith is joinGo with the session's options edited before it
// starts: a grace period, an identity of the test's.
func (r *mixedRoom) joinGoWith(name string, publish bool, edit func(*e2ee.Options)) *e2ee.Session {
	r.t.Helper()
	id, err := e2ee.NewIdentity()
	if err != nil {
		r.t.Fatal(err)
	}
	sk, err := e2ee.NewSessionKey()
	if err != nil {
		r.t.Fatal(err)
	}
	opts := e2ee.Options{
		Room: r.name, Self: name, Identity: id, SessionKey: sk, Logger: testLogger(),
		AckTimeout: 1 << 40,
		Send: func(to []string, msg json.RawMessage) {
			r.mu.Lock()
			r.queue = append(r.queue, mixedRelay{from: name, to: to, msg: msg})
			r.mu.Unlock()
		},
		KeyLog: func(e e2ee.KeyEvent) {
			r.mu.Lock()
			r.logs[name] = append(r.logs[name], e)
			r.mu.Unlock()
		},
	}
	edit(&opts)
	s, err := e2ee.NewSession(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(s.Close)
	if publish {
		s.StartPublishing()
	}
	r.mu.Lock()
	r.gos[name] = s
	r.keys[name] = goKeys{opts.Identity, opts.SessionKey}
	r.mu.Unlock()
	return s
}

// keyMessagesOf returns the key messages of from that the pump delivered
// carrying kid, oldest first: what the node recorded of that key.
func (r *mixedRoom) keyMessagesOf(from string, kid uint64) []json.RawMessage {
	var out []json.RawMessage
	for _, m := range r.keyMessages(from) {
		var km struct {
			KID uint64 `json:"kid"`
		}
		if json.Unmarshal(m, &km) == nil && km.KID == kid {
			out = append(out, m)
		}
	}
	return out
}

// boxFor returns the box for recipient in the first of msgs that has
// one, decoded.
func boxFor(t *testing.T, msgs []json.RawMessage, recipient string) []byte {
	t.Helper()
	for _, m := range msgs {
		var km struct {
			Boxes map[string]string `json:"boxes"`
		}
		if json.Unmarshal(m, &km) != nil || km.Boxes[recipient] == "" {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(km.Boxes[recipient])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no key message with a box for %s recorded", recipient)
	return nil
}

// jsKeyState is what a JS session holds of another participant (keyState).
type jsKeyState struct {
	KIDs     []uint64
	InUse    uint64
	Expiring bool
	Highest  string
}

func (r *mixedRoom) jsKeyState(name, from string) jsKeyState {
	r.t.Helper()
	var ks *jsKeyState
	jsCall(r.t, r.ctx, &ks, "keyState", name, from)
	if ks == nil {
		r.t.Fatalf("JS %s does not count %s a member", name, from)
	}
	return *ks
}

// jsRefuses hands JS session name msg as from's and checks that it is
// refused and counted (as a replay when replay), and that nothing else
// changes: no key taken, none of from's keys touched, no message sent.
func (r *mixedRoom) jsRefuses(name, from, what string, msg string, replay bool) {
	r.t.Helper()
	before, keys := r.jsState(name), r.jsKeyState(name, from)
	var res string
	jsCall(r.t, r.ctx, &res, "handle", name, from, msg)
	after, keysAfter := r.jsState(name), r.jsKeyState(name, from)
	var sent []struct{ To []string }
	jsCall(r.t, r.ctx, &sent, "takeOutbox", name)
	replays := 0
	if replay {
		replays = 1
	}
	if res != "KeyMessageError" || after.Stats.BadKeyMessages != before.Stats.BadKeyMessages+1 ||
		after.Stats.ReplayedKeyMessages != before.Stats.ReplayedKeyMessages+replays ||
		after.Stats.KeysReceived != before.Stats.KeysReceived || len(sent) != 0 {
		r.t.Errorf("JS %s, %s: %s, %d messages sent; stats %+v, before %+v; want it refused (as a replay: %v), nothing else changed",
			name, what, res, len(sent), after.Stats, before.Stats, replay)
	}
	if !slices.Equal(keysAfter.KIDs, keys.KIDs) || keysAfter.InUse != keys.InUse || keysAfter.Expiring != keys.Expiring || keysAfter.Highest != keys.Highest {
		r.t.Errorf("JS %s, %s: %s's keys went from %+v to %+v", name, what, from, keys, keysAfter)
	}
}

// goRefuses is jsRefuses for Go session name: ErrKeyMessage, and
// ErrReplayedKey when replay (and not otherwise).
func (r *mixedRoom) goRefuses(name, from, what string, msg json.RawMessage, replay bool) {
	r.t.Helper()
	s := r.gos[name]
	logged := func() int {
		n := 0
		for _, e := range r.goKeys(name) {
			if e.Sender == from {
				n++
			}
		}
		return n
	}
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
	before, keys := s.Stats(), logged()
	err := s.HandleMessage(from, msg)
	after, keysAfter := s.Stats(), logged()
	r.mu.Lock()
	sent := len(r.queue)
	r.mu.Unlock()
	var replays uint64
	if replay {
		replays = 1
	}
	if !errors.Is(err, e2ee.ErrKeyMessage) || errors.Is(err, e2ee.ErrReplayedKey) != replay ||
		after.BadKeyMessages != before.BadKeyMessages+1 || after.ReplayedKeyMessages != before.ReplayedKeyMessages+replays ||
		after.KeysReceived != before.KeysReceived || keysAfter != keys || sent != 0 {
		r.t.Errorf("Go %s, %s: %v, %d messages sent, %d keys of %s logged (before %d); stats %+v, before %+v; want it refused (as a replay: %v), nothing else changed",
			name, what, err, sent, keysAfter, from, keys, after, before, replay)
	}
}

// Epoch rollback: while a sender's previous key is still in its grace
// period (a newer key is in use, the older one kept a while for frames
// still on their way), the node plays back the older key's message, to
// make the receiver take it as the newest again. gray (Go) sends to jill
// (JS) and jill to gray; carol joining makes both move to their next key
// (the ratchet). Each receiver refuses every recorded message of the
// previous key as a replay and counts it, installs and acknowledges
// nothing, and keeps decrypting both the frames in flight under the
// previous key and the live ones (Go's TestEpochRollback).
func interopEpochRollbackTest(t *testing.T, ctx context.Context) {
	// Long enough that the previous keys stay in their grace period
	// throughout, however slow the machine; that they are in it, and
	// not merely kept until a newer key is in use, is checked.
	const grace = 10 * time.Minute
	r := newMixedRoom(t, ctx, "rollback room")
	gray := r.joinGoWith("gray", true, func(o *e2ee.Options) { o.Grace = grace })
	r.joinJS("jill", true, 3_600_000, int(grace/time.Millisecond))
	r.announce()
	r.pump()
	grayFirst, jillFirst := gray.KID(), r.jsState("jill").KID
	r.checkFramesBothWays("gray", "jill") // the first keys are in use
	grayRecorded, jillRecorded := r.keyMessagesOf("gray", grayFirst), r.keyMessagesOf("jill", jillFirst)
	if len(grayRecorded) == 0 || len(jillRecorded) == 0 {
		t.Fatalf("%d key messages of gray's first key recorded, %d of jill's; want one each at least", len(grayRecorded), len(jillRecorded))
	}
	// Frames sent under the first keys, still on their way when the
	// next keys come into use.
	grayInFlight, err := gray.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	jillInFlight := r.jsEncrypt("jill", e2ee.CodecOpus, []byte{0xfc, 2, 2, 2})

	r.joinGo("carol", false, 0)
	r.announce()
	r.pump()
	grayNext, jillNext := gray.KID(), r.jsState("jill").KID
	if grayNext != grayFirst+1 || jillNext != jillFirst+1 {
		t.Fatalf("after carol joined: gray on %#x (was %#x), jill on %#x (was %#x); want each on its next key", grayNext, grayFirst, jillNext, jillFirst)
	}

	// gray -> jill: the next key comes into use at jill, which starts
	// the previous key's grace period.
	live, err := gray.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 3, 3, 3})
	if err != nil {
		t.Fatal(err)
	}
	if res := r.jsDecrypt("jill", "gray", e2ee.CodecOpus, live); res.Error != "" || res.KID != grayNext {
		t.Fatalf("JS jill, gray's live frame under %#x: %+v", grayNext, res)
	}
	if ks := r.jsKeyState("jill", "gray"); ks.InUse != grayNext || !ks.Expiring || !slices.Equal(ks.KIDs, []uint64{grayFirst, grayNext}) {
		t.Fatalf("JS jill holds %+v of gray's; want %#x in use and %#x in its grace period", ks, grayNext, grayFirst)
	}
	for i, msg := range grayRecorded {
		r.jsRefuses("jill", "gray", fmt.Sprintf("gray's key message %d of his previous key %#x, played back in its grace period", i, grayFirst), string(msg), true)
	}
	if res := r.jsDecrypt("jill", "gray", e2ee.CodecOpus, grayInFlight); res.Error != "" || res.Data != "fc010101" || res.KID != grayFirst {
		t.Errorf("JS jill, gray's frame in flight under his previous key %#x, after the rollback attempt: %+v", grayFirst, res)
	}
	r.checkGoToJS("gray", "jill")

	// jill -> gray, the same.
	liveJS := r.jsEncrypt("jill", e2ee.CodecOpus, []byte{0xfc, 4, 4, 4})
	if _, h, err := gray.DecryptFrame("jill", e2ee.CodecOpus, liveJS); err != nil || h.KID != jillNext {
		t.Fatalf("Go gray, jill's live frame under %#x: %v, KID %#x", jillNext, err, h.KID)
	}
	for i, msg := range jillRecorded {
		r.goRefuses("gray", "jill", fmt.Sprintf("jill's key message %d of her previous key %#x, played back in its grace period", i, jillFirst), msg, true)
	}
	if got, h, err := gray.DecryptFrame("jill", e2ee.CodecOpus, jillInFlight); err != nil || !bytes.Equal(got, []byte{0xfc, 2, 2, 2}) || h.KID != jillFirst {
		t.Errorf("Go gray, jill's frame in flight under her previous key %#x, after the rollback attempt: %x, %v, KID %#x", jillFirst, got, err, h.KID)
	}
	r.checkJSToGo("jill", "gray")

	// Both ways, the live keys are still the ones in use.
	r.checkFramesBothWays("gray", "jill")
	if ks := r.jsKeyState("jill", "gray"); ks.InUse != grayNext || !slices.Equal(ks.KIDs, []uint64{grayFirst, grayNext}) {
		t.Errorf("JS jill holds %+v of gray's at the end; want %#x in use, %#x still in its grace period", ks, grayNext, grayFirst)
	}
}

// Forged seal after identity-key leak: the node has stolen a receiver's
// identity private key: gus's (Go), read from the file his identity store
// keeps it in, and in effect jude's (JS: the page's private keys cannot
// be exported, so the test signs with hers where it lies). It opens
// nothing sealed to them: a box is sealed to its recipient's session key,
// which the identity key does not give, and a recorded box opens with
// that key only, on either side. And it cannot make them take a key as
// another participant's: a box passed off as gale's (Go) to jude or as
// jess's (JS) to gus, which the node signed with the receiver's stolen key
// or with a key of its own, naming the signer's key or the sender's, is
// refused and counted (not as a replay); nothing is installed or
// acknowledged, a frame under the forged key finds no key, and the
// senders' real frames decrypt. The same body signed by the real sender
// is taken: the forgeries fail on their signatures (Go's
// TestForgedSealAfterIdentityKeyLeak).
func interopForgedSealTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "leak room")
	dir := t.TempDir()
	store, err := e2ee.OpenFileStore(filepath.Join(dir, "gus.json"))
	if err != nil {
		t.Fatal(err)
	}
	gusID, err := store.Identity()
	if err != nil {
		t.Fatal(err)
	}
	gale := r.joinGo("gale", true, 0)
	r.joinJS("jess", true, 3_600_000, 3000)
	gus := r.joinGoWith("gus", false, func(o *e2ee.Options) { o.Identity = gusID })
	r.joinJS("jude", false, 3_600_000, 3000)
	r.announce()
	r.pump()
	r.checkGoToJS("gale", "jude")
	r.checkJSToGo("jess", "gus")
	jess, err := e2ee.ParseAnnouncement(r.js["jess"])
	if err != nil {
		t.Fatal(err)
	}
	jude, err := e2ee.ParseAnnouncement(r.js["jude"])
	if err != nil {
		t.Fatal(err)
	}
	galeKeys, gusKeys := r.keys["gale"], r.keys["gus"]

	// The leak: the node reads gus's identity store and opens a copy of
	// it, as his client would; it hands the page the seed too.
	leakedFile, err := os.ReadFile(filepath.Join(dir, "gus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var leaked struct {
		Seed []byte `json:"identity_seed"`
	}
	if err := json.Unmarshal(leakedFile, &leaked); err != nil || len(leaked.Seed) != ed25519.SeedSize ||
		!bytes.Equal(ed25519.NewKeyFromSeed(leaked.Seed).Public().(ed25519.PublicKey), gusID.PublicKey()) {
		t.Fatalf("gus's identity store does not hold his identity key (%v)", err)
	}
	copyPath := filepath.Join(t.TempDir(), "stolen.json")
	if err := os.WriteFile(copyPath, leakedFile, 0o600); err != nil {
		t.Fatal(err)
	}
	stolenStore, err := e2ee.OpenFileStore(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	stolenGus, err := stolenStore.Identity()
	if err != nil {
		t.Fatal(err)
	}
	var imported string
	jsCall(t, ctx, &imported, "importIdentity", "stolen gus", hex.EncodeToString(leaked.Seed), hex.EncodeToString(gusID.PublicKey()))
	if imported != hex.EncodeToString(gusID.PublicKey()) || !bytes.Equal(stolenGus.PublicKey(), gusID.PublicKey()) {
		t.Fatalf("the stolen key is not gus's: %s in JS, %x in Go, his %x", imported, stolenGus.PublicKey(), gusID.PublicKey())
	}
	// Keys of the node's own, in Go and in the page; and all a thief can
	// make of a session key: one of its own.
	nodeID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	nodeSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	newJSIdentity(t, ctx, "node")

	// What the node recorded: gale's box to jude and jess's to gus. Each
	// opens with its recipient's session key, and with no other: not the
	// sender's, not another participant's, not the thief's (the stolen
	// identity's, in the page, or the node's).
	galeKID, jessKID := gale.KID(), r.jsState("jess").KID
	toJude := boxFor(t, r.keyMessagesOf("gale", galeKID), "jude")
	toGus := boxFor(t, r.keyMessagesOf("jess", jessKID), "gus")
	var opened jsBoxResult
	jsCall(t, ctx, &opened, "openKeyBox", "jude", hex.EncodeToString(galeKeys.id.PublicKey()), hex.EncodeToString(toJude))
	if opened.Body == nil || opened.Body.Recipient != "jude" || opened.Body.KID != strconv.FormatUint(galeKID, 10) ||
		opened.Body.BaseKey != hex.EncodeToString(r.goKeyOf("gale", "gale", galeKID).BaseKey) {
		t.Fatalf("JS jude cannot open gale's recorded box to her with her own session key: %+v", opened)
	}
	if body, err := e2ee.OpenKeyBox(gusKeys.sk, jess.Identity, toGus); err != nil || body.Recipient != "gus" || body.KID != jessKID ||
		!bytes.Equal(body.BaseKey, r.goKeyOf("gus", "jess", jessKID).BaseKey) {
		t.Fatalf("Go gus cannot open jess's recorded box to him with his own session key: %v", err)
	}
	for _, rec := range []struct {
		what      string
		box       []byte
		senderKey []byte
	}{{"gale's box to jude", toJude, galeKeys.id.PublicKey()}, {"jess's box to gus", toGus, jess.Identity}} {
		others := []string{"jess", "node", "stolen gus"}
		if rec.what == "jess's box to gus" {
			others = append(others, "jude")
		}
		for _, who := range others {
			var res jsBoxResult
			jsCall(t, ctx, &res, "openKeyBox", who, hex.EncodeToString(rec.senderKey), hex.EncodeToString(rec.box))
			if res.Error != "SealOpenError" {
				t.Errorf("%s, recorded, opened in JS with %s's session key: %+v; want SealOpenError", rec.what, who, res)
			}
		}
		goOthers := map[string]*e2ee.SessionKey{"gale's": galeKeys.sk, "the node's": nodeSK}
		if rec.what == "gale's box to jude" {
			goOthers["gus's"] = gusKeys.sk
		}
		for who, sk := range goOthers {
			if _, err := e2ee.OpenKeyBox(sk, rec.senderKey, rec.box); !errors.Is(err, e2ee.ErrSealOpen) {
				t.Errorf("%s, recorded, opened in Go with %s session key: %v; want ErrSealOpen", rec.what, who, err)
			}
		}
	}

	// The forgeries: gale's or jess's next KID, under a base key of the
	// node's, under a sequence number above any the senders used, so
	// that nothing but the signature is wrong.
	seq := uint64(time.Now().UnixMicro()) + 1e12
	forgedBase := randomBytes(t, 32)
	body := func(sender, recipient string, kid uint64, senderKey []byte, senderSession [16]byte, rcpt e2ee.Announcement, base []byte) *e2ee.KeyBody {
		seq++
		return &e2ee.KeyBody{
			Suite: e2ee.DefaultSuite, KID: kid, Seq: seq, Room: r.name,
			Sender: sender, SenderKey: senderKey, SenderSession: senderSession,
			Recipient: recipient, RecipientKey: rcpt.Identity, RecipientSession: rcpt.SessionID,
			BaseKey: base,
		}
	}
	gusAnn := e2ee.Announcement{Identity: gusID.PublicKey(), HPKE: gusKeys.sk.PublicKey(), SessionID: gusKeys.sk.ID()}
	toJudeBody := func(senderKey []byte, base []byte) *e2ee.KeyBody {
		return body("gale", "jude", galeKID+1, senderKey, galeKeys.sk.ID(), jude, base)
	}
	toGusBody := func(senderKey []byte, base []byte) *e2ee.KeyBody {
		return body("jess", "gus", jessKID+1, senderKey, jess.SessionID, gusAnn, base)
	}
	jsForged := func(signer string, kid uint64, to string, hpke []byte, b *e2ee.KeyBody, forge bool) string {
		var msg string
		jsCall(t, ctx, &msg, "keyMessage", signer, kid, to, hex.EncodeToString(hpke), toHexBody(b), forge)
		return msg
	}
	goSealed := func(signer *e2ee.Identity, kid uint64, to string, hpke []byte, b *e2ee.KeyBody) string {
		box, err := e2ee.SealKeyBox(signer, hpke, b)
		if err != nil {
			t.Fatal(err)
		}
		return keyMessageJSON(t, kid, to, box)
	}
	galeKey := galeKeys.id.PublicKey()
	for what, msg := range map[string]string{
		"signed with jude's stolen key, naming it":        jsForged("jude", galeKID+1, "jude", jude.HPKE, toJudeBody(jude.Identity, forgedBase), false),
		"signed with jude's stolen key, naming gale's":    jsForged("jude", galeKID+1, "jude", jude.HPKE, toJudeBody(galeKey, forgedBase), true),
		"signed with a key of the node's, naming gale's":  jsForged("node", galeKID+1, "jude", jude.HPKE, toJudeBody(galeKey, forgedBase), true),
		"signed with a key of the node's (Go), naming it": goSealed(nodeID, galeKID+1, "jude", jude.HPKE, toJudeBody(nodeID.PublicKey(), forgedBase)),
	} {
		r.jsRefuses("jude", "gale", "a box passed off as gale's "+what, msg, false)
	}
	for what, msg := range map[string]string{
		"signed with gus's key stolen from his store, naming it":    goSealed(stolenGus, jessKID+1, "gus", gusAnn.HPKE, toGusBody(gusID.PublicKey(), forgedBase)),
		"signed with gus's stolen key (in the page), naming jess's": jsForged("stolen gus", jessKID+1, "gus", gusAnn.HPKE, toGusBody(jess.Identity, forgedBase), true),
		"signed with a key of the node's, naming jess's":            jsForged("node", jessKID+1, "gus", gusAnn.HPKE, toGusBody(jess.Identity, forgedBase), true),
		"signed with a key of the node's (Go), naming it":           goSealed(nodeID, jessKID+1, "gus", gusAnn.HPKE, toGusBody(nodeID.PublicKey(), forgedBase)),
	} {
		r.goRefuses("gus", "jess", "a box passed off as jess's "+what, json.RawMessage(msg), false)
	}

	// Frames under the forged key find no key; the real ones decrypt.
	if res := r.jsDecrypt("jude", "gale", e2ee.CodecOpus, forgedFrame(t, galeKID+1, forgedBase)); res.Error != "no-key" {
		t.Errorf("JS jude, a frame as gale's under the forged key %#x: %+v; want no-key", galeKID+1, res)
	}
	if _, _, err := gus.DecryptFrame("jess", e2ee.CodecOpus, forgedFrame(t, jessKID+1, forgedBase)); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gus, a frame as jess's under the forged key %#x: %v; want ErrNoKey", jessKID+1, err)
	}
	r.checkGoToJS("gale", "jude")
	r.checkJSToGo("jess", "gus")

	// Control: the same bodies, signed by the real senders, are taken,
	// and frames under them decrypt.
	controlBase := randomBytes(t, 32)
	var res string
	jsCall(t, ctx, &res, "handle", "jude", "gale", goSealed(galeKeys.id, galeKID+1, "jude", jude.HPKE, toJudeBody(galeKey, controlBase)))
	if res != "ok" {
		t.Fatalf("JS jude, the body signed by gale: %s; want it taken (the test forged something else than the signature?)", res)
	}
	if res := r.jsDecrypt("jude", "gale", e2ee.CodecOpus, forgedFrame(t, galeKID+1, controlBase)); res.Error != "" {
		t.Errorf("JS jude, a frame under the key gale signed: %+v", res)
	}
	if err := gus.HandleMessage("jess", json.RawMessage(jsForged("jess", jessKID+1, "gus", gusAnn.HPKE, toGusBody(jess.Identity, controlBase), false))); err != nil {
		t.Fatalf("Go gus, the body signed by jess: %v; want it taken (the test forged something else than the signature?)", err)
	}
	if _, _, err := gus.DecryptFrame("jess", e2ee.CodecOpus, forgedFrame(t, jessKID+1, controlBase)); err != nil {
		t.Errorf("Go gus, a frame under the key jess signed: %v", err)
	}
	if st := r.jsState("jude"); st.Stats.BadKeyMessages != 4 || st.Stats.ReplayedKeyMessages != 0 {
		t.Errorf("JS jude: %+v; want the 4 forgeries refused, none as a replay", st.Stats)
	}
	if st := gus.Stats(); st.BadKeyMessages != 4 || st.ReplayedKeyMessages != 0 {
		t.Errorf("Go gus: %+v; want the 4 forgeries refused, none as a replay", st)
	}
}
