package web_test

// Known people in the browser (docs/E2EE.md, "Known people"): the page
// keeps its identity in IndexedDB, remembers the identity key of everyone
// it meets, and when a node shows another key under a known name it warns
// and holds that person out of the call's keys until the user chooses, as
// the Go SDK does (signaling/client/known_test.go).

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// knownGoPeer joins room at base as a Go SDK client, E2EE on, with the
// identity store st (a fresh MemoryStore when nil), publishing nothing.
// Key changes its client reports go to kc when it is not nil.
func knownGoPeer(t *testing.T, srv *webServer, base, room, identity string, st e2ee.IdentityStore, kc chan<- client.KeyChange) *client.Client {
	t.Helper()
	return knownGoPeerWith(t, srv, base, room, identity, st, kc, nil)
}

// knownGoPeerWith is knownGoPeer with set (when not nil) changing the
// client's options before it connects.
func knownGoPeerWith(t *testing.T, srv *webServer, base, room, identity string, st e2ee.IdentityStore, kc chan<- client.KeyChange, set func(*client.Options)) *client.Client {
	t.Helper()
	if st == nil {
		st = e2ee.NewMemoryStore()
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	opts := client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token(room, identity, true, true),
		SettingEngine: &se,
		Logger:        testLogger(),
	}
	opts.E2EE.Store = st
	if kc != nil {
		opts.Handlers.SecurityKeyChanged = func(k client.KeyChange) { kc <- k }
	}
	if set != nil {
		set(&opts)
	}
	c, err := client.Connect(ctx, base, opts)
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// openKnownTab opens the call page at base in test mode, joining room as
// name with the fake camera and microphone (small, slow video), so that
// it publishes and sends its key to the others, and waits until it is in
// the call.
func openKnownTab(t *testing.T, b *browser, base, room, name string) (*callTab, string) {
	t.Helper()
	ctx := b.tab(t, name)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: "window.sottoTestMode = true;"}); err != nil {
		t.Fatalf("%s: test mode: %v", name, err)
	}
	q := url.Values{"room": {room}, "name": {name}, "test-video": {callVideoSize}, "test-fps": {callVideoFPS}}
	link := base + "/?" + q.Encode()
	tab := &callTab{name: name, ctx: ctx}
	tab.load(t, link)
	return tab, link
}

// load opens link in the tab (a new page load: a reload, or the next
// call) and waits until the page is in the call.
func (c *callTab) load(t *testing.T, link string) {
	t.Helper()
	if err := chromedp.Do(c.ctx, chromedp.Navigate(link)); err != nil {
		t.Fatalf("%s: open %s: %v", c.name, link, err)
	}
	c.waitInCall(t)
}

// knownDescribeJS is what a failed wait prints.
const knownDescribeJS = `(() => ({
	state: window.sotto && window.sotto.state,
	covers: [...document.querySelectorAll("#safety-covers li")].map(e => ({...e.dataset, text: e.textContent})),
	safety: document.getElementById("safety-number").textContent,
	dialog: {open: document.getElementById("key-changed").open, title: document.getElementById("key-changed-title").textContent},
	pending: window.sotto && window.sotto.call ? window.sotto.call.pendingKeyChanges().map(k => k.identity) : null,
}))()`

// pageIdentityJS is the page's identity key, in hex.
const pageIdentityJS = `Array.from(window.sotto.call.e2ee.identity.publicKey, b => b.toString(16).padStart(2, "0")).join("")`

// waitGo waits until cond holds, checking it every 100 ms; on timeout it
// fails with what describe says.
func waitGo(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; %s", what, browserTimeout, describe())
		}
		<-tick.C
	}
}

// withRosterAlerts is for knownGoPeerWith: the client's roster alerts
// (Handlers.Admission.RosterMismatch) go to alerts; one that finds it
// full is dropped (the handler must not block).
func withRosterAlerts(alerts chan<- *client.RosterMismatchError) func(*client.Options) {
	return func(o *client.Options) {
		o.Handlers.Admission.RosterMismatch = func(e *client.RosterMismatchError) {
			select {
			case alerts <- e:
			default:
			}
		}
	}
}

// admitsNobody is for knownGoPeerWith: the client admits nobody on its
// own (no admission policy); another member admits whoever comes.
func admitsNobody(o *client.Options) { o.E2EE.Admission = nil }

// waitGoMember waits until c, the Go client who, counts identity as a
// member.
func waitGoMember(t *testing.T, who string, c *client.Client, identity string) {
	t.Helper()
	waitGo(t, fmt.Sprintf("%s counts %s as a member", who, identity), func() bool {
		return slices.ContainsFunc(c.Admissions(), func(p e2ee.ParticipantStatus) bool {
			return p.Identity == identity && p.State == e2ee.StateMember
		})
	}, func() string { return fmt.Sprintf("%s's admissions %+v", who, c.Admissions()) })
}

// waitGoRosterAlert waits until c, the Go client who, raises a roster
// alert saying that member's view lacks name (name only in c's own view)
// or did not arrive, and returns it.
func waitGoRosterAlert(t *testing.T, who string, c *client.Client, alerts <-chan *client.RosterMismatchError, member, name string) *client.RosterMismatchError {
	t.Helper()
	lacks := func(m e2ee.RosterMismatch) bool {
		return m.Member == member && (m.Missing || slices.ContainsFunc(m.OnlyMine, func(x e2ee.RosterEntry) bool { return x.Name == name }))
	}
	timeout := time.After(browserTimeout)
	var seen []string
	for {
		select {
		case e := <-alerts:
			if slices.ContainsFunc(e.Mismatches, lacks) {
				return e
			}
			seen = append(seen, e.Error())
		case <-timeout:
			t.Fatalf("%s raised no roster alert saying %s's view lacks %s within %v: alerts %q; status %+v; admissions %+v",
				who, member, name, browserTimeout, seen, c.RosterStatus(), c.Admissions())
			return nil
		}
	}
}

// coveredByGo is what a Go client's safety number covers: identity → key (hex).
func coveredByGo(c *client.Client) map[string]string {
	out := map[string]string{}
	for _, cv := range c.SafetyNumberCovers() {
		out[cv.Identity] = hex.EncodeToString(cv.Key)
	}
	return out
}

// A page reloaded in the same browser profile is the same person: the
// identity key kept in IndexedDB (its private half a non-extractable
// CryptoKey) comes back, so the safety number of the same people is the
// same, the verification code with bob is the same, and bob's Go client,
// which remembers the page's key, sees no change.
func TestBrowserKeepsIdentityAcrossReload(t *testing.T) {
	srv := startWebServer(t, nil)
	const room = "reload"
	kc := make(chan client.KeyChange, 8)
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", nil, kc)
	alice, link := openKnownTab(t, newBrowser(t), srv.URL, room, "alice")

	type view struct {
		Key, Number, Code string
	}
	read := func() view {
		number := alice.waitSafetyNumber(t, []string{"alice", "bob"})
		alice.waitFor(t, "the verification code with bob is shown",
			`(() => { const e = document.querySelector('#safety-covers li[data-covered="bob"] .verification-code'); return !!e && `+safetyNumberJS+`.test(e.textContent); })()`,
			knownDescribeJS)
		var v view
		alice.eval(t, `({key: `+pageIdentityJS+`, code: window.sotto.state.verificationCodes.bob})`, &v)
		v.Number = number
		waitGo(t, "bob covers alice's key and shows the page's number", func() bool {
			return coveredByGo(bob)["alice"] == v.Key && bob.SafetyNumber() == v.Number
		}, func() string {
			return fmt.Sprintf("bob covers %v, shows %q; the page: %+v", coveredByGo(bob), bob.SafetyNumber(), v)
		})
		return v
	}
	before := read()
	if len(before.Key) != 64 {
		t.Fatalf("the page's identity key is %q", before.Key)
	}

	var kept struct {
		Extractable bool
		Type, Alg   string
		Pub         string
	}
	alice.eval(t, `(async () => {
		const db = await new Promise((res, rej) => { const r = indexedDB.open("sotto-e2ee"); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
		const rec = await new Promise((res, rej) => { const q = db.transaction("identity").objectStore("identity").get("self"); q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
		db.close();
		return {extractable: rec.privateKey.extractable, type: rec.privateKey.type, alg: rec.privateKey.algorithm.name,
			pub: Array.from(rec.publicKey, b => b.toString(16).padStart(2, "0")).join("")};
	})()`, &kept)
	if kept.Extractable || kept.Type != "private" || kept.Alg != "Ed25519" || kept.Pub != before.Key {
		t.Fatalf("IndexedDB keeps %+v; want a non-extractable Ed25519 private key with the page's public key %s", kept, before.Key)
	}

	alice.load(t, link)
	after := read()
	if after != before {
		t.Fatalf("after a reload the page is someone else: before %+v, after %+v", before, after)
	}
	if code, err := bob.VerificationCode("alice"); err != nil || code != after.Code {
		t.Fatalf("bob's verification code with alice is %q (%v); the page shows %q", code, err, after.Code)
	}
	if n := len(kc); n != 0 || len(bob.PendingKeyChanges()) != 0 {
		t.Fatalf("bob's client saw alice's key change %d times: %+v", n, bob.PendingKeyChanges())
	}
	t.Logf("alice's identity %s… and the safety number %s survive a reload", after.Key[:16], after.Number)
}

// The page's verification code with bob, a Go client, is the one bob's
// client computes with alice: the same two keys, the same code.
func TestBrowserVerificationCodeMatchesGo(t *testing.T) {
	srv := startWebServer(t, nil)
	const room = "codes"
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", nil, nil)
	alice, _ := openKnownTab(t, newBrowser(t), srv.URL, room, "alice")
	alice.waitFor(t, "the page shows its verification code with bob",
		`(() => { const e = document.querySelector('#safety-covers li[data-covered="bob"] .verification-code');
			return !!e && `+safetyNumberJS+`.test(e.textContent) && window.sotto.state.verificationCodes.bob === e.textContent; })()`,
		knownDescribeJS)
	var got struct{ Code, Key string }
	alice.eval(t, `({code: window.sotto.state.verificationCodes.bob, key: `+pageIdentityJS+`})`, &got)
	var code string
	waitGo(t, "bob's client has met alice", func() bool {
		var err error
		code, err = bob.VerificationCode("alice")
		return err == nil
	}, func() string { return fmt.Sprintf("bob covers %v", coveredByGo(bob)) })
	if code != got.Code {
		t.Fatalf("verification codes differ: the page %q, bob's Go client %q", got.Code, code)
	}
	if k := coveredByGo(bob)["alice"]; k != got.Key {
		t.Fatalf("bob holds %s as alice's key; the page's is %s", k, got.Key)
	}
	t.Logf("alice's page and bob's Go client show the same verification code: %s", code)
}

// pageKeyBoxes decodes the key messages the page sent through node since
// frame from: the boxes of each, by recipient.
func pageKeyBoxes(t *testing.T, node *hostilenode.Node, from int) []map[string]string {
	t.Helper()
	var out []map[string]string
	frames := node.Carried()
	for _, f := range frames[min(from, len(frames)):] {
		if f.ToClient {
			continue
		}
		var r wire.Relay
		if json.Unmarshal(f.Data, &r) != nil || r.Type != wire.TypeRelay {
			continue
		}
		var km struct {
			Type  string            `json:"type"`
			Boxes map[string]string `json:"boxes"`
		}
		if json.Unmarshal(r.Data, &km) == nil && km.Type == "key" {
			out = append(out, km.Boxes)
		}
	}
	return out
}

// boxesTo counts the key messages of msgs with a box for recipient.
func boxesTo(msgs []map[string]string, recipient string) int {
	n := 0
	for _, m := range msgs {
		if m[recipient] != "" {
			n++
		}
	}
	return n
}

// The page met bob (a Go client) in an earlier call and marked him
// verified. In the next call the node shows another key as bob's. The
// page warns, blocking ("bob's security key changed", accept or leave),
// seals no key to "bob", and its safety number and the list under it
// leave bob out. Members admit members (docs/E2EE.md, "Admission and
// rosters"), so the swapped "bob" is no member for the page either: his
// own signed views and the admissions name his real key, not the one the
// node shows it. carol admits the page (bob admits nobody: his admission
// would not count for it either). The page's view of the call lacks bob,
// carol's (the node did not touch her) lists him: the page sends no media
// key to anyone
// (before issue 12 its key went to carol here), and the roster alert
// rises, blocking, on the page (carol's view lists bob) and on carol's
// client (alice's view lacks bob). Accepting the change ends the warning
// and makes the new key the one the browser knows as bob's, unverified,
// but admits nobody (before issue 12 the page then sealed its next key
// to the node's key): bob stays a waiting card, no tile, out of the
// safety number, and nothing is ever sealed to the key the node showed.
// When the node changes his key once more, the page warns again, of a
// change from the accepted key (not verified), and "Leave the call"
// leaves, nothing sealed to that key either.
func TestBrowserWarnsWhenKnownPersonsKeyChanges(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "known"
	bobStore := e2ee.NewMemoryStore()
	b := newBrowser(t)

	// The first call: alice (the page) and bob meet; she compares codes
	// and marks him verified.
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice, link := openKnownTab(t, b, node.URL, room, "alice")
	alice.waitFor(t, "bob is covered, with a verification code",
		`(() => { const c = window.sotto.state.safetyCovers.find(c => c.identity === "bob"); return !!c && !c.verified &&
			`+safetyNumberJS+`.test(window.sotto.state.verificationCodes.bob || ""); })()`,
		knownDescribeJS)
	var pageCode string
	alice.eval(t, `window.sotto.state.verificationCodes.bob`, &pageCode)
	var bobCode string
	waitGo(t, "bob's client has met alice", func() bool {
		var err error
		bobCode, err = bob.VerificationCode("alice")
		return err == nil
	}, func() string { return fmt.Sprintf("bob covers %v", coveredByGo(bob)) })
	if bobCode != pageCode {
		t.Fatalf("verification codes differ: the page %q, bob %q", pageCode, bobCode)
	}
	alice.eval(t, `document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle').click(), true`, nil)
	alice.waitFor(t, "bob is shown verified",
		`(() => { const li = document.querySelector('#safety-covers li[data-covered="bob"]');
			return !!li && li.dataset.verified === "true" && /✓/.test(li.querySelector(".verified-mark")?.textContent ?? "") &&
				li.querySelector(".verify-toggle").getAttribute("aria-pressed") === "true" &&
				window.sotto.state.safetyCovers.some(c => c.identity === "bob" && c.verified); })()`,
		knownDescribeJS)
	bobKey := coveredByGo(bob)["bob"]
	alice.eval(t, `document.getElementById("leave").click(), true`, nil)
	alice.waitFor(t, "alice left", `window.sotto.state.phase === "ended"`, knownDescribeJS)
	_ = bob.Close()

	// The second call, through a node that shows mallory's key as bob's.
	mallory, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	malloryKey, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	swapped := e2ee.Announce(mallory, malloryKey)
	node.SetRewrite(hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["public_key"] = swapped
				changed = true
			}
		}
		return changed
	}))
	from := len(node.Carried())
	// carol comes first and admits bob, and then alice; bob admits nobody
	// himself. His admission of alice, signed by his real key, would not
	// count for the page: it would wait, with no alert of its own, and
	// carol, taking bob's, would not admit it herself.
	carolAlerts := make(chan *client.RosterMismatchError, 16)
	carol := knownGoPeerWith(t, srv, srv.URL, room, "carol", nil, nil, withRosterAlerts(carolAlerts))
	knownGoPeerWith(t, srv, srv.URL, room, "bob", bobStore, nil, admitsNobody)
	waitGoMember(t, "carol", carol, "bob")
	alice.load(t, link)

	alice.waitFor(t, "the page warns that bob's key changed, blocking",
		`(() => { const d = document.getElementById("key-changed"); const k = window.sotto.state.keyChanges;
			return d.open && d.dataset.person === "bob" && document.getElementById("key-changed-title").textContent === "bob's security key changed" &&
				k.length === 1 && k[0].identity === "bob" && k[0].wasVerified === true &&
				!document.getElementById("accept-key-change").hidden && !document.getElementById("leave-after-key-change").hidden; })()`,
		knownDescribeJS)
	saveScreenshot(t, alice.ctx, "key-changed-warning.png")
	var change struct {
		Identity, Previous, Current string
		WasVerified                 bool
	}
	alice.eval(t, `(() => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		const k = window.sotto.call.pendingKeyChanges()[0]; return {identity: k.identity, previous: h(k.previous), current: h(k.current), wasVerified: k.wasVerified}; })()`, &change)
	if change.Identity != "bob" || change.Previous != bobKey || change.Current != hex.EncodeToString(mallory.PublicKey()) || !change.WasVerified {
		t.Fatalf("the change reported: %+v; bob's key %s, mallory's %x", change, bobKey, mallory.PublicKey())
	}

	// bob's views are signed with his real key, not the one the node
	// shows the page: "bob" is no member in its eyes, only a waiting
	// card under the node's key. Its view lacks him, carol's lists him:
	// the roster alert rises on the page and on carol's client, and the
	// page's keys are held (no key message at all, to carol either).
	bobWaitsJS := fmt.Sprintf(`(() => { const a = window.sotto.state.admissions.bob;
		const sdk = window.sotto.call.admissions().find(x => x.identity === "bob");
		const card = document.querySelector('[data-candidate="bob"]');
		return !!a && a.state === "waiting" && a.key === %q && !!sdk && sdk.state === "waiting" &&
			!!card && card.dataset.admissionState === "waiting" && !document.querySelector('[data-identity="bob"]'); })()`,
		change.Current)
	alice.waitFor(t, "bob, under the node's key, is a waiting card, no tile", bobWaitsJS, admissionDescribeJS)
	alice.waitRosterAlert(t, "carol", "bob", true, "carol's view lists bob, whom yours does not.")
	waitGoRosterAlert(t, "carol", carol, carolAlerts, "alice", "bob")
	alice.checkKeysHeld(t)
	alice.waitSafetyNumber(t, []string{"alice", "carol"})
	var listed []string
	alice.eval(t, `[...document.querySelectorAll("#safety-covers li")].map(e => e.dataset.covered)`, &listed)
	if !slices.Equal(listed, []string{"alice", "carol"}) {
		t.Fatalf("the safety panel lists %q; want alice and carol (not bob, held out)", listed)
	}
	if n := boxesTo(pageKeyBoxes(t, node, from), "bob"); n != 0 {
		t.Fatalf("the page sealed %d keys to bob's changed key while the warning was up", n)
	}
	if msgs := pageKeyBoxes(t, node, from); len(msgs) != 0 {
		t.Fatalf("the page sent key messages while its view and carol's differed: %v", msgs)
	}

	// Accepting ends the warning and takes the key, unverified, as the one
	// the browser knows as bob's; it admits nobody. No member admitted
	// that key and no view signed by it came: bob still waits.
	alice.eval(t, `document.getElementById("accept-key-change").click(), true`, nil)
	afterAcceptJS := `(() => { const s = window.sotto.state;
		return !document.getElementById("key-changed").open && s.keyChanges.length === 0 && window.sotto.call.pendingKeyChanges().length === 0 &&
			!document.querySelector('#safety-covers li[data-covered="bob"]') && !s.safetyCovers.some(c => c.identity === "bob") &&
			document.getElementById("safety-number").dataset.participants === "alice,carol" && ` + bobWaitsJS + `; })()`
	alice.waitFor(t, "after accepting, the warning is gone, and bob still waits: a card, no tile, not covered", afterAcceptJS, knownDescribeJS)
	saveScreenshot(t, alice.ctx, "safety-panel-after-accepting.png")
	var known struct {
		Key      string
		Verified bool
	}
	alice.eval(t, `(async () => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		const c = window.sotto.call; await c.e2ee.runTrust(() => {});
		const k = await c.e2ee.store.known("bob"); return {key: h(k.key), verified: k.verified}; })()`, &known)
	if known.Key != change.Current || known.Verified {
		t.Fatalf("after accepting, the browser knows bob as %+v; want the key shown (%s), unverified", known, change.Current)
	}
	// Some time on, the same: accepting made no member of the node's key.
	time.Sleep(2 * time.Second)
	var still bool
	alice.eval(t, afterAcceptJS, &still)
	if !still {
		var st any
		alice.eval(t, admissionDescribeJS, &st)
		t.Fatalf("after accepting, the page no longer shows bob waiting and held out: %v", st)
	}
	alice.checkKeysHeld(t)
	if n := boxesTo(pageKeyBoxes(t, node, from), "bob"); n != 0 {
		t.Fatalf("the page sealed %d keys to the key the node showed as bob's", n)
	}

	// A third call, the node showing yet another key as bob's: the page
	// warns again (the accepted key is the known one now, unverified), and
	// the user leaves instead, before any key went to that one.
	alice.leaveFromAlert(t)
	eve, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	eveKey, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	swapped = e2ee.Announce(eve, eveKey)
	from = len(node.Carried())
	alice.load(t, link)
	alice.waitFor(t, "the page warns that bob's key changed again, not verified this time",
		`(() => { const k = window.sotto.state.keyChanges; return document.getElementById("key-changed").open &&
			k.length === 1 && k[0].identity === "bob" && k[0].wasVerified === false; })()`,
		knownDescribeJS)
	alice.eval(t, `document.getElementById("leave-after-key-change").click(), true`, nil)
	alice.waitFor(t, "the page left the call",
		`window.sotto.state.phase === "ended" && !document.getElementById("key-changed").open && window.sotto.state.keyChanges.length === 0 &&
			/left/.test(document.getElementById("ended-title").textContent)`,
		knownDescribeJS)
	if n := boxesTo(pageKeyBoxes(t, node, from), "bob"); n != 0 {
		t.Fatalf("the page sealed %d keys to bob's third key, which the user refused by leaving", n)
	}
	t.Logf("the page held bob's changed key out; carol's and its own roster alerts rose; accepting admitted nobody; a later change, refused, sent him nothing")
}

// The node shows the page (alice, who knows bob's key and marked it
// verified) a key K2 as bob's; the page warns. Before alice's click on
// "Accept" is handled, the node shows bob again (he reconnects) with a
// third key K3. Her click accepts K2 only, the key the warning showed: as
// K2 is no longer what waits, nothing is accepted (NoKeyChangeError), the
// browser keeps bob's old key, verified, seals nothing to "bob", and the
// page shows the new warning, for K3, which her next click accepts. As
// signaling/client's TestKeySwappedAgainAfterTheWarning.
func TestBrowserKeySwappedAgainAfterTheWarning(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "swapped-again"
	bobStore := e2ee.NewMemoryStore()
	b := newBrowser(t)

	// The first call: alice (the page) meets bob and marks him verified.
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice, link := openKnownTab(t, b, node.URL, room, "alice")
	alice.waitFor(t, "bob is covered",
		`window.sotto.state.safetyCovers.some(c => c.identity === "bob" && !c.verified) && !!document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle')`,
		knownDescribeJS)
	alice.eval(t, `document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle').click(), true`, nil)
	alice.waitFor(t, "bob is shown verified",
		`window.sotto.state.safetyCovers.some(c => c.identity === "bob" && c.verified)`, knownDescribeJS)
	bobKey := coveredByGo(bob)["bob"]
	alice.eval(t, `document.getElementById("leave").click(), true`, nil)
	alice.waitFor(t, "alice left", `window.sotto.state.phase === "ended"`, knownDescribeJS)
	_ = bob.Close()

	announce := func() (string, string) {
		id, err := e2ee.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		sk, err := e2ee.NewSessionKey()
		if err != nil {
			t.Fatal(err)
		}
		return e2ee.Announce(id, sk), hex.EncodeToString(id.PublicKey())
	}
	k2, k2Key := announce()
	k3, k3Key := announce()
	var swapped atomic.Value
	swapped.Store(k2)
	node.SetRewrite(hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["public_key"] = swapped.Load().(string)
				changed = true
			}
		}
		return changed
	}))
	from := len(node.Carried())
	bob = knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice.load(t, link)
	alice.waitFor(t, "the page warns that bob's key changed, showing K2",
		fmt.Sprintf(`(() => { const d = document.getElementById("key-changed"); const k = window.sotto.state.keyChanges;
			return d.open && d.dataset.person === "bob" && d.dataset.key === %q && k.length === 1 && !k[0].again; })()`, k2Key),
		knownDescribeJS)

	// alice reads the warning. Meanwhile the page is busy with its keys
	// (its trust queue held here, so that the click comes first), and the
	// node swaps again: bob comes back, shown with K3.
	alice.eval(t, `(() => { const e2ee = window.sotto.call.e2ee; window.testHeld = new Promise((r) => { window.testRelease = r; });
		e2ee.runTrust(() => window.testHeld); return true; })()`, nil)
	swapped.Store(k3)
	_ = bob.Close()
	bob = knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice.waitFor(t, "the page's client hears bob back, with K3",
		fmt.Sprintf(`(window.sotto.call.e2ee.peers || []).some(p => p.identity === "bob" && p.publicKey === %q)`, k3), knownDescribeJS)
	var shown string
	alice.eval(t, `document.getElementById("key-changed").dataset.key`, &shown)
	if shown != k2Key {
		t.Fatalf("before the page handled K3, its warning shows %s; want K2 (%s)", shown, k2Key)
	}
	// She clicks "Accept" on the warning she read (K2); then the page
	// handles what came.
	alice.eval(t, `document.getElementById("accept-key-change").click(), window.testRelease(), true`, nil)

	alice.waitFor(t, "the page shows the new warning, for K3",
		fmt.Sprintf(`(() => { const d = document.getElementById("key-changed"); const k = window.sotto.state.keyChanges;
			const p = window.sotto.call.pendingKeyChanges();
			return d.open && d.dataset.person === "bob" && d.dataset.key === %q && k.length === 1 && k[0].again &&
				document.getElementById("key-changed-title").textContent === "bob's security key changed again" &&
				p.length === 1 && p[0].identity === "bob"; })()`, k3Key),
		knownDescribeJS)
	type knownView struct {
		Key      string
		Verified bool
		Pending  string
		Covered  []string
		Refused  string
	}
	read := func() knownView {
		var v knownView
		alice.eval(t, `(async () => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
			const c = window.sotto.call; await c.e2ee.runTrust(() => {});
			const k = await c.e2ee.store.known("bob");
			return {key: h(k.key), verified: k.verified, pending: h(c.pendingKeyChanges()[0]?.current ?? []),
				covered: (await c.safetyNumberCovers()).map(x => x.identity)}; })()`, &v)
		return v
	}
	if v := read(); v.Key != bobKey || !v.Verified || v.Pending != k3Key || slices.Contains(v.Covered, "bob") {
		t.Fatalf("after accepting the superseded K2: the browser knows %+v; want bob's old key %s, verified, K3 (%s) pending, bob not covered",
			v, bobKey, k3Key)
	}
	// The SDK itself, asked again for K2: refused, by name.
	var refused string
	alice.eval(t, fmt.Sprintf(`(async () => { const c = window.sotto.call;
		try { await c.acceptKeyChange({identity: "bob", current: Uint8Array.from(%q.match(/../g), x => parseInt(x, 16))}); return "accepted"; }
		catch (err) { return err.name; } })()`, k2Key), &refused)
	if refused != "NoKeyChangeError" {
		t.Fatalf("acceptKeyChange with the superseded K2: %s, want NoKeyChangeError", refused)
	}
	if n := boxesTo(pageKeyBoxes(t, node, from), "bob"); n != 0 {
		t.Fatalf("the page sealed %d keys to a key of bob's nobody accepted", n)
	}

	// Her click on the warning now shown accepts K3, unverified. bob came
	// back after she joined: he waits to be admitted, and she admits him.
	alice.eval(t, `document.getElementById("accept-key-change").click(), true`, nil)
	alice.admit(t, "bob")
	alice.waitFor(t, "after accepting K3, bob is covered, unverified, and no warning is up",
		`(() => { const s = window.sotto.state; return !document.getElementById("key-changed").open && s.keyChanges.length === 0 &&
			window.sotto.call.pendingKeyChanges().length === 0 && s.safetyCovers.some(c => c.identity === "bob" && !c.verified); })()`,
		knownDescribeJS)
	if v := read(); v.Key != k3Key || v.Verified {
		t.Fatalf("after accepting the warning shown: the browser knows %+v for bob; want K3 (%s), unverified", v, k3Key)
	}
	t.Logf("accepting K2 after the node swapped bob's key to K3 accepted nothing; the page showed K3's warning, and accepting that took K3")
}

// saveScreenshot writes the page as a PNG among the test artifacts, for a
// person to look at (the assertions are the DOM checks around it).
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	// Quality 100 makes a PNG.
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
