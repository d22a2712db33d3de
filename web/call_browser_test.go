package web_test

// Browser call tests: real calls between tabs of one headless Chromium,
// each tab a participant on the call page (/?room=R&name=N) of a real
// node, with Chromium's fake camera and microphone. They read what the
// page shows through window.sotto, the tiles' data attributes and
// RTCPeerConnection statistics, never through pixels, and wait on
// conditions rather than sleeping.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// The fake camera's video is kept small and slow: three tabs encode,
// encrypt, decrypt and decode it on two cores.
const (
	callVideoSize = "320x240"
	callVideoFPS  = "15"
)

// callTab is one participant: a tab on the call page.
type callTab struct {
	name string
	ctx  context.Context
}

// joinCallTab opens a tab on /?room=room&name=name with the test flags the
// page honours only in test mode, which this sets before the page loads.
func joinCallTab(t *testing.T, b *browser, srv *webServer, room, name string, flags url.Values) *callTab {
	t.Helper()
	q := url.Values{"room": {room}, "name": {name}}
	for k, v := range flags {
		q[k] = v
	}
	return openCallTab(t, b, srv, name, q)
}

// openCallTab opens a tab in test mode on the call page with query q (plus
// small, slow test video), in a browser profile of its own: each tab is
// another person, with an identity key of its own.
func openCallTab(t *testing.T, b *browser, srv *webServer, tabName string, q url.Values) *callTab {
	t.Helper()
	return loadCallTab(t, b.person(t, tabName), srv, tabName, q)
}

// loadCallTab opens the call page in the tab ctx, as openCallTab does.
func loadCallTab(t *testing.T, ctx context.Context, srv *webServer, tabName string, q url.Values) *callTab {
	t.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: "window.sottoTestMode = true;"}); err != nil {
		t.Fatalf("%s: test mode: %v", tabName, err)
	}
	q.Set("test-video", callVideoSize)
	q.Set("test-fps", callVideoFPS)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?"+q.Encode())); err != nil {
		t.Fatalf("%s: open the call page: %v", tabName, err)
	}
	return &callTab{name: tabName, ctx: ctx}
}

// waitFor waits until the page's expression is true; see the harness.
func (c *callTab) waitFor(t *testing.T, what, expr, describe string) {
	t.Helper()
	waitFor(t, c.ctx, c.name+": "+what, expr, describe)
}

func (c *callTab) eval(t *testing.T, expr string, out any) {
	t.Helper()
	if err := evaluate(c.ctx, expr, out); err != nil {
		t.Fatalf("%s: evaluate %s: %v", c.name, expr, err)
	}
}

// callDescribeJS is what a failed wait prints: the page's state and media.
const callDescribeJS = `(async () => ({
	state: window.sotto && window.sotto.state,
	tiles: [...document.querySelectorAll("[data-identity]")].map(e => ({...e.dataset})),
	safety: document.getElementById("safety-number").textContent,
	media: window.sotto && window.sotto.call ? await window.sotto.call.inboundStats() : null,
}))()`

// callMediaJS is a function of a list of identities that returns, for each, what
// this page receives from it: the most of its video and audio statistics
// and what its tile says.
const callMediaJS = `(async (names) => {
	const call = window.sotto && window.sotto.call;
	const stats = call ? await call.inboundStats() : [];
	const out = {};
	for (const n of names) {
		const v = stats.filter(s => s.identity === n && s.kind === "video");
		const a = stats.filter(s => s.identity === n && s.kind === "audio");
		const max = (xs, f) => xs.reduce((m, s) => Math.max(m, f(s) || 0), 0);
		const tile = document.querySelector('[data-identity="' + CSS.escape(n) + '"]:not([data-self])');
		out[n] = {
			videoPackets: max(v, s => s.packetsReceived),
			framesDecoded: max(v, s => s.framesDecoded),
			frameWidth: max(v, s => s.frameWidth),
			audioPackets: max(a, s => s.packetsReceived),
			audioEnergy: max(a, s => s.totalAudioEnergy),
			audioLevel: max(a, s => s.audioLevel),
			noKey: max(v, s => s.e2ee && s.e2ee.noKey),
			decrypted: max(v, s => s.e2ee && s.e2ee.decrypted),
			tile: tile ? tile.dataset.e2eeState : "",
			hasVideoElement: !!(tile && tile.querySelector("video") && tile.querySelector("video").srcObject),
		};
	}
	return out;
})`

type callReceived struct {
	VideoPackets    float64 `json:"videoPackets"`
	FramesDecoded   float64 `json:"framesDecoded"`
	FrameWidth      float64 `json:"frameWidth"`
	AudioPackets    float64 `json:"audioPackets"`
	AudioEnergy     float64 `json:"audioEnergy"`
	AudioLevel      float64 `json:"audioLevel"`
	NoKey           float64 `json:"noKey"`
	Decrypted       float64 `json:"decrypted"`
	Tile            string  `json:"tile"`
	HasVideoElement bool    `json:"hasVideoElement"`
}

func callJSList(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

// media reads what this page receives from each of names.
func (c *callTab) media(t *testing.T, names []string) map[string]callReceived {
	t.Helper()
	var out map[string]callReceived
	c.eval(t, callMediaJS+"("+callJSList(names)+")", &out)
	return out
}

// waitInCall waits until the page has joined and is connected.
func (c *callTab) waitInCall(t *testing.T) {
	t.Helper()
	c.waitFor(t, "joined", `window.sotto && window.sotto.state.phase === "in-call" && window.sotto.state.connection === "connected"`, callDescribeJS)
}

// waitSeesAndHears waits until this page shows a tile saying "encrypted"
// for each of others, decodes their video (frames of a real width, the
// count rising between two samples) and receives their audio with energy
// (Chromium's fake microphone beeps).
func (c *callTab) waitSeesAndHears(t *testing.T, others []string) {
	t.Helper()
	list := callJSList(others)
	c.waitFor(t, fmt.Sprintf("tiles of %v say encrypted", others),
		fmt.Sprintf(`%s.every(n => { const e = document.querySelector('[data-identity="' + CSS.escape(n) + '"]:not([data-self])'); return e && e.dataset.e2eeState === "encrypted" && e.querySelector("video"); })`, list),
		callDescribeJS)
	c.waitFor(t, fmt.Sprintf("video and audio of %v", others),
		fmt.Sprintf(`(async () => { const m = await %s(%s); return %s.every(n => m[n].framesDecoded > 0 && m[n].frameWidth > 0 && (m[n].audioEnergy > 0 || m[n].audioLevel > 0) && m[n].hasVideoElement); })()`, callMediaJS, list, list),
		callDescribeJS)
	first := c.media(t, others)
	base, _ := json.Marshal(first)
	c.waitFor(t, fmt.Sprintf("video of %v keeps decoding", others),
		fmt.Sprintf(`(async () => { const base = %s; const m = await %s(%s); return %s.every(n => m[n].framesDecoded > base[n].framesDecoded); })()`, base, callMediaJS, list, list),
		callDescribeJS)
	second := c.media(t, others)
	for _, n := range others {
		t.Logf("%s receives %s: frames decoded %v then %v, width %v, audio energy %v, frames decrypted %v",
			c.name, n, first[n].FramesDecoded, second[n].FramesDecoded, second[n].FrameWidth, second[n].AudioEnergy, second[n].Decrypted)
	}
}

// safetyNumberPattern is what a safety number looks like, as
// web/sdk/e2ee/safety.js and media/e2ee/safety.go render it: six groups of
// five digits separated by single spaces. The page shows "…" (or
// "Encryption is off") until it has one; neither matches.
var safetyNumberPattern = regexp.MustCompile(`^\d{5}( \d{5}){5}$`)

// safetyNumberJS is safetyNumberPattern as a JavaScript regular expression.
const safetyNumberJS = `/^\d{5}( \d{5}){5}$/`

// checkSameSafetyNumbers fails the test unless every one of numbers (by
// who shows it) is a safety number, and all are the same: two placeholders
// or two empty strings are not a match.
func checkSameSafetyNumbers(t *testing.T, what string, numbers map[string]string) {
	t.Helper()
	if len(numbers) < 2 {
		t.Fatalf("%s: %d safety numbers to compare (%v), want two at least", what, len(numbers), numbers)
	}
	var first string
	for _, who := range slices.Sorted(maps.Keys(numbers)) {
		n := numbers[who]
		if !safetyNumberPattern.MatchString(n) {
			t.Fatalf("%s: %s's safety number %q is not six groups of five digits (all: %q)", what, who, n, numbers)
		}
		if first == "" {
			first = n
		} else if n != first {
			t.Fatalf("%s: the safety numbers differ: %q", what, numbers)
		}
	}
}

// waitSafetyNumber waits until the page's safety number covers exactly
// everyone (sorted identities) and returns it.
func (c *callTab) waitSafetyNumber(t *testing.T, everyone []string) string {
	t.Helper()
	want := slices.Clone(everyone)
	slices.Sort(want)
	c.waitFor(t, fmt.Sprintf("safety number of %v", want),
		fmt.Sprintf(`(() => { const e = document.getElementById("safety-number"); return e.dataset.participants === %q && %s.test(e.textContent); })()`,
			strings.Join(want, ","), safetyNumberJS),
		callDescribeJS)
	var n string
	c.eval(t, `document.getElementById("safety-number").textContent`, &n)
	if !safetyNumberPattern.MatchString(n) {
		t.Fatalf("%s: safety number %q is not six groups of five digits", c.name, n)
	}
	return n
}

// checkSameSafetyNumber waits until every page shows a safety number over
// everyone, and the same one. A page may show the number of a moment ago
// for a short while (key management applies a membership change before it
// announces the new number), so the pages are read again until they agree.
func checkSameSafetyNumber(t *testing.T, tabs []*callTab) string {
	t.Helper()
	var everyone []string
	for _, c := range tabs {
		everyone = append(everyone, c.name)
	}
	deadline := time.Now().Add(browserTimeout)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		numbers := make([]string, len(tabs))
		for i, c := range tabs {
			numbers[i] = c.waitSafetyNumber(t, everyone)
		}
		if !slices.ContainsFunc(numbers, func(n string) bool { return n != numbers[0] }) {
			t.Logf("safety number on every page: %s", numbers[0])
			return numbers[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("safety numbers differ after %v: %v", browserTimeout, numbers)
		}
		<-poll.C
	}
}

func otherTabNames(tabs []*callTab, self *callTab) []string {
	var out []string
	for _, c := range tabs {
		if c != self {
			out = append(out, c.name)
		}
	}
	return out
}

// startCallTabs opens one tab per name in a room and waits for each to
// join; the first tab admits each of the others.
func startCallTabs(t *testing.T, b *browser, srv *webServer, room string, names ...string) []*callTab {
	t.Helper()
	var tabs []*callTab
	for _, n := range names {
		c := joinCallTab(t, b, srv, room, n, nil)
		c.waitInCall(t)
		if len(tabs) > 0 {
			tabs[0].admit(t, n)
		}
		tabs = append(tabs, c)
	}
	return tabs
}

func checkEveryoneSeesEveryone(t *testing.T, tabs []*callTab) {
	t.Helper()
	for _, c := range tabs {
		c.waitSeesAndHears(t, otherTabNames(tabs, c))
	}
}

func TestBrowserCallTwoParties(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	start := time.Now()
	tabs := startCallTabs(t, b, srv, "pair", "alice", "bob")
	checkEveryoneSeesEveryone(t, tabs)
	checkSameSafetyNumber(t, tabs)
	t.Logf("two parties see and hear each other, encrypted, after %v", time.Since(start).Round(time.Millisecond))
}

func TestBrowserCallThreeParties(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	start := time.Now()
	tabs := startCallTabs(t, b, srv, "trio", "alice", "bob", "carol")
	checkEveryoneSeesEveryone(t, tabs)
	checkSameSafetyNumber(t, tabs)
	t.Logf("three parties see and hear each other, encrypted, after %v", time.Since(start).Round(time.Millisecond))
	// Chromium's fake microphone beeps: every page shows each of the
	// others speaking at some point.
	for _, c := range tabs {
		for _, n := range otherTabNames(tabs, c) {
			c.waitFor(t, n+" speaks",
				fmt.Sprintf(`document.querySelector('[data-identity=%q]:not([data-self])').dataset.speaking === "true"`, n),
				callDescribeJS)
		}
	}

	// Quality 100 makes a PNG.
	shot, err := chromedp.Run(tabs[0].ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "three-party-call.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s's page: %s", tabs[0].name, path)
}

// A participant whose key management refuses every key (the E2EE test
// hook, set before it joins) receives the others' media but cannot
// decrypt it: no frame reaches its decoder, and its page says so.
func TestBrowserCallWithoutKeysCannotDecrypt(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	alice := joinCallTab(t, b, srv, "locked", "alice", nil)
	alice.waitInCall(t)
	mallory := joinCallTab(t, b, srv, "locked", "mallory", url.Values{"test-deny-keys": {"1"}})
	mallory.waitInCall(t)
	alice.admit(t, "mallory")

	var hooked bool
	mallory.eval(t, `!!(window.sotto.call.e2ee && window.sotto.call.e2ee.denyKeysForTest)`, &hooked)
	if !hooked {
		t.Fatal("mallory's page did not set denyKeysForTest")
	}
	// Mallory still sends keys, so alice sees her: the call itself works.
	alice.waitSeesAndHears(t, []string{"mallory"})

	mallory.waitFor(t, `alice's tile says "cannot decrypt"`,
		`(() => { const e = document.querySelector('[data-identity="alice"]:not([data-self])'); return e && e.dataset.e2eeState === "cannot-decrypt" && /Cannot decrypt/.test(e.textContent); })()`,
		callDescribeJS)
	// Plenty of alice's video arrives (about ten seconds' worth at the
	// test's frame rate)...
	mallory.waitFor(t, "alice's video packets arrive",
		fmt.Sprintf(`(async () => { const m = await %s(["alice"]); return m.alice.videoPackets > 150 && m.alice.audioPackets > 100; })()`, callMediaJS),
		callDescribeJS)
	// ...and not one frame of it was decoded.
	got := mallory.media(t, []string{"alice"})["alice"]
	t.Logf("mallory receives alice: %v video packets, %v frames decoded, %v frames without a key", got.VideoPackets, got.FramesDecoded, got.NoKey)
	if got.FramesDecoded != 0 || got.FrameWidth != 0 {
		t.Fatalf("mallory decoded %v frames of alice's video (width %v) without her key", got.FramesDecoded, got.FrameWidth)
	}
	if got.Tile != "cannot-decrypt" {
		t.Fatalf("mallory's tile for alice says %q", got.Tile)
	}
}

// Leaving and joining again: the others see the participant go, then come
// back (new session, new keys) with video. The identity key is the one the
// browser keeps (IndexedDB), so the same people have the same safety
// number as before.
func TestBrowserCallLeaveAndRejoin(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	tabs := startCallTabs(t, b, srv, "door", "alice", "bob")
	alice, bob := tabs[0], tabs[1]
	checkEveryoneSeesEveryone(t, tabs)
	before := checkSameSafetyNumber(t, tabs)

	start := time.Now()
	bob.eval(t, `document.getElementById("leave").click(), true`, nil)
	bob.waitFor(t, "the page says bob left",
		`window.sotto.state.phase === "ended" && !document.getElementById("ended").hidden && /left/.test(document.getElementById("ended-title").textContent)`,
		callDescribeJS)
	alice.waitFor(t, "bob's tile goes",
		`!document.querySelector('[data-identity="bob"]') && !("bob" in window.sotto.state.participants)`, callDescribeJS)
	alice.waitSafetyNumber(t, []string{"alice"})
	t.Logf("alice saw bob leave after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	bob.eval(t, `document.getElementById("rejoin").click(), true`, nil)
	bob.waitInCall(t)
	checkEveryoneSeesEveryone(t, tabs)
	after := checkSameSafetyNumber(t, tabs)
	t.Logf("bob came back, seen and heard, after %v", time.Since(start).Round(time.Millisecond))
	if after != before {
		t.Fatalf("the safety number changed when bob came back with the identity key his browser keeps: %s, then %s", before, after)
	}
}

// wsDropper hands WebSocket upgrades to the signaling server and keeps
// their connections, so that a test can cut one as a network failure
// would: no close frame, the TCP connection just ends.
type wsDropper struct {
	mu    sync.Mutex
	next  http.Handler
	conns []net.Conn
}

func (d *wsDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	next := d.next
	d.mu.Unlock()
	next.ServeHTTP(&keepHijacked{ResponseWriter: w, d: d}, r)
}

func (d *wsDropper) connections() []net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.conns)
}

type keepHijacked struct {
	http.ResponseWriter
	d *wsDropper
}

func (k *keepHijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(k.ResponseWriter).Hijack()
	if err == nil {
		k.d.mu.Lock()
		k.d.conns = append(k.d.conns, c)
		k.d.mu.Unlock()
	}
	return c, rw, err
}

// When its WebSocket drops, a page says it is reconnecting, joins again
// on its own, republishes, and the call goes on: the others see and hear
// it again, under new keys, with the same safety number (its identity key
// lives as long as the page).
func TestBrowserCallReconnects(t *testing.T) {
	d := &wsDropper{}
	srv := startWebServer(t, map[string]http.Handler{"GET " + wire.Path: d})
	d.mu.Lock()
	d.next = srv.Sig
	d.mu.Unlock()
	b := newBrowser(t)
	tabs := startCallTabs(t, b, srv, "flaky", "alice", "bob")
	alice, bob := tabs[0], tabs[1]
	checkEveryoneSeesEveryone(t, tabs)
	before := checkSameSafetyNumber(t, tabs)

	conns := d.connections()
	if len(conns) != 2 {
		t.Fatalf("%d signaling connections, want alice's and bob's", len(conns))
	}
	var bobSID string
	alice.eval(t, `window.sotto.call.participants.get("bob").sid`, &bobSID)
	start := time.Now()
	if err := conns[1].Close(); err != nil {
		t.Fatal(err)
	}
	bob.waitFor(t, "reconnected",
		`(() => { const h = window.sotto.state.connectionHistory; return h.includes("reconnecting") && h[h.length - 1] === "connected"; })()`,
		callDescribeJS)
	alice.waitFor(t, "bob is back with a new session",
		fmt.Sprintf(`(() => { const p = window.sotto.call.participants.get("bob"); return p && p.sid !== %q; })()`, bobSID),
		callDescribeJS)
	checkEveryoneSeesEveryone(t, tabs)
	after := checkSameSafetyNumber(t, tabs)
	t.Logf("bob reconnected and is seen and heard again after %v", time.Since(start).Round(time.Millisecond))
	if after != before {
		t.Fatalf("the safety number changed across bob's reconnect (%s, then %s), though his identity key did not", before, after)
	}
	var history []string
	bob.eval(t, `window.sotto.state.connectionHistory`, &history)
	t.Logf("bob's connection states: %v", history)
}

// The URL modes other than ?room&name, and the errors a person can meet
// on the way in, in words.
func TestBrowserCallURLModesAndErrors(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	const room = "modes"
	noMedia := url.Values{"test-media": {"none"}}

	// ?room&token joins at once as the token's identity.
	tok := openCallTab(t, b, srv, "token", url.Values{"room": {room}, "token": {srv.Token(room, "tok", true, true)}, "test-media": {"none"}})
	tok.waitInCall(t)
	var identity string
	tok.eval(t, `window.sotto.call.self.identity`, &identity)
	if identity != "tok" {
		t.Fatalf("the token page joined as %q, want tok", identity)
	}

	// ?room&autojoin=1 picks a guest name: two tabs are two people.
	g1 := openCallTab(t, b, srv, "guest1", url.Values{"room": {room}, "autojoin": {"1"}, "test-media": {"none"}})
	g1.waitInCall(t)
	var n1, n2 string
	g1.eval(t, `window.sotto.call.self.identity`, &n1)
	tok.admit(t, n1)
	g2 := openCallTab(t, b, srv, "guest2", url.Values{"room": {room}, "autojoin": {"1"}, "test-media": {"none"}})
	g2.waitInCall(t)
	g2.eval(t, `window.sotto.call.self.identity`, &n2)
	if n1 != n2 {
		tok.admit(t, n2)
	}
	guest := regexp.MustCompile(`^guest-\d{4}$`)
	if !guest.MatchString(n1) || !guest.MatchString(n2) {
		t.Fatalf("autojoin names %q and %q are not guest-NNNN", n1, n2)
	}
	if n1 != n2 { // one chance in 10000 that they drew the same
		tok.waitFor(t, "both guests' tiles",
			fmt.Sprintf(`!!document.querySelector('[data-identity=%q]') && !!document.querySelector('[data-identity=%q]')`, n1, n2), callDescribeJS)
	}

	// A participant who does not encrypt end to end is marked so.
	se := &webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	plain, err := client.Connect(ctx, srv.URL, client.Options{
		Token:         srv.Token(room, "plain", true, true),
		SettingEngine: se,
		Logger:        testLogger(),
		E2EE:          client.E2EEOptions{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	tok.waitFor(t, `plain's tile says "not encrypted"`,
		`(() => { const e = document.querySelector('[data-identity="plain"]'); return e && e.dataset.e2eeState === "not-encrypted" && /Not encrypted/.test(e.textContent); })()`,
		callDescribeJS)
	// The header no longer claims the call is encrypted end to end, and
	// names who is not; when plain leaves, the claim comes back.
	const status = `document.getElementById("status").textContent`
	tok.waitFor(t, "the header names plain as not encrypting",
		status+` === "Connected · not end-to-end encrypted: plain does not encrypt"`, status)
	if err := plain.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	tok.waitFor(t, "the header says encrypted once plain left",
		status+` === "Connected · end-to-end encrypted"`, status)

	// A token without the publish grant joins to watch and listen, and the
	// page says why its camera is not sent.
	viewer := openCallTab(t, b, srv, "viewer", url.Values{"room": {room}, "token": {srv.Token(room, "viewer", false, true)}})
	viewer.waitInCall(t)
	viewer.waitFor(t, "says it cannot send",
		`!document.getElementById("banner").hidden && /not send your camera/.test(document.getElementById("banner-text").textContent) && window.sotto.call.publications.length === 0`,
		callDescribeJS)

	// A bad token ends at once, in words.
	bad := openCallTab(t, b, srv, "bad-token", url.Values{"room": {room}, "token": {"not-a-token"}, "test-media": {"none"}})
	bad.waitFor(t, "refused",
		`window.sotto.state.phase === "ended" && window.sotto.state.error.code === "token_malformed" && /not valid/.test(document.getElementById("ended-reason").textContent)`,
		callDescribeJS)

	// The same name in another tab replaces this one, which says so and
	// stays out (no reconnect).
	first := joinCallTab(t, b, srv, room, "dup", noMedia)
	first.waitInCall(t)
	// Admitted once, dup is admitted again when it comes back with the
	// same identity key (the second tab's: the browser keeps one).
	tok.admit(t, "dup")
	second := loadCallTab(t, b.beside(t, first.ctx, "dup"), srv, "dup", url.Values{"room": {room}, "name": {"dup"}, "test-media": {"none"}})
	second.waitInCall(t)
	first.waitFor(t, "replaced",
		`window.sotto.state.phase === "ended" && window.sotto.state.error.code === "replaced" && /another tab/.test(document.getElementById("ended-reason").textContent)`,
		callDescribeJS)
	tok.waitFor(t, "one dup, the second tab's",
		`document.querySelectorAll('[data-identity="dup"]').length === 1 && window.sotto.call.participants.has("dup")`, callDescribeJS)
	var states []string
	first.eval(t, `window.sotto.state.connectionHistory`, &states)
	if slices.Contains(states, "reconnecting") {
		t.Fatalf("the replaced tab tried to reconnect: %v", states)
	}
}
