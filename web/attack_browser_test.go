package web_test

// Attacks found by an adversarial review of the browser side (web/sdk/e2ee,
// web/sdk/client.js and the call page), each set up as the review did, and
// what the page and the SDK now do about it (docs/E2EE.md, the threat
// model's table; the Go SDK's counterparts are in signaling/client and
// media/e2ee).

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// clearGoPeer joins room as a Go client with E2EE off and publishes
// Opus audio in clear until the test ends: what a node would add to a call
// to listen and be heard.
func clearGoPeer(t *testing.T, srv *webServer, room, identity, ogg string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	jctx, jcancel := context.WithTimeout(ctx, browserTimeout)
	defer jcancel()
	opts := client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token(room, identity, true, true),
		SettingEngine: &se,
		Logger:        testLogger(),
	}
	opts.E2EE.Disabled = true
	c, err := client.Connect(jctx, srv.URL, opts)
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	mic, err := c.PublishSample(jctx, "microphone", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	sent := make(chan error, 1)
	go func() { sent <- sendOgg(ctx, mic, ogg) }()
	t.Cleanup(func() {
		cancel()
		<-sent
	})
	info, err := mic.WaitPublished(jctx)
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	return info.SID
}

// renameParticipant makes a rewrite that renames participant from to to in
// everything the node tells clients about it (its entry, its tracks, its
// leaving, its relays).
func renameParticipant(from, to string) func([]byte) []byte {
	return hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == from {
				p["identity"] = to
				changed = true
			}
		}
		for _, tm := range hostilenode.Tracks(m) {
			if tm["identity"] == from {
				tm["identity"] = to
				changed = true
			}
		}
		if (m["type"] == wire.TypeParticipantLeft || m["type"] == wire.TypeTrackUnpublished || m["type"] == wire.TypeTrackMuted) && m["identity"] == from {
			m["identity"] = to
			changed = true
		}
		if m["type"] == wire.TypeRelay && m["from"] == from {
			m["from"] = to
			changed = true
		}
		return changed
	})
}

// shownName is a name as the page shows it: every code point of general
// category Cf or Cc written out as ⟨U+XXXX⟩ (web/app.js, shownName).
func shownName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if unicode.In(r, unicode.Cf, unicode.Cc) {
			fmt.Fprintf(&b, "⟨U+%04X⟩", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// The attack: the page keyed its tiles and its state.participants by the
// participant's identity, a string the node writes. A participant the
// node named "__proto__" was stored as the prototype of
// state.participants (not an own entry), and one named "\u0000self" (the
// page's key for its own tile) was merged into the page's own tile.
// Either way the header, which reads state.participants, never saw it and
// said "Connected · end-to-end encrypted" while the node's participant
// sent clear audio that the page played. Now participants live in an
// object without a prototype and the own tile under a Symbol: whatever
// its name, the participant has a tile of its own and the header names it
// as not encrypting (its invisible characters shown), as it does a
// "mallory" (the control).
func TestBrowserHeaderHonestWithClearParticipantNamedProto(t *testing.T) {
	_, ogg := makeFixtures(t)
	for _, tc := range []struct{ sub, name string }{
		{"control", "mallory"},
		{"proto", "__proto__"},
		{"self_key", "\u0000self"},
	} {
		t.Run(tc.sub, func(t *testing.T) {
			srv := startWebServer(t, nil)
			node := hostilenode.New(t, srv.URL, renameParticipant("mallory", tc.name))
			room := "header-" + tc.sub
			track := clearGoPeer(t, srv, room, "mallory", ogg)
			dave := openHostileTab(t, newBrowser(t), node, room, "dave")
			name := fmt.Sprintf("%q", tc.name)
			dave.waitFor(t, "the node's participant is announced, not encrypting, and its clear audio plays",
				fmt.Sprintf(`(async () => { const c = window.sotto.call; const p = c.participants.get(%s);
					const a = (await c.inboundStats()).find(s => s.trackSid === %q);
					return !!p && c.e2eeState(%s) === "not-encrypted" && !!a && a.packetsReceived > 100 && a.e2ee === null &&
						document.getElementById("status").textContent.startsWith("Connected"); })()`, name, track, name),
				hostileDescribeJS)
			var got struct {
				Status    string
				Playing   bool
				SelfTile  bool
				OwnTile   bool
				InState   bool
				TileState string
				TileName  string
			}
			dave.eval(t, fmt.Sprintf(`(() => {
				const tiles = [...document.querySelectorAll("[data-identity]")];
				const own = tiles.find(e => e.dataset.identity === %s && !e.dataset.self);
				const self = tiles.find(e => e.dataset.self);
				const playing = tiles.some(e => { const a = e.querySelector("audio"); return !!a && !!a.srcObject && !a.paused; });
				return {status: document.getElementById("status").textContent, playing, ownTile: !!own,
					selfTile: !!self && !!self.querySelector("audio").srcObject, tileState: own ? own.dataset.e2eeState : (self ? self.dataset.e2eeState : ""),
					tileName: own ? own.querySelector(".name").textContent : "",
					inState: Object.keys(window.sotto.state.participants).includes(%s)};
			})()`, name, name), &got)
			t.Logf("%+q: header %q; a tile plays audio: %v; own tile: %v (named %q); its audio in the page's own tile: %v; tile state %q; in state.participants: %v",
				tc.name, got.Status, got.Playing, got.OwnTile, got.TileName, got.SelfTile, got.TileState, got.InState)
			if !got.Playing {
				t.Fatalf("the node's clear audio is not playing in any tile")
			}
			if !got.OwnTile || got.SelfTile || !got.InState || got.TileState != "not-encrypted" {
				t.Fatalf("the participant %+q has no tile of its own marked not encrypted (own tile %v, state %q, in state %v), or plays in the page's own tile (%v)",
					tc.name, got.OwnTile, got.TileState, got.InState, got.SelfTile)
			}
			if got.TileName != shownName(tc.name) {
				t.Errorf("the tile names the participant %q; want %q", got.TileName, shownName(tc.name))
			}
			if got.Status == "Connected · end-to-end encrypted" {
				t.Fatalf("the header claims %q while %+q, a participant that does not encrypt, is heard in clear", got.Status, tc.name)
			}
			if want := "not end-to-end encrypted: " + shownName(tc.name) + " does not encrypt"; !strings.Contains(got.Status, want) {
				t.Fatalf("the header says %q; want it to name the participant that does not encrypt (%q)", got.Status, want)
			}
		})
	}
}

// The attack: known people are kept by the exact identity string. The
// page met bob and marked him verified. In the next call the node (which
// verifies tokens, so can mint one for any sub) puts in a participant
// named "bob\u200b" (a zero-width space after "bob") with a key of its
// own: to the store, someone never met; the page trusted it on first use,
// covered it, sealed it its media key, and drew its name exactly as "bob".
// Now a new name with the skeleton of a known one is held out like a
// changed key: the page warns, blocking ("bob⟨U+200B⟩ looks like bob, whom
// you have met, but is someone else"), seals it no key, leaves it out of
// the safety number, and draws its name with the zero-width space
// visible. Accepting remembers "bob\u200b" with its key, as someone other
// than bob, and the keys flow.
func TestBrowserWarnsOnLookalikeName(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "lookalike"
	b := newBrowser(t)

	bob := knownGoPeer(t, srv, srv.URL, room, "bob", nil, nil)
	alice, link := openKnownTab(t, b, node.URL, room, "alice")
	alice.waitFor(t, "bob is covered",
		`window.sotto.state.safetyCovers.some(c => c.identity === "bob") && !!document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle')`,
		knownDescribeJS)
	alice.eval(t, `document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle').click(), true`, nil)
	alice.waitFor(t, "bob is shown verified",
		`window.sotto.state.safetyCovers.some(c => c.identity === "bob" && c.verified)`, knownDescribeJS)
	bobKey := coveredByGo(bob)["bob"]
	alice.eval(t, `document.getElementById("leave").click(), true`, nil)
	alice.waitFor(t, "alice left", `window.sotto.state.phase === "ended"`, knownDescribeJS)
	_ = bob.Close()

	// The next call: the node's own participant, named "bob" and a
	// zero-width space, with its own identity key.
	const fake = "bob\u200b"
	mallory := knownGoPeer(t, srv, srv.URL, room, fake, nil, nil)
	knownGoPeer(t, srv, srv.URL, room, "carol", nil, nil)
	from := len(node.Carried())
	alice.load(t, link)
	alice.waitFor(t, "the page warns that the new name looks like bob's",
		fmt.Sprintf(`(() => { const d = document.getElementById("key-changed"); return d.open && d.dataset.person === %q && d.dataset.looksLike === "bob"; })()`, fake),
		knownDescribeJS)
	// A member (present when alice came, its own view proves it) held
	// out over its look-alike name: a tile, once the SDK lists it so
	// (until then a card may stand in for it).
	alice.waitFor(t, "the page drew the participant's tile",
		fmt.Sprintf(`window.sotto.call.admissions().some(a => a.identity === %[1]q && a.state === "member") &&
			[...document.querySelectorAll("[data-identity]")].some(e => e.dataset.identity === %[1]q)`, fake), knownDescribeJS)
	waitGo(t, "the page seals its key to carol", func() bool {
		return boxesTo(pageKeyBoxes(t, node, from), "carol") > 0
	}, func() string { return fmt.Sprintf("key messages: %v", pageKeyBoxes(t, node, from)) })
	mKey, err := hex.DecodeString(coveredByGo(mallory)[fake])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title, Accept string
		Shown         string
		SameWidth     bool
		Widths        []float64
		Pending       []struct {
			Identity, LooksLike, Previous, Current string
			WasVerified                            bool
		}
		Covered     []string
		CoveredText []string
		Member      bool
	}
	alice.eval(t, fmt.Sprintf(`(async () => {
		const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		const tile = [...document.querySelectorAll("[data-identity]")].find(e => e.dataset.identity === %[1]q);
		const name = tile.querySelector(".name");
		const probe = name.cloneNode(); probe.textContent = "bob"; name.parentNode.append(probe);
		const w = [name.getBoundingClientRect().width, probe.getBoundingClientRect().width]; probe.remove();
		return {title: document.getElementById("key-changed-title").textContent, accept: document.getElementById("accept-key-change").textContent,
			shown: name.textContent, sameWidth: w[0] === w[1], widths: w,
			pending: window.sotto.call.pendingKeyChanges().map(k => ({identity: k.identity, looksLike: k.looksLike, previous: h(k.previous), current: h(k.current), wasVerified: k.wasVerified})),
			covered: (await window.sotto.call.safetyNumberCovers()).map(c => c.identity),
			coveredText: [...document.querySelectorAll("#safety-covers li .who")].map(e => e.textContent),
			member: window.sotto.call.e2ee.memberKeys().has(%[1]q)};
	})()`, fake), &got)
	boxes := boxesTo(pageKeyBoxes(t, node, from), fake)
	t.Logf("the page warns %q (%q), shows the participant as %q (widths %v), covers %q, pending %+v; boxes sealed to it: %d (to carol: %d)",
		got.Title, got.Accept, got.Shown, got.Widths, got.CoveredText, got.Pending, boxes, boxesTo(pageKeyBoxes(t, node, from), "carol"))
	if want := "bob⟨U+200B⟩ looks like bob, whom you have met, but is someone else"; got.Title != want {
		t.Errorf("the warning's title is %q; want %q", got.Title, want)
	}
	if len(got.Pending) != 1 || got.Pending[0].Identity != fake || got.Pending[0].LooksLike != "bob" ||
		got.Pending[0].Previous != bobKey || got.Pending[0].Current != hex.EncodeToString(mKey) || !got.Pending[0].WasVerified {
		t.Errorf("pending changes %+v; want one for %+q looking like bob (bob's verified key %s…, the participant's %x…)", got.Pending, fake, bobKey[:16], mKey[:8])
	}
	if got.Member || slices.Contains(got.Covered, fake) || boxes != 0 {
		t.Fatalf("before the user chose, the look-alike is a key-management member (%v), covered (%q), or got %d of the page's keys", got.Member, got.Covered, boxes)
	}
	if got.Shown != shownName(fake) || got.SameWidth {
		t.Errorf("the tile shows the look-alike as %q (widths %v); want %q, visibly not \"bob\"", got.Shown, got.Widths, shownName(fake))
	}

	// Accepting remembers the look-alike as someone else, with its key.
	alice.eval(t, `document.getElementById("accept-key-change").click(), true`, nil)
	alice.waitFor(t, "the look-alike is covered after accepting, shown with its zero-width space",
		fmt.Sprintf(`!document.getElementById("key-changed").open && window.sotto.state.safetyCovers.some(c => c.identity === %q && !c.verified) &&
			[...document.querySelectorAll("#safety-covers li .who")].some(e => e.textContent === %q)`, fake, shownName(fake)),
		knownDescribeJS)
	waitGo(t, "the page seals its key to the accepted look-alike", func() bool {
		return boxesTo(pageKeyBoxes(t, node, from), fake) > 0
	}, func() string { return fmt.Sprintf("key messages: %v", pageKeyBoxes(t, node, from)) })
	var kept struct {
		Fake, Bob       string
		FakeVer, BobVer bool
	}
	alice.eval(t, fmt.Sprintf(`(async () => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		const st = window.sotto.call.e2ee.store; const f = await st.known(%q), b = await st.known("bob");
		return {fake: f ? h(f.key) : "", fakeVer: !!f && f.verified, bob: b ? h(b.key) : "", bobVer: !!b && b.verified}; })()`, fake), &kept)
	if kept.Fake != hex.EncodeToString(mKey) || kept.FakeVer || kept.Bob != bobKey || !kept.BobVer {
		t.Fatalf("after accepting, the store keeps %+q as %.16s… (verified %v) and bob as %.16s… (verified %v); want the look-alike's key, unverified, and bob's, verified, untouched",
			fake, kept.Fake, kept.FakeVer, kept.Bob, kept.BobVer)
	}
}

// The attack: any error of the identity store was taken as a first sight,
// including an error *reading* a person who is known. IndexedDBStore
// closed its connection when another tab of the origin upgraded the
// database (a newer deployment of the page opened in another tab), and
// from then on every store.known() threw: every changed key was taken
// silently for the rest of the page's life. Now the store opens the
// database again when next used, and when it cannot (the database is at a
// newer version than the page's code), a key it cannot check is not
// trusted: the node's key for bob gets no warning (there is no verdict)
// but bob is held out (no key sealed to him, none of his taken, not in the
// safety number), the SDK logs it (console.error) and the page says so in
// its banner.
func TestBrowserStoreFailureHoldsPeopleOut(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "store-fails"
	bobStore := e2ee.NewMemoryStore()
	b := newBrowser(t)

	bob := knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice, _ := openKnownTab(t, b, node.URL, room, "alice")
	alice.waitFor(t, "bob is covered and remembered",
		`(async () => window.sotto.state.safetyCovers.some(c => c.identity === "bob") && !!(await window.sotto.call.e2ee.store.known("bob")))()`,
		knownDescribeJS)
	bobKey := coveredByGo(bob)["bob"]

	// Another document of the origin (another tab) opens the database at a
	// newer version, as an updated page would.
	other := b.tab(t, "other-tab")
	if err := chromedp.Do(other, chromedp.Navigate(node.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if err := evaluate(other, `new Promise((res, rej) => { const r = indexedDB.open("sotto-e2ee", 2);
		r.onsuccess = () => { r.result.close(); res(true); }; r.onerror = () => rej(r.error); r.onblocked = () => {}; })`, nil); err != nil {
		t.Fatalf("other tab: open the database at version 2: %v", err)
	}
	expectPageError(t, alice.ctx, "e2ee: identity store: cannot check \"bob\"'s security key",
		"the other tab upgraded the database past the page's version: the page cannot open it again, so it cannot check bob's key")

	// The node now shows mallory's key as bob's, and bob reconnects.
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
	_ = bob.Close()
	alice.waitFor(t, "bob left", `!window.sotto.call.participants.has("bob") && !window.sotto.call.e2ee.memberKeys().has("bob")`, knownDescribeJS)
	from := len(node.Carried())
	knownGoPeer(t, srv, srv.URL, room, "bob", bobStore, nil)
	alice.waitFor(t, "the page heard bob back, with mallory's key, and could not check it",
		fmt.Sprintf(`(async () => { await window.sotto.call.e2ee.runTrust(() => {}); await window.sotto.call.e2ee.session.idle();
			return (window.sotto.call.e2ee.peers || []).some(p => p.identity === "bob" && p.publicKey === %q) &&
				window.sotto.call.keyCheckFailures().some(f => f.identity === "bob"); })()`, swapped),
		knownDescribeJS)
	// Whatever the page would send bob, it sent by now.
	time.Sleep(time.Second)
	var got struct {
		Pending  int
		Dialog   bool
		Member   bool
		Covered  []string
		Banner   string
		Shown    bool
		Error    struct{ Code string }
		Failures []struct{ Identity, Error string }
	}
	alice.eval(t, `(async () => ({pending: window.sotto.call.pendingKeyChanges().length, dialog: document.getElementById("key-changed").open,
		member: window.sotto.call.e2ee.memberKeys().has("bob"),
		covered: (await window.sotto.call.safetyNumberCovers()).map(c => c.identity),
		banner: document.getElementById("banner-text").textContent, shown: !document.getElementById("banner").hidden,
		error: window.sotto.state.error, failures: window.sotto.state.keyCheckFailures}))()`, &got)
	boxes := boxesTo(pageKeyBoxes(t, node, from), "bob")
	t.Logf("after the store's connection closed: pending changes %d, dialog %v, bob a member %v, covers %q, boxes to bob %d (known %s…, mallory %x…); banner (shown %v): %q; failures %+v",
		got.Pending, got.Dialog, got.Member, got.Covered, boxes, bobKey[:16], mallory.PublicKey()[:8], got.Shown, got.Banner, got.Failures)
	if got.Member || slices.Contains(got.Covered, "bob") || boxes != 0 {
		t.Fatalf("the page, its store unusable, took bob's unchecked key: a member %v, covered %q, %d of its keys sealed to him", got.Member, got.Covered, boxes)
	}
	if !got.Shown || !strings.Contains(got.Banner, "could not check the security key of bob") || got.Error.Code != "identity_store" ||
		len(got.Failures) != 1 || got.Failures[0].Identity != "bob" || got.Failures[0].Error == "" {
		t.Fatalf("the page does not say that bob's key could not be checked: banner (shown %v) %q, state.error %+v, failures %+v", got.Shown, got.Banner, got.Error, got.Failures)
	}
}

// The attack: the verification code shown next to a covered person, and
// the key "Mark verified" marked, were the key the *store* held for that
// name now, not the key the safety number covered in this call. Every tab
// of the origin shares the store, so they can differ. Tab 1 (room r1)
// meets a "bob" whose key is the node's (N, a first meeting). In tab 2
// (room r2) the real bob (R) comes: "key changed", and the user accepts
// R. Tab 1 still covers bob with N; after its next panel refresh it
// showed, next to bob, the code over R, which the real bob reads too, and
// "Mark verified" there marked R. Now tab 1 shows the code over N (which
// does not match the real bob's, so the user finds the impostor), and
// "Mark verified" there marks nothing: the store knows R for bob, not N;
// the page says so. In tab 2, which covers R, the code matches and the
// mark is made.
func TestBrowserVerificationCodeOfCoveredKey(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)

	impostor := knownGoPeer(t, srv, srv.URL, "r1", "bob", nil, nil)
	knownGoPeer(t, srv, srv.URL, "r1", "carol", nil, nil)
	tab1, _ := openKnownTab(t, b, srv.URL, "r1", "alice")
	tab1.waitFor(t, "the node's bob and carol are covered, with codes",
		`(() => { const s = window.sotto.state; return s.safetyCovers.some(c => c.identity === "bob") && s.safetyCovers.some(c => c.identity === "carol") &&
			/^\d{5}( \d{5}){5}$/.test(s.verificationCodes.bob || "") && !!document.querySelector('#safety-covers li[data-covered="carol"] .verify-toggle'); })()`,
		knownDescribeJS)
	nKey := coveredByGo(impostor)["bob"]
	var aliceHex string
	tab1.eval(t, pageIdentityJS, &aliceHex)

	realBob := knownGoPeer(t, srv, srv.URL, "r2", "bob", nil, nil)
	rKey := coveredByGo(realBob)["bob"]
	tab2, _ := openKnownTab(t, b, srv.URL, "r2", "alice")
	tab2.waitFor(t, "tab 2 warns that bob's key changed (to the real one)",
		`document.getElementById("key-changed").open && document.getElementById("key-changed").dataset.person === "bob"`, knownDescribeJS)
	tab2.eval(t, `document.getElementById("accept-key-change").click(), true`, nil)
	tab2.waitFor(t, "tab 2 covers bob after accepting, with a code", `window.sotto.state.safetyCovers.some(c => c.identity === "bob") &&
		/^\d{5}( \d{5}){5}$/.test(window.sotto.state.verificationCodes.bob || "")`, knownDescribeJS)

	// In tab 1 the user verifies carol; the panel is drawn again.
	tab1.eval(t, `document.querySelector('#safety-covers li[data-covered="carol"] .verify-toggle').click(), true`, nil)
	tab1.waitFor(t, "carol is shown verified in tab 1",
		`window.sotto.state.safetyCovers.some(c => c.identity === "carol" && c.verified)`, knownDescribeJS)
	var got struct {
		Code, Covered, Listed string
	}
	tab1.eval(t, `(() => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		return {code: window.sotto.state.verificationCodes.bob, covered: h(window.sotto.call.e2ee.memberKeys().get("bob") || []),
			listed: window.sotto.state.safetyCovers.find(c => c.identity === "bob").key}; })()`, &got)
	alice, err := hex.DecodeString(aliceHex)
	if err != nil {
		t.Fatal(err)
	}
	codeOf := func(k string) string {
		key, err := hex.DecodeString(k)
		if err != nil {
			t.Fatal(err)
		}
		return e2ee.VerificationCode(e2ee.Member{Identity: "alice", PublicKey: alice}, e2ee.Member{Identity: "bob", PublicKey: key})
	}
	codeN, codeR := codeOf(nKey), codeOf(rKey)
	realCode, err := realBob.VerificationCode("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tab 1 covers bob with %s… (the node's N), shows the code %q; over N: %q; over R (the real bob's, which he reads): %q",
		got.Covered[:16], got.Code, codeN, realCode)
	if got.Covered != nKey || got.Listed != nKey {
		t.Fatalf("setup: tab 1 covers bob with %s (listed %s), not N %s", got.Covered, got.Listed, nKey)
	}
	if realCode != codeR || codeN == codeR {
		t.Fatalf("setup: the real bob reads %q; over R %q, over N %q", realCode, codeR, codeN)
	}
	if got.Code != codeN {
		t.Fatalf("tab 1 shows, next to bob whom its safety number covers with the node's key N, the code %q, not the one over N (%q; over R, which the real bob reads: %q)",
			got.Code, codeN, codeR)
	}

	// "Mark verified" in tab 1 marks nothing: the store knows R for bob.
	tab1.eval(t, `document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle').click(), true`, nil)
	tab1.waitFor(t, "tab 1 says bob was not marked verified",
		`!document.getElementById("banner").hidden && document.getElementById("banner-text").textContent.startsWith("bob was not marked verified")`, knownDescribeJS)
	type stored struct {
		Key      string
		Verified bool
	}
	readStored := func(tab *callTab) stored {
		var s stored
		tab.eval(t, `(async () => { const k = await window.sotto.call.e2ee.store.known("bob");
			return {key: Array.from(k.key, x => x.toString(16).padStart(2, "0")).join(""), verified: k.verified}; })()`, &s)
		return s
	}
	if s := readStored(tab1); s.Key != rKey || s.Verified {
		t.Fatalf("\"Mark verified\" in tab 1, which covers N, left the store with %.16s… verified %v; want R %.16s…, unverified", s.Key, s.Verified, rKey)
	}
	var shown bool
	tab1.eval(t, `window.sotto.state.safetyCovers.find(c => c.identity === "bob").verified`, &shown)
	if shown {
		t.Fatal("tab 1 shows bob verified")
	}

	// In tab 2, which covers R and shows the real bob's code, it marks R.
	var code2 string
	tab2.eval(t, `window.sotto.state.verificationCodes.bob`, &code2)
	if code2 != realCode {
		t.Fatalf("tab 2 covers R and shows the code %q; the real bob reads %q", code2, realCode)
	}
	tab2.eval(t, `document.querySelector('#safety-covers li[data-covered="bob"] .verify-toggle').click(), true`, nil)
	tab2.waitFor(t, "tab 2 shows bob verified", `window.sotto.state.safetyCovers.some(c => c.identity === "bob" && c.verified)`, knownDescribeJS)
	if s := readStored(tab2); s.Key != rKey || !s.Verified {
		t.Fatalf("after \"Mark verified\" in tab 2 the store keeps bob as %.16s… verified %v; want R %.16s…, verified", s.Key, s.Verified, rKey)
	}
}

// The attack: checkKey was known() then remember(), two IndexedDB
// transactions, serialized only by each E2EE's own trust queue. Two tabs
// of the origin (two E2EE, two connections to the one database) that met
// the same new person at once both saw "nobody known", both remembered,
// and both trusted, each a different key if the node showed each a
// different one. Now the read and the write are one read-write
// transaction: one tab meets the person first and takes its key, the
// other sees "changed" and warns, holding the person out.
func TestBrowserTwoTabsAgreeOnFirstKey(t *testing.T) {
	srv := startWebServer(t, nil)
	ctx := newBrowser(t).tab(t, "page")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Pending [2]int
		Keys    [2]string
		Stored  string
	}
	if err := evaluate(ctx, `(async () => {
		const m = await import("/sdk/e2ee/index.js");
		const id = await import("/sdk/e2ee/identity.js");
		const h = (b) => Array.from(b || [], x => x.toString(16).padStart(2, "0")).join("");
		const tabs = [];
		for (let i = 0; i < 2; i++) {
			const store = await m.IndexedDBStore.open(); // one connection per tab
			const e = await m.E2EE.create({store});
			e.start({room: "r" + i, self: "alice", send: () => {}});
			e.setMembers([]); // alone: the first member, who admits those who come
			tabs.push(e);
		}
		const out = [];
		for (let round = 0; round < 5; round++) {
			const person = "bob" + round;
			const anns = [];
			for (let i = 0; i < 2; i++) anns.push(await id.announce(await id.Identity.generate(), await id.SessionKey.generate()));
			tabs.forEach((e, i) => e.setMembers([{identity: person, publicKey: anns[i]}]));
			await Promise.all(tabs.map((e) => e.runTrust(() => {})));
			await Promise.all(tabs.map((e) => e.session.idle()));
			// Each tab sees the person waiting and admits them: the tab that
			// took their key gives them keys, the one holding them out none.
			for (const e of tabs) {
				if (e.admissions().some((a) => a.identity === person && a.state !== "member")) await e.admit(person);
			}
			const stored = await tabs[0].store.known(person);
			out.push({pending: tabs.map((e) => e.pendingKeyChanges().filter((k) => k.identity === person).length), keys: tabs.map((e) => h(e.memberKeys().get(person))), stored: h(stored && stored.key)});
		}
		tabs.forEach((e) => e.close());
		return out;
	})()`, &got); err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		t.Logf("round %d: pending changes %v; covered keys %.16s… / %.16s…; stored %.16s…", i, r.Pending, r.Keys[0], r.Keys[1], r.Stored)
		if r.Keys[0] != "" && r.Keys[1] != "" && r.Keys[0] != r.Keys[1] {
			t.Errorf("round %d: two tabs of one browser each took a different first key for the same person", i)
			continue
		}
		first := 0
		if r.Keys[0] == "" {
			first = 1
		}
		if r.Keys[first] == "" || r.Keys[first] != r.Stored || r.Pending[first] != 0 || r.Pending[1-first] != 1 || r.Keys[1-first] != "" {
			t.Errorf("round %d: want one tab to take its key (the one stored) and the other to warn and hold the person out", i)
		}
	}
}

// The store's connection, closed under it by another tab, is opened again
// at the next use: after another tab deleted the database the store works
// (empty, as after clearing the site's data); after another tab upgraded
// it past this code's version every use rejects, saying why, and checkKey
// with it (which the SDK then takes as a key not checked).
func TestBrowserStoreReopensAfterAnotherTabClosedIt(t *testing.T) {
	srv := startWebServer(t, nil)
	ctx := newBrowser(t).tab(t, "page")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Before, AfterDelete, Remembered bool
		Upgraded                        string
		Check                           string
	}
	if err := evaluate(ctx, `(async () => {
		const {IndexedDBStore, checkKey} = await import("/sdk/e2ee/store.js");
		const name = "sotto-e2ee-reopen-test";
		const done = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
		const st = await IndexedDBStore.open(name);
		const key = crypto.getRandomValues(new Uint8Array(32));
		await st.remember("bob", {key, verified: false, firstSeen: new Date()});
		const before = !!(await st.known("bob"));
		await done(indexedDB.deleteDatabase(name)); // another tab's, as far as the store can tell
		const afterDelete = (await st.known("bob")) === null;
		await st.remember("carol", {key, verified: false, firstSeen: new Date()});
		const remembered = !!(await st.known("carol"));
		const up = indexedDB.open(name, 2);
		(await done(up)).close();
		const upgraded = await st.known("bob").then(() => "", (e) => String(e.message));
		const check = await checkKey(st, "dave", key).then((r) => r.trust, (e) => "rejected: " + e.message);
		st.close();
		await done(indexedDB.deleteDatabase(name));
		return {before, afterDelete, remembered, upgraded, check};
	})()`, &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	if !got.Before || !got.AfterDelete || !got.Remembered {
		t.Fatalf("after another tab deleted the database the store does not work again: %+v", got)
	}
	if !strings.Contains(got.Upgraded, "cannot be opened again") || !strings.Contains(got.Check, "rejected: ") {
		t.Fatalf("after another tab upgraded the database, the store's known says %q and checkKey %q; want both to reject", got.Upgraded, got.Check)
	}
}
