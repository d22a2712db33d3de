package web_test

// TestHostileServer on the call page: issue 12, "No ghost listeners", as
// people see it. A hostile node (internal/hostilenode) stands in front of
// the real one; every real person is a page of the call UI (a browser
// profile of its own) joined through it, and the node's ghost is a Go SDK
// client it runs, with its own key log, connecting straight to the real
// node with a token it minted. The Go SDK's TestHostileServer
// (signaling/client/hostileserver_test.go) runs the same attacks with Go
// clients; `go test -run TestHostileServer ./...` runs both.
//
// Each subtest checks what the people see (the waiting card, never a
// tile; the blocking roster alert, naming the ghost) and that no media key
// reaches the ghost: no key message a page sent through the node has a
// box for it, and its key log holds no key but its own.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

func TestHostileServer(t *testing.T) {
	t.Run("ghost_shown_to_everyone", browserGhostShownToEveryone)
	t.Run("ghost_shown_to_some", browserGhostShownToSome)
}

// rosterAlertHeading is the roster alert's heading (docs/E2EE.md, rule 5).
const rosterAlertHeading = "The server is showing different people to different participants"

// openPersonVia opens the call page through the node, in a browser
// profile of its own (its own identity key), joining room as name with
// the fake camera and microphone (small, slow video: it publishes, so it
// sends keys), and waits until it is in the call. label names the tab in
// the log.
func openPersonVia(t *testing.T, b *browser, node *hostilenode.Node, room, name, label string) *callTab {
	t.Helper()
	ctx := b.person(t, label)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: "window.sottoTestMode = true;"}); err != nil {
		t.Fatalf("%s: test mode: %v", label, err)
	}
	q := url.Values{"room": {room}, "name": {name}, "test-video": {callVideoSize}, "test-fps": {callVideoFPS}}
	if err := chromedp.Do(ctx, chromedp.Navigate(node.URL+"/?"+q.Encode())); err != nil {
		t.Fatalf("%s: open the call page: %v", label, err)
	}
	tab := &callTab{name: name, ctx: ctx}
	tab.waitInCall(t)
	return tab
}

// waitMemberAlone waits until the page, the first in the call as it sees
// it, is a member at once.
func (c *callTab) waitMemberAlone(t *testing.T) {
	t.Helper()
	c.waitFor(t, "alone, a member at once", `window.sotto.state.selfAdmission.state === "member" &&
		window.sotto.call.rosterStatus().admitted && document.getElementById("self-admission").hidden`, admissionDescribeJS)
}

// admitListed is admit (a click on name's Admit), once the page's key
// management lists name as waiting. The page draws a newcomer's card, its
// Admit button enabled, as soon as the call lists them, a moment before
// key management does (setMembers is queued behind its other work); a
// click in that moment only says "no such participant waiting" on the
// card, and the person clicks again.
func (c *callTab) admitListed(t *testing.T, name string) {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("key management lists %s as waiting", name),
		fmt.Sprintf(`(() => { const n = %s; return window.sotto.state.admissions[n]?.state === "waiting" &&
			window.sotto.call.admissions().some(a => a.identity === n && a.state === "waiting"); })()`, jsString(name)),
		admissionDescribeJS)
	c.admit(t, name)
}

// waitAgreed waits until the page is a member, every member's view agrees
// with its own and no alert is up.
func (c *callTab) waitAgreed(t *testing.T) {
	t.Helper()
	c.waitFor(t, "views agree, no alert", `(() => { const s = window.sotto.call.rosterStatus();
		return s.admitted && s.agreed && !s.alert && !document.getElementById("roster-alert").open && !window.sotto.state.rosterAlert; })()`,
		rosterDescribeJS)
}

// rosterDescribeJS is what a failed wait on the roster alert prints.
const rosterDescribeJS = `(() => ({
	admission: ` + admissionDescribeJS + `,
	alert: window.sotto && window.sotto.state.rosterAlert,
	dialog: {open: document.getElementById("roster-alert").open, members: document.getElementById("roster-alert").dataset.members,
		title: document.getElementById("roster-alert-title").textContent,
		items: [...document.querySelectorAll("#roster-alert-list li")].map(li => ({member: li.dataset.member, text: li.textContent}))},
}))()`

// waitGhostCard waits until the page shows name waiting to join on a card
// with the exact words, Admit and Refuse it can press, as someone never
// met before, and no tile for name.
func (c *callTab) waitGhostCard(t *testing.T, name string) {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("a card says %s is waiting, with Admit and Refuse; no tile", name),
		fmt.Sprintf(`(() => { const n = %s; const c = document.querySelector('[data-candidate="' + CSS.escape(n) + '"]');
			if (!c || c.offsetParent === null || c.dataset.admissionState !== "waiting") return false;
			const admit = c.querySelector('[data-admit="' + CSS.escape(n) + '"]'), refuse = c.querySelector('[data-refuse="' + CSS.escape(n) + '"]');
			const a = window.sotto.state.admissions[n];
			return c.querySelector(".admission-text").textContent === %s &&
				!!admit && !admit.disabled && !!refuse && !refuse.disabled &&
				!!a && a.state === "waiting" && a.known === false && a.verified === false &&
				!document.querySelector('[data-identity="' + CSS.escape(n) + '"]'); })()`, jsString(name), jsString(waitingText(name))),
		admissionDescribeJS)
}

// checkStillWaiting fails unless the page still shows name on its
// waiting card, counts it as waiting, and draws it no tile.
func (c *callTab) checkStillWaiting(t *testing.T, name string) {
	t.Helper()
	var ok bool
	c.eval(t, fmt.Sprintf(`(() => { const n = %s; const c = document.querySelector('[data-candidate="' + CSS.escape(n) + '"]');
		return !!c && c.dataset.admissionState === "waiting" && c.querySelector(".admission-text").textContent === %s &&
			window.sotto.state.admissions[n]?.state === "waiting" &&
			window.sotto.call.admissions().some(a => a.identity === n && a.state === "waiting") &&
			!document.querySelector('[data-identity="' + CSS.escape(n) + '"]'); })()`, jsString(name), jsString(waitingText(name))), &ok)
	if !ok {
		var state any
		c.eval(t, admissionDescribeJS, &state)
		t.Fatalf("%s no longer shows %s waiting (and only waiting): %v", c.name, name, state)
	}
}

// checkNotShown fails if the page lists name anywhere: in the call's
// participants, its admissions, a card or a tile.
func (c *callTab) checkNotShown(t *testing.T, name string) {
	t.Helper()
	var shown bool
	c.eval(t, fmt.Sprintf(`(() => { const n = %s; return window.sotto.call.participants.has(n) ||
		window.sotto.call.admissions().some(a => a.identity === n) || !!window.sotto.state.admissions[n] ||
		!!document.querySelector('[data-candidate="' + CSS.escape(n) + '"], [data-identity="' + CSS.escape(n) + '"]'); })()`, jsString(name)), &shown)
	if shown {
		var state any
		c.eval(t, admissionDescribeJS, &state)
		t.Fatalf("%s shows %s, whom the node hid from it: %v", c.name, name, state)
	}
}

// waitRosterAlert waits until the page shows the roster alert as a modal
// dialog (the rest of the page inert) with its exact heading, its entry
// for member saying line, and state.rosterAlert naming ghost for member
// among the people only member's view lists (theirs) or only this page's
// (not theirs).
func (c *callTab) waitRosterAlert(t *testing.T, member, ghost string, theirs bool, line string) {
	t.Helper()
	list := "onlyMine"
	if theirs {
		list = "onlyTheirs"
	}
	c.waitFor(t, fmt.Sprintf("the roster alert: %q", line),
		fmt.Sprintf(`(() => { const d = document.getElementById("roster-alert");
			if (!d.open || !d.matches(":modal") || document.getElementById("roster-alert-title").textContent !== %s) return false;
			const li = d.querySelector('#roster-alert-list li[data-member="' + CSS.escape(%s) + '"]');
			const a = window.sotto.state.rosterAlert;
			return !!li && [...li.querySelectorAll("p")].some(p => p.textContent === %s) &&
				!!a && a.mismatches.some(m => m.member === %s && m.%s.includes(%s)); })()`,
			jsString(rosterAlertHeading), jsString(member), jsString(line), jsString(member), list, jsString(ghost)),
		rosterDescribeJS)
}

// checkKeysHeld fails unless the page's roster status says the views
// disagree and the alert is up: its keys are held.
func (c *callTab) checkKeysHeld(t *testing.T) {
	t.Helper()
	var st struct {
		Admitted, Agreed, Alert bool
	}
	c.eval(t, `window.sotto.call.rosterStatus()`, &st)
	if st.Agreed || !st.Alert {
		t.Fatalf("%s: roster status %+v; want the alert up and keys held", c.name, st)
	}
}

// keysSent is how many key messages the page's key management sent.
func (c *callTab) keysSent(t *testing.T) float64 {
	t.Helper()
	var n float64
	c.eval(t, `window.sotto.call.e2ee.stats().keysSent`, &n)
	return n
}

// leaveFromAlert is the person leaving the call: with the Leave button of
// the roster alert while it is up, else with the call's own.
func (c *callTab) leaveFromAlert(t *testing.T) {
	t.Helper()
	var how string
	c.eval(t, `(() => { const d = document.getElementById("roster-alert");
		const b = document.getElementById(d.open ? "leave-after-roster-alert" : "leave"); b.click(); return b.id; })()`, &how)
	c.waitFor(t, "left the call ("+how+")", `window.sotto.state.phase === "ended"`, callDescribeJS)
}

// loggedPeer is a Go SDK client with a key log: the node's ghost, or
// someone else the test runs.
type loggedPeer struct {
	name   string
	c      *client.Client
	relays chan json.RawMessage

	mu   sync.Mutex
	keys []e2ee.KeyEvent
}

// joinLogged joins room at base as a Go SDK client, E2EE on, with the
// admission policy given (nil: it admits nobody), logging every key it
// makes or receives, publishing nothing.
func joinLogged(t *testing.T, srv *webServer, base, room, name string, policy client.AdmissionPolicy) *loggedPeer {
	t.Helper()
	p := &loggedPeer{name: name, relays: make(chan json.RawMessage, 1024)}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	c, err := client.Connect(ctx, base, client.Options{
		Token:         srv.Token(room, name, true, true),
		SettingEngine: &se,
		Logger:        testLogger(),
		E2EE: client.E2EEOptions{Admission: policy, KeyLog: func(e e2ee.KeyEvent) {
			p.mu.Lock()
			p.keys = append(p.keys, e)
			p.mu.Unlock()
		}},
		Handlers: client.Handlers{Relay: func(_ wire.ParticipantInfo, d json.RawMessage) {
			p.relays <- slices.Clone(d)
		}},
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p.c = c
	t.Cleanup(func() { _ = c.Close() })
	return p
}

// foreignKeys returns the keys in p's key log that are not its own: the
// keys it received.
func (p *loggedPeer) foreignKeys() []e2ee.KeyEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(p.keys), func(e e2ee.KeyEvent) bool { return e.Sender == p.name })
}

// keySenders returns who sent p the keys in its log.
func (p *loggedPeer) keySenders() map[string]int {
	out := map[string]int{}
	for _, e := range p.foreignKeys() {
		out[e.Sender]++
	}
	return out
}

var ghostBarriers atomic.Int64

// relayBarrier returns once p has handled everything each page sent it
// before (key messages included): each page sends p an application relay,
// which the node and the real node deliver after them, and p's
// application gets it after its key management took what came before.
func (p *loggedPeer) relayBarrier(t *testing.T, pages ...*callTab) {
	t.Helper()
	for _, c := range pages {
		n := ghostBarriers.Add(1)
		c.eval(t, fmt.Sprintf(`window.sotto.call.sendRelay([%s], {ghostBarrier: %d}).then(() => true)`, jsString(p.name), n), nil)
		waitGo(t, fmt.Sprintf("%s gets the barrier relay %d from %s", p.name, n, c.name), func() bool {
			for {
				select {
				case d := <-p.relays:
					var m struct {
						GhostBarrier int64 `json:"ghostBarrier"`
					}
					if json.Unmarshal(d, &m) == nil && m.GhostBarrier == n {
						return true
					}
				default:
					return false
				}
			}
		}, func() string { return "" })
	}
}

// keyMessage is a key message a client sent through the node: its sender
// (the connection's identity) and the recipients it has a box for.
type keyMessage struct {
	from string
	to   []string
}

// keyMessagesSince returns the key messages clients sent through the node
// since frame number since, in order.
func keyMessagesSince(node *hostilenode.Node, since int) []keyMessage {
	frames := node.Carried()
	var out []keyMessage
	for _, f := range frames[min(since, len(frames)):] {
		if f.ToClient {
			continue
		}
		d := hostilenode.RelayData(f.Data)
		if d["type"] != "key" {
			continue
		}
		boxes, _ := d["boxes"].(map[string]any)
		out = append(out, keyMessage{from: f.Identity, to: slices.Sorted(maps.Keys(boxes))})
	}
	return out
}

// admissionsSince returns the admissions clients sent through the node
// since frame number since, as "admitter→admitted".
func admissionsSince(node *hostilenode.Node, since int) []string {
	frames := node.Carried()
	var out []string
	for _, f := range frames[min(since, len(frames)):] {
		if f.ToClient {
			continue
		}
		d := hostilenode.RelayData(f.Data)
		if d["type"] != "admit" {
			continue
		}
		s, _ := d["admission"].(string)
		a, err := e2ee.ParseAdmission(s)
		if err != nil {
			out = append(out, f.Identity+"→(unparsable: "+err.Error()+")")
			continue
		}
		out = append(out, a.Admitter+"→"+a.Admitted)
	}
	return out
}

// checkNoKeyReaches fails if, since frame number since, a client sealed a
// key to ghost through the node, or if ghost holds a key but its own.
// Call it after a barrier.
func checkNoKeyReaches(t *testing.T, node *hostilenode.Node, since int, ghost *loggedPeer) []keyMessage {
	t.Helper()
	msgs := keyMessagesSince(node, since)
	for _, m := range msgs {
		if slices.Contains(m.to, ghost.name) {
			t.Fatalf("%s sent a key message with a box for %s (boxes for %v); all since: %+v", m.from, ghost.name, m.to, msgs)
		}
	}
	if ks := ghost.foreignKeys(); len(ks) != 0 {
		t.Fatalf("%s received keys from %v", ghost.name, ghost.keySenders())
	}
	return msgs
}

// browserGhostShownToEveryone: alice and bob are pages in a call (alice
// admits bob with a click). The node's ghost joins, shown to everyone:
// both pages show the waiting card with its exact words and no tile, and
// the safety number covers alice and bob only. Keys then go out while the
// ghost waits (carol, a Go client who admits nobody herself, is admitted
// with a click and leaves: a ratchet to her, then a fresh key for those
// who remain): nobody admitted the ghost, no key message has a box for
// it, its key log holds no key, and alice's and bob's media keep
// decrypting under the new keys.
func browserGhostShownToEveryone(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	b := newBrowser(t)
	const room = "ghost-everyone"

	alice := openPersonVia(t, b, node, room, "alice", "alice")
	alice.waitMemberAlone(t)
	bob := openPersonVia(t, b, node, room, "bob", "bob")
	alice.admitListed(t, "bob")
	pair := []*callTab{alice, bob}
	checkEveryoneSeesEveryone(t, pair)

	since := len(node.Carried())
	ghost := joinLogged(t, srv, srv.URL, room, "ghost", client.AdmitAll)
	for _, c := range pair {
		c.waitGhostCard(t, "ghost")
	}
	saveViewportScreenshot(t, alice.ctx, "hostile-ghost-waiting.png")

	// Keys go out while the ghost waits: carol joins through the node,
	// alice admits her (alice and bob ratchet their keys to her), then
	// she leaves (alice and bob draw fresh keys for each other). carol
	// admits nobody: a member admitting the ghost would be consent, not
	// the node's doing.
	carol := joinLogged(t, srv, node.URL, room, "carol", nil)
	alice.admitListed(t, "carol")
	if adm := admissionsSince(node, since); !slices.Equal(adm, []string{"alice→carol"}) {
		t.Fatalf("admissions sent since the ghost came: %q; want alice's of carol only (the click on carol's Admit)", adm)
	}
	waitGo(t, "carol gets alice's and bob's keys", func() bool {
		s := carol.keySenders()
		return s["alice"] > 0 && s["bob"] > 0
	}, func() string {
		return fmt.Sprintf("carol's keys from %v; key messages %+v", carol.keySenders(), keyMessagesSince(node, since))
	})
	if err := carol.c.Close(); err != nil {
		t.Fatalf("carol leaves: %v", err)
	}
	// Each page sent a key message with a box for carol (the ratchet),
	// then one without (the fresh key after she left; checkNoKeyReaches
	// below says whom else either had a box for).
	rekeyed := func(from, other string) bool {
		ratchet := false
		for _, m := range keyMessagesSince(node, since) {
			if m.from != from {
				continue
			}
			if slices.Contains(m.to, "carol") {
				ratchet = true
			} else if ratchet && slices.Contains(m.to, other) {
				return true
			}
		}
		return false
	}
	waitGo(t, "alice and bob ratchet to carol, then draw fresh keys when she leaves",
		func() bool { return rekeyed("alice", "bob") && rekeyed("bob", "alice") },
		func() string {
			return fmt.Sprintf("key messages since the ghost came: %+v", keyMessagesSince(node, since))
		})
	alice.waitFor(t, "carol is gone", `!window.sotto.call.participants.has("carol") && !document.querySelector('[data-identity="carol"], [data-candidate="carol"]')`, admissionDescribeJS)
	bob.waitFor(t, "carol is gone", `!window.sotto.call.participants.has("carol") && !document.querySelector('[data-identity="carol"], [data-candidate="carol"]')`, admissionDescribeJS)

	// Media between alice and bob still decrypts, under the fresh keys.
	checkEveryoneSeesEveryone(t, pair)
	number := checkSameSafetyNumber(t, pair) // covers exactly alice and bob
	ghost.relayBarrier(t, alice, bob)
	for _, c := range pair {
		c.waitAgreed(t)
		c.checkStillWaiting(t, "ghost")
	}
	if st := ghost.c.RosterStatus(); st.Admitted {
		t.Fatalf("the ghost sees itself admitted: %+v", st)
	}
	msgs := checkNoKeyReaches(t, node, since, ghost)
	if n := len(msgs); n < 4 {
		t.Fatalf("the pages sent %d key messages while the ghost waited; want 4 at least: %+v", n, msgs)
	}
	checkNoKeyReaches(t, node, 0, ghost)
	if adm := admissionsSince(node, 0); !slices.Equal(adm, []string{"alice→bob", "alice→carol"}) {
		t.Fatalf("admissions sent in the call: %q; want alice's of bob and of carol only", adm)
	}
	t.Logf("%d key messages while the ghost waited, none with a box for it (%+v); the ghost's key log holds no key; safety number %s for alice and bob",
		len(msgs), msgs, number)
}

// browserGhostShownToSome: the node shows its ghost to some people only.
// (a) Hidden from bob, shown to alice: alice sees it waiting, bob nothing,
// the views agree, it gets no key. (b) alice is tricked into clicking
// Admit: her view and bob's differ, both pages raise the blocking roster
// alert naming the ghost, neither sends a key, and none reaches the
// ghost. (c) In another call the ghost was there first and is hidden from
// alice and bob; carol, who joins later, is shown it in her joined list,
// as present before her: her alert names it, and alice's and bob's (from
// carol's view), with no key to it.
func browserGhostShownToSome(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	{
		const room = "ghost-some"
		node := hostilenode.New(t, srv.URL, nil)
		node.SetFilter(hostilenode.Chain(hostilenode.HideFrom("ghost", "bob"), hostilenode.DropRelaysFrom("ghost", "bob")))

		alice := openPersonVia(t, b, node, room, "alice", "alice")
		alice.waitMemberAlone(t)
		bob := openPersonVia(t, b, node, room, "bob", "bob")
		alice.admitListed(t, "bob")
		pair := []*callTab{alice, bob}
		checkEveryoneSeesEveryone(t, pair)

		since := len(node.Carried())
		ghost := joinLogged(t, srv, srv.URL, room, "ghost", client.AdmitAll)

		// (a)
		alice.waitGhostCard(t, "ghost")
		// The real node told bob's connection the ghost came; the
		// hostile node kept it from bob's page.
		waitGo(t, "the real node announces the ghost to bob's connection", func() bool {
			for _, f := range node.Carried()[since:] {
				var m struct {
					Type        string `json:"type"`
					Participant struct {
						Identity string `json:"identity"`
					} `json:"participant"`
				}
				if f.ToClient && f.Identity == "bob" && json.Unmarshal(f.Data, &m) == nil &&
					m.Type == wire.TypeParticipantJoin && m.Participant.Identity == "ghost" {
					return true
				}
			}
			return false
		}, func() string { return "the real node never told bob" })
		ghost.relayBarrier(t, alice, bob)
		for _, c := range pair {
			c.waitAgreed(t)
		}
		bob.checkNotShown(t, "ghost")
		checkNoKeyReaches(t, node, since, ghost)

		// (b) alice clicks Admit on the ghost's card.
		sent := map[string]float64{"alice": alice.keysSent(t), "bob": bob.keysSent(t)}
		clickAdmission(t, alice.ctx, alice.name, "ghost", "admit")
		alice.waitRosterAlert(t, "bob", "ghost", false, "Your view lists ghost, whom bob's does not.")
		bob.waitRosterAlert(t, "alice", "ghost", true, "alice's view lists ghost, whom yours does not.")
		saveViewportScreenshot(t, bob.ctx, "roster-mismatch-alert.png")
		saveViewportScreenshot(t, alice.ctx, "roster-mismatch-alert-admitter.png")
		ghost.relayBarrier(t, alice, bob)
		alice.waitFor(t, "alice counts the ghost as a member, as she admitted it",
			`window.sotto.call.admissions().some(a => a.identity === "ghost" && a.state === "member")`, rosterDescribeJS)
		bob.checkNotShown(t, "ghost")
		for _, c := range pair {
			c.checkKeysHeld(t)
			if n := c.keysSent(t); n != sent[c.name] {
				t.Fatalf("(b) %s sent %v key messages after alice admitted the ghost, while the views disagree", c.name, n-sent[c.name])
			}
		}
		msgs := checkNoKeyReaches(t, node, 0, ghost)
		var alerts [2]any
		alice.eval(t, `window.sotto.state.rosterAlert`, &alerts[0])
		bob.eval(t, `window.sotto.state.rosterAlert`, &alerts[1])
		t.Logf("(b) alice's alert %v; bob's alert %v; %d key messages in the call, none with a box for the ghost", alerts[0], alerts[1], len(msgs))
		// Both leave, as the alert advises: the dialog's Leave button.
		alice.leaveFromAlert(t)
		bob.leaveFromAlert(t)
	}

	// (c) The ghost as a root for a newcomer only.
	const room = "ghost-root"
	node := hostilenode.New(t, srv.URL, nil)
	node.SetFilter(hostilenode.Chain(hostilenode.HideFrom("ghost", "alice", "bob"), hostilenode.DropRelaysFrom("ghost", "alice", "bob")))
	ghost := joinLogged(t, srv, srv.URL, room, "ghost", client.AdmitAll)
	waitGo(t, "the ghost, alone, is a member in its own eyes", func() bool { return ghost.c.RosterStatus().Admitted },
		func() string { return fmt.Sprintf("%+v", ghost.c.RosterStatus()) })
	alice := openPersonVia(t, b, node, room, "alice", "alice (c)")
	alice.waitMemberAlone(t) // an empty call, as the node shows it
	bob := openPersonVia(t, b, node, room, "bob", "bob (c)")
	alice.admitListed(t, "bob")
	pair := []*callTab{alice, bob}
	checkEveryoneSeesEveryone(t, pair)
	for _, c := range pair {
		c.waitAgreed(t)
		c.checkNotShown(t, "ghost")
	}

	carol := openPersonVia(t, b, node, room, "carol", "carol (c)")
	carol.waitFor(t, "carol is shown the ghost as present before her",
		`(() => { const g = window.sotto.call.admissions().find(a => a.identity === "ghost"); return window.sotto.call.participants.has("ghost") && !!g && g.root; })()`,
		rosterDescribeJS)
	alice.admitListed(t, "carol")
	carol.waitRosterAlert(t, "alice", "ghost", false, "Your view lists ghost, whom alice's does not.")
	carol.waitRosterAlert(t, "bob", "ghost", false, "Your view lists ghost, whom bob's does not.")
	for _, c := range pair {
		c.waitRosterAlert(t, "carol", "ghost", true, "carol's view lists ghost, whom yours does not.")
	}
	saveViewportScreenshot(t, carol.ctx, "roster-mismatch-alert-root.png")
	ghost.relayBarrier(t, alice, bob, carol)
	for _, c := range pair {
		c.checkNotShown(t, "ghost")
	}
	carol.checkKeysHeld(t)
	msgs := checkNoKeyReaches(t, node, 0, ghost)
	var alert any
	carol.eval(t, `window.sotto.state.rosterAlert`, &alert)
	var froms []string
	for _, m := range msgs {
		froms = append(froms, m.from+"→"+strings.Join(m.to, ","))
	}
	t.Logf("(c) carol's alert %v; %d key messages in the call (%s), none with a box for the ghost", alert, len(msgs), strings.Join(froms, " "))
}
