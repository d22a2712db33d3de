package web_test

// A hostile node that recorded a key message plays it back later
// (docs/E2EE.md, "Key messages", rules 4 and 5), to the call page: the
// page must refuse it, count it as a replay, install nothing and keep
// decrypting the live media. signaling/client's
// TestHostileNodeReplaysKeyMessage plays the same scenario with a Go
// receiver; this one's receiver is web/app.js and web/sdk in Chromium.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// replayCarried is a key-management message the node carried in a relay.
type replayCarried struct {
	toClient bool
	frame    []byte // the WebSocket message, as the node carried it
	from     string // the relay's sender, as the real node wrote it (to a client)
	version  int
	typ      string
	kid      uint64
}

// replayCarriedKeys returns the key-management relays (key and key_ack)
// the node carried, both ways, in order.
func replayCarriedKeys(node *hostilenode.Node) []replayCarried {
	var out []replayCarried
	for _, f := range node.Carried() {
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
		out = append(out, replayCarried{toClient: f.ToClient, frame: f.Data, from: r.From, version: km.Version, typ: km.Type, kid: km.KID})
	}
	return out
}

// replayHooksJS records, in window.__replay, what the page does that no
// API of the SDK reports one by one: every key it gives its E2EE worker
// or takes back (the setReceiveKey, removeReceiveKey and
// removeParticipant operations the page posts to the worker: its own key
// log, the base keys left out), every refusal key management logs
// (console.warn "e2ee: key message refused"), and every 'relay' and
// 'error' event the call dispatches to the application. Evaluated once
// the page is in the call, before anyone else joins: nothing key-related
// has happened yet.
const replayHooksJS = `(() => {
	if (window.__replay) return false;
	const r = window.__replay = {posted: [], refusals: [], relays: [], errors: []};
	const post = Worker.prototype.postMessage;
	Worker.prototype.postMessage = function (m, ...rest) {
		if (m && (m.op === "setReceiveKey" || m.op === "removeReceiveKey" || m.op === "removeParticipant")) {
			r.posted.push({op: m.op, from: String(m.from), kid: typeof m.kid === "number" ? m.kid : 0});
		}
		return post.call(this, m, ...rest);
	};
	const warn = console.warn;
	console.warn = function (...a) {
		const text = a.map(String).join(" ");
		if (text.includes("e2ee: key message refused")) r.refusals.push(text);
		return warn.apply(this, a);
	};
	const call = window.sotto.call;
	call.addEventListener("relay", (e) => r.relays.push({from: e.detail.from, data: JSON.stringify(e.detail.data)}));
	call.addEventListener("error", (e) => r.errors.push(String(e.detail && e.detail.error)));
	return !!call.e2ee;
})()`

// replayStateJS is what the page's state says of bob (his audio track's
// sid given): its E2EE's counters (the SDK's E2EE.stats), the frame
// counters of his track (E2EE.trackStats), his E2EE state, what the hooks
// recorded, and the page's connection history.
func replayStateJS(bobTrack string) string {
	return fmt.Sprintf(`(() => {
		const c = window.sotto.call;
		const r = window.__replay;
		return {stats: c.e2ee.stats(), track: c.e2ee.trackStats(%q), bob: c.e2eeState("bob"),
			posted: r.posted, refusals: r.refusals, relays: r.relays, errors: r.errors,
			history: window.sotto.state.connectionHistory};
	})()`, bobTrack)
}

// replayState is replayStateJS's value.
type replayState struct {
	Stats struct {
		Epoch, KeysSent, KeysReceived, BadKeyMessages, ReplayedKeyMessages, AcksReceived uint64
	}
	Track struct {
		Decrypted, Rejected, NoKey, Replayed uint64
	}
	Bob    string
	Posted []struct {
		Op, From string
		KID      uint64
	}
	Refusals []string
	Relays   []struct{ From, Data string }
	Errors   []string
	History  []string
}

// count is how many times the page posted op for from's kid.
func (s replayState) count(op, from string, kid uint64) int {
	n := 0
	for _, p := range s.Posted {
		if p.Op == op && p.From == from && p.KID == kid {
			n++
		}
	}
	return n
}

// installed lists the KIDs of from's keys the page installed, in order.
func (s replayState) installed(from string) []uint64 {
	var kids []uint64
	for _, p := range s.Posted {
		if p.Op == "setReceiveKey" && p.From == from {
			kids = append(kids, p.KID)
		}
	}
	return kids
}

// replayWaitEpoch waits until c switches from epoch to a new sending key.
func replayWaitEpoch(t *testing.T, c *client.Client, epoch uint32, what string) {
	t.Helper()
	deadline := time.NewTimer(browserTimeout)
	defer deadline.Stop()
	for {
		changed := c.E2EEChanged()
		if c.E2EEStats().Epoch != epoch {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: not within %v (stats %+v)", what, browserTimeout, c.E2EEStats())
		}
	}
}

// TestBrowserRefusesKeyReplayedByNode is the audit's scenario end to end
// with the call page as the receiver: alice, the page, behind a hostile
// node, and bob, a Go client publishing audio, exchange keys; carol, a Go
// client, joins and leaves, so bob ratchets and then draws a fresh key;
// once alice decrypts under the fresh key and has retired the two
// before, the node delivers to her, in place of a relay bob sends her,
// the relay it recorded with bob's first key message. The page refuses it
// as a replay and counts it (E2EE.stats), never gives the retired key to
// its worker again, acknowledges nothing, tells the application nothing,
// logs the refusal once, and bob's live audio keeps decrypting with no
// frame dropped.
func TestBrowserRefusesKeyReplayedByNode(t *testing.T) {
	_, ogg := makeFixtures(t)
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "replay"

	// Only alice connects through the node: every message it carries is
	// to or from her.
	alice := openHostileTab(t, newBrowser(t), node, room, "alice")
	var hooked bool
	alice.eval(t, replayHooksJS, &hooked)
	if !hooked {
		t.Fatal("the page joined without end-to-end encryption (or was hooked twice)")
	}
	bob, bobTrack := hostileGoPeer(t, srv, room, "bob", true, ogg)
	alice.admit(t, "bob")
	stateJS := replayStateJS(bobTrack)
	describe := fmt.Sprintf(`(async () => ({page: %s, call: await %s}))()`, stateJS, hostileDescribeJS)
	read := func() replayState {
		t.Helper()
		var s replayState
		alice.eval(t, stateJS, &s)
		return s
	}
	alice.waitFor(t, "decrypts bob's audio", `(`+stateJS+`).track.decrypted >= 25`, describe)

	bobKeys := func() []replayCarried {
		var out []replayCarried
		for _, m := range replayCarriedKeys(node) {
			if m.toClient && m.from == "bob" && m.typ == "key" {
				out = append(out, m)
			}
		}
		return out
	}
	keys := bobKeys()
	if len(keys) == 0 {
		t.Fatal("alice decrypts bob, and the node carried her no key message of his")
	}
	first := keys[0]
	if first.version != 2 {
		t.Fatalf("bob's first key message is of version %d, want 2", first.version)
	}
	if s := read(); s.count("setReceiveKey", "bob", first.kid) != 1 {
		t.Fatalf("alice installed bob's first key (KID %#x) %d times, want once: %+v", first.kid, s.count("setReceiveKey", "bob", first.kid), s.Posted)
	}

	// carol joins: bob ratchets, sends the ratchet to everyone and
	// switches to it once acknowledged (or after his ack timeout).
	epoch := bob.E2EEStats().Epoch
	carol, _ := hostileGoPeer(t, srv, room, "carol", false, "")
	replayWaitEpoch(t, bob, epoch, "bob switches to the ratchet after carol joined")

	// carol leaves: bob draws a fresh key for alice alone and switches to
	// it; alice installs it (three keys of bob's now), decrypts under it,
	// and, the grace period over, retires his first key and the ratchet.
	epoch = bob.E2EEStats().Epoch
	lctx, lcancel := context.WithTimeout(context.Background(), browserTimeout)
	defer lcancel()
	if err := carol.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	replayWaitEpoch(t, bob, epoch, "bob switches to a fresh key after carol left")
	alice.waitFor(t, "installs bob's first key, his ratchet and his fresh key",
		`(`+stateJS+`).posted.filter(p => p.op === "setReceiveKey" && p.from === "bob").length >= 3`, describe)
	keys = bobKeys()
	var kids []uint64
	for _, k := range keys {
		kids = append(kids, k.kid)
	}
	installed := read().installed("bob")
	if len(keys) != 3 || !slices.Equal(installed, kids) || kids[0] != first.kid {
		t.Fatalf("the node carried alice bob's keys %#x and she installed %#x; want his first (%#x), the ratchet for carol and a fresh one, each once",
			kids, installed, first.kid)
	}
	liveKID := kids[2]
	alice.waitFor(t, "retires bob's first key and his ratchet (decrypting under his fresh key)",
		fmt.Sprintf(`(() => { const p = (%s).posted; const gone = (k) => p.some(x => x.op === "removeReceiveKey" && x.from === "bob" && x.kid === k);
			return gone(%d) && gone(%d); })()`, stateJS, kids[0], kids[1]),
		describe)

	// What the node recorded: the relay that carried bob's first key to
	// alice, as the real node sent it.
	recorded := bytes.Clone(first.frame)
	acksOf := func(kid uint64) int {
		n := 0
		for _, m := range replayCarriedKeys(node) {
			if !m.toClient && m.typ == "key_ack" && m.kid == kid {
				n++
			}
		}
		return n
	}
	if n := acksOf(first.kid); n != 1 {
		t.Fatalf("alice acknowledged bob's first key %d times before the replay, want once", n)
	}

	// Baselines, at a moment bob's key is settled.
	before := read()
	bobBefore := bob.E2EEStats()
	if before.Bob != "encrypted" || before.count("removeReceiveKey", "bob", liveKID) != 0 {
		t.Fatalf("before the replay: bob is %q at alice, his fresh key removed %d times", before.Bob, before.count("removeReceiveKey", "bob", liveKID))
	}

	// The replay: bob sends alice a relay of his own; the node delivers
	// the recorded key message in its place.
	const trigger = `{"app":"replay-browser-test: swapped by the node"}`
	var mu sync.Mutex
	swapped := 0
	node.SetRewrite(func(b []byte) []byte {
		var r wire.Relay
		if json.Unmarshal(b, &r) != nil || r.Type != wire.TypeRelay || r.From != "bob" || string(r.Data) != trigger {
			return b
		}
		mu.Lock()
		defer mu.Unlock()
		swapped++
		return recorded
	})
	rctx, rcancel := context.WithTimeout(context.Background(), browserTimeout)
	defer rcancel()
	if err := bob.SendRelay(rctx, []string{"alice"}, json.RawMessage(trigger)); err != nil {
		t.Fatal(err)
	}
	// Wait for the page to handle it: refused (the counters), or, were it
	// accepted, installed (the worker given the key again); the checks
	// below tell which.
	alice.waitFor(t, "handles the replayed key message",
		fmt.Sprintf(`(() => { const s = %s; return s.stats.badKeyMessages > %d || s.stats.keysReceived > %d ||
			s.posted.filter(p => p.op === "setReceiveKey" && p.from === "bob" && p.kid === %d).length > 1; })()`,
			stateJS, before.Stats.BadKeyMessages, before.Stats.KeysReceived, first.kid),
		describe)
	node.SetRewrite(nil)
	mu.Lock()
	n := swapped
	mu.Unlock()
	if n != 1 {
		t.Fatalf("the node swapped %d relays for the recorded one, want 1", n)
	}

	// Refused, counted once as a replay, and no key installed: checked as
	// soon as the page handled it, and again at the end.
	checkKeys := func(when string) replayState {
		t.Helper()
		after := read()
		if after.Stats.ReplayedKeyMessages != before.Stats.ReplayedKeyMessages+1 || after.Stats.BadKeyMessages != before.Stats.BadKeyMessages+1 {
			t.Fatalf("%s: alice's E2EE stats went from %+v to %+v; want one more replayed (and bad) key message", when, before.Stats, after.Stats)
		}
		if after.Stats.KeysReceived != before.Stats.KeysReceived {
			t.Fatalf("%s: alice's keysReceived went from %d to %d on a replay", when, before.Stats.KeysReceived, after.Stats.KeysReceived)
		}
		if n := after.count("setReceiveKey", "bob", first.kid); n != 1 {
			t.Fatalf("%s: alice gave her worker bob's retired first key (KID %#x) %d times, want once: the replay installed it again", when, first.kid, n)
		}
		if len(after.Posted) != len(before.Posted) {
			t.Fatalf("%s: alice gave or took keys from her worker across the replay: %+v", when, after.Posted[len(before.Posted):])
		}
		return after
	}
	checkKeys("once the replay was handled")

	// Anything the page sent because of the replay went to the node
	// before this relay, which the server acknowledges once the node
	// carried it.
	var sent bool
	alice.eval(t, `window.sotto.call.sendRelay(["bob"], {app: "replay-browser-test: after the replay"}).then(() => true)`, &sent)
	if !sent {
		t.Fatal("alice's relay to bob was not acknowledged")
	}
	if n := acksOf(first.kid); n != 1 {
		t.Fatalf("alice acknowledged bob's first key %d times after the replay, want once (no ack for a replay)", n)
	}

	// bob's live audio keeps decrypting: a second more of it (50 frames)
	// decrypted, none refused or missing its key.
	alice.waitFor(t, "keeps decrypting bob's audio after the replay",
		fmt.Sprintf(`(%s).track.decrypted >= %d`, stateJS, before.Track.Decrypted+50), describe)
	after := checkKeys("after bob's live audio")
	if after.Track.Rejected != before.Track.Rejected || after.Track.NoKey != before.Track.NoKey || after.Bob != "encrypted" {
		t.Fatalf("bob's audio at alice went from %+v (%s) to %+v (%s); want every frame since the replay decrypted",
			before.Track, before.Bob, after.Track, after.Bob)
	}
	if got := bob.E2EEStats(); got.Epoch != bobBefore.Epoch || got.KeysSent != bobBefore.KeysSent {
		t.Fatalf("bob rekeyed during the replay (%+v, then %+v); the test needs his key settled", bobBefore, got)
	}
	if got := bobKeys(); len(got) != len(keys) {
		t.Fatalf("the node carried alice %d key messages of bob's during the replay; the test needs his key settled", len(got)-len(keys))
	}

	// Nothing reached the application: the key message is not a relay of
	// the application's, and a refusal is no error. The log says it, once.
	if len(after.Relays) != 0 || len(after.Errors) != 0 {
		t.Fatalf("alice's application got relays %+v and errors %q", after.Relays, after.Errors)
	}
	if slices.Contains(after.History, "reconnecting") || len(after.History) == 0 || after.History[len(after.History)-1] != "connected" {
		t.Fatalf("alice's connection went through %q", after.History)
	}
	refused := 0
	for _, line := range after.Refusals {
		if strings.Contains(line, "replayed:") && strings.Contains(line, `"bob"`) {
			refused++
		}
	}
	if refused != 1 || len(after.Refusals) != 1 {
		t.Fatalf("alice logged the refusals %q; want one, of bob's replayed key message", after.Refusals)
	}
	t.Logf("bob's keys %#x; the node replayed KID %#x to alice: stats %+v -> %+v; bob's audio at alice %+v -> %+v; logged %q",
		kids, first.kid, before.Stats, after.Stats, before.Track, after.Track, after.Refusals)
}
