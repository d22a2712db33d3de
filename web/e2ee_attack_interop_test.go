package web_test

// The attacks on key management of media/e2ee/attack_test.go, in rooms
// where browsers (web/sdk/e2ee, in the page of TestBrowserGoInterop) and
// Go sessions share keys: each asserts what docs/E2EE.md promises of the
// JS code as of Go's; a failure is the attack getting through.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
		b, err := json.Marshal(map[string]any{"sotto_e2ee": 2, "type": "key", "kid": 1, "boxes": boxes})
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
